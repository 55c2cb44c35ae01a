"""Argument checks shared by every public function that takes numbers or arrays.

One place for "a positive integer", "a finite number in [lo, hi]", "one of these
choices" and "a real-valued array", so each error names the argument, the value and the
accepted range in the same words everywhere (in the spirit of scikit-learn's parameter
constraints). Each checker returns the value converted (``int``/``float``) or raises
``ValueError``/``TypeError``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import xarray as xr

from quantlab.errors import DataError

__all__ = ["integer", "count", "number", "flag", "choice", "date", "period_end", "floats",
           "dataset", "labelled", "real_array", "pandas_values", "pandas_times", "numpy_data",
           "coords", "on_labels", "client", "where", "MAX_COUNT"]

# the most repetitions a count may ask for (trials, bootstrap draws, a population): far
# beyond any run that ends; reps=1e30 allocated 10**30 draws or looped for ever
MAX_COUNT = 10 ** 6


def _range_text(lo, hi, lo_open=False, hi_open=False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ""


def _show(value, shown=repr) -> str:
    """repr(value) (or ``shown(value)``), shortened: a hostile 10**400 or a huge string
    stays readable."""
    r = shown(value)
    return r if len(r) <= 60 else r[:40] + "..." + r[-12:]


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi]; bools, non-integral floats and NaN are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {_show(value)}")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{name} must be an integer, got {_show(value)}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {_range_text(lo, hi)}, got {_show(value)}")
    return v


def count(name: str, value, lo: int = 1, hi: int = MAX_COUNT) -> int:
    """``value`` as a count of repetitions (trials, bootstrap draws, a population): an
    integer in [lo, hi], by default at most ``MAX_COUNT``; a float such as 1e30 is
    refused by name rather than run (a loop for ever, or an allocation of terabytes).
    Below ``lo`` the message is ``integer``'s (">= lo")."""
    v = integer(name, value, lo)
    if v > hi:
        raise ValueError(f"{name} must be an integer {_range_text(lo, hi)} (at most "
                         f"{hi:,}: more would not end), got {_show(value)}")
    return v


def number(name: str, value, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, finite: bool = True) -> float:
    """``value`` as a float in the range; NaN is always refused, ±inf unless ``finite=False``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_show(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the largest double
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v) or (finite and math.isinf(v)):
        rng = _range_text(lo, hi, lo_open, hi_open)
        raise ValueError(f"{name} must be a finite number{' ' + rng if rng else ''}, got {_show(value)}")
    if ((lo is not None and (v < lo or (lo_open and v == lo)))
            or (hi is not None and (v > hi or (hi_open and v == hi)))):
        raise ValueError(f"{name} must be {_range_text(lo, hi, lo_open, hi_open)}, got {_show(value)}")
    return v


def flag(name: str, value) -> bool:
    """``value`` as a bool; only True or False (NumPy's too) pass: a string such as
    vectorbt's ``accumulate="disabled"`` or a number is truthy and would switch it on."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_show(value)}")
    return bool(value)


def choice(name: str, value, options):
    """``value`` if it is one of ``options``; else an error listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {_show(value)}")
    return value


def date(name: str, value):
    """``value`` (None, a date string, datetime/date, np.datetime64, Timestamp) as a naive
    Timestamp (None stays None), or a ValueError/TypeError naming ``name``: 2012, True or
    "notadate" reached a time slice and failed in pandas without naming the argument."""
    if value is None:
        return None
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, np.datetime64):
        raise TypeError(f"{name} must be a date ('2020-01-31', a datetime or "
                        f"np.datetime64), got {type(value).__name__} {_show(value)}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{name} must be a date such as '2020-01-31', got {_show(value)}"
                         ) from None
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a date, got {_show(value)} (NaT)")
    if ts.tzinfo is not None:
        raise ValueError(f"{name} {_show(value)} has a time zone; the data's time index is "
                         "naive: give a naive date")
    return ts


def period_end(name: str, value):
    """:func:`date`, but a string names a period and gives its last instant, as
    ``ds.sel(time=slice(..., value))`` reads it: '2009' is 2009-12-31 23:59:59.999999999,
    '2010-06' the end of June. As a Timestamp it was 2009-01-01: an ``end_date="2009"``
    left out all of 2009 but its first bar."""
    ts = date(name, value)
    if isinstance(value, str):
        try:   # no catch_warnings: it swaps the process's filters (test_warning_filters)
            return max(ts, pd.Period(value.strip()).end_time)
        except (ValueError, TypeError, OverflowError):
            pass
    return ts


def floats(name: str, value) -> np.ndarray:
    """``value`` (array-like, pandas or DataArray: its ``.values``; a DataArray with a
    ``time`` dim has time on axis 0) as a float array, or a TypeError naming ``name``: a
    Dataset's (or a dict's) ``.values`` is a method ("float() argument must be a string
    or a real number, not 'method'"), and a string or a list of them "could not convert
    string to float"."""
    if isinstance(value, xr.DataArray) and value.ndim > 1 and "time" in value.dims:
        # callers read rows as times: a (trial, time) DataArray was read with its trials
        # as the rows (pbo's and reality_check's p-values of other numbers, silently)
        value = value.transpose("time", ...)
    v = getattr(value, "values", value)
    if callable(v):
        raise TypeError(f"{name} must be an array, a pandas object or a DataArray, got "
                        f"{type(value).__name__}")
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, got {_show(value)}") from None


def dataset(name: str, value) -> xr.Dataset:
    """``value`` as price data: an xarray Dataset with ``close`` (a DataArray, or a pandas
    DataFrame or Series of closes (:func:`labelled`), is taken as the closes, as
    ``ql.backtest`` takes it), else a TypeError/DataError naming ``name`` (None or a
    string failed as a KeyError 'close' or "string indices must be integers")."""
    if isinstance(value, pd.DataFrame) and _one_assets_bars(value.columns):
        raise TypeError(
            f"{name} is a DataFrame whose columns are bar fields {list(value.columns)}: "
            "quantlab reads a DataFrame as closes, time by asset. For one asset's bars: "
            "ds = ql.data.from_pandas(df, asset='NAME')")
    value = labelled(name, value)
    if isinstance(value, xr.DataArray):
        value = value.to_dataset(name="close")
    if not isinstance(value, xr.Dataset):
        raise TypeError(f"{name} must be an xarray Dataset with 'close' (ql.data.load()), or "
                        f"closes (a DataArray or pandas DataFrame, time by asset), got "
                        f"{type(value).__name__}")
    if "close" not in value:
        raise DataError(f"{name} has no 'close' variable (variables: {list(value.data_vars)})")
    return value


# bar fields as load_csv reads headers (any case; spaces, '_' and '.' ignored; its aliases)
_FIELDS = {"open", "high", "low", "close", "adjclose", "adjustedclose", "price", "volume",
           "vol"}


def _one_assets_bars(columns) -> bool:
    """Columns two or more of which name bar fields (yfinance adds dividends and
    splits), not assets: one asset's bars ('AdjClose' beside 'Close', 'Price' beside
    'Volume' were read as two assets)."""
    names = {"".join(str(c).lower().replace("_", " ").replace(".", " ").split())
             for c in columns}
    return len(names & _FIELDS) > 1


def pandas_times(index: pd.Index) -> pd.Index:
    """``index`` as a DatetimeIndex when it holds Arrow timestamps (``read_csv(
    dtype_backend="pyarrow")``: no DatetimeIndex, so not read as times), else as it is.

    Examples
    --------
    >>> import pandas as pd
    >>> from quantlab import _validate
    >>> t = pd.date_range("2024-01-01", periods=2).astype("timestamp[ns][pyarrow]")
    >>> type(_validate.pandas_times(t)).__name__
    'DatetimeIndex'
    """
    if isinstance(index.dtype, pd.ArrowDtype) and index.dtype.kind == "M":
        return pd.DatetimeIndex(index)
    return index


def labelled(name: str, value, asset=None):
    """A pandas DataFrame (rows: time, columns: assets) or Series (one asset, named by
    its ``name``, else ``asset``: the data's only asset, else ``"asset"``) as a (time,
    asset) DataArray with the same labels
    and values (:func:`pandas_values`: nullable and Arrow columns as NumPy); anything
    else unchanged. An index of other than timestamps (text dates) is a DataError naming
    ``name`` and the fix; the rest is checked where a DataArray's is (sorted, naive);
    MultiIndex rows or columns are a TypeError naming ``name`` (which level is
    time, which asset?).

    Examples
    --------
    >>> import pandas as pd
    >>> from quantlab import _validate
    >>> df = pd.DataFrame({"A": [1.0, 2.0], "B": [3.0, 4.0]},
    ...                   index=pd.date_range("2024-01-01", periods=2))
    >>> _validate.labelled("data", df).dims, _validate.labelled("data", df["B"]).asset.values
    (('time', 'asset'), array(['B'], dtype=object))
    """
    if isinstance(value, pd.Series):
        value = value.to_frame(name=value.name if value.name is not None else
                               "asset" if asset is None else asset)
    if not isinstance(value, pd.DataFrame):
        return value
    for axis, index in (("rows", value.index), ("columns", value.columns)):
        if isinstance(index, pd.MultiIndex):
            raise TypeError(f"{name}: a DataFrame with MultiIndex {axis} {list(index.names)}; "
                            "a DataFrame is read as time (rows) by asset (columns): select "
                            "one level (df.xs(...)), or pass an xarray DataArray with one dim "
                            "per level")
    times = [c for c, d in value.dtypes.items() if getattr(d, "kind", "") == "M"]
    if times:   # read as an asset: a date column (reset_index, read_csv without index_col)
        raise TypeError(f"{name}: column {times[0]!r} of the DataFrame holds times "
                        f"({value.dtypes[times[0]]}), not an asset's values; a DataFrame's "
                        f"time is its index: df.set_index({times[0]!r})")
    index = pandas_times(value.index)
    if not isinstance(index, pd.DatetimeIndex):
        # text dates (read_csv without parse_dates) beside a frame of timestamps read as
        # "different time axes (2000-03-01 00:00:00 is not in the data)"
        first = f" ({_show(index[0])}, ...)" if len(index) else ""
        # pd.to_datetime refuses periods ("Passing PeriodDtype data is invalid")
        fix = ("df.index = df.index.to_timestamp()" if isinstance(index, pd.PeriodIndex)
               else "pd.read_csv(..., index_col=0, parse_dates=True), or df.index = "
               "pd.to_datetime(df.index)")
        raise DataError(f"{name}: the DataFrame's index holds {index.inferred_type}{first}, "
                        f"not times: {fix}")
    return xr.DataArray(pandas_values(value), dims=("time", "asset"),
                        coords={"time": index.rename("time"),
                                "asset": value.columns.rename("asset")})


def client(value):
    """``value``: None or a dask.distributed Client (anything with its ``submit``,
    ``scatter`` and ``gather``), else a TypeError naming it (42 failed later as an
    AttributeError deep in a run)."""
    if value is None or all(callable(getattr(value, m, None))
                            for m in ("submit", "scatter", "gather")):
        return value
    raise TypeError(f"client must be a dask.distributed.Client or None, got "
                    f"{type(value).__name__} {_show(value)}")


def where(obj, index) -> dict:
    """The labels of the element ``index`` (``obj.argmax(...)``: dim -> position) of a
    DataArray, as an error names it: ``{'time': '2001-05-23T00:00:00', 'asset': 'AAPL'}``."""
    return {d: str(obj[d].values[int(i)])[:19] for d, i in index.items()}


def real_array(name: str, dtype) -> None:
    """Refuse dtypes a numeric kernel would silently misread.

    Complex input would lose its imaginary part, datetimes and timedeltas would be taken
    as their integer counts, and strings or objects cannot be computed on. Bools and
    integers are accepted (converted to float by the caller).
    """
    dt = np.dtype(dtype)
    if dt.kind == "c":
        raise TypeError(f"{name} is complex ({dt}); pass the real part (x.real) or abs(x) explicitly")
    if dt.kind in "mM":
        raise TypeError(f"{name} holds {dt} values, not numbers; convert them explicitly "
                        "(e.g. to seconds with x.astype('int64') / 1e9)")
    if dt.kind not in "biuf":
        raise TypeError(f"{name} must be numeric (bool, int or float), got dtype {dt}")


def pandas_values(x) -> np.ndarray:
    """The values of a pandas Series or DataFrame as a NumPy array (``x.to_numpy()``),
    where columns of pandas' nullable or Arrow dtypes (``Float64``, ``Int64``,
    ``boolean``, ``double[pyarrow]``: ``convert_dtypes()``, ``read_csv(dtype_backend=
    ...)``) would give an object array (mixed with other dtypes, or holding <NA>):
    integers and bools without <NA> as int64, else float64 with NaN for <NA>. Other
    object columns stay object (refused by :func:`real_array`)."""
    a = x.to_numpy()
    if a.dtype != object:
        return a
    dtypes = [x.dtype] if isinstance(x, pd.Series) else list(x.dtypes)
    api = pd.api.types
    # Arrow's bool[pyarrow] is no "numeric" dtype to pandas (its "boolean" is): with
    # <NA> or beside a float column it was refused as "dtype object"
    if not dtypes or not all((api.is_numeric_dtype(d) or api.is_bool_dtype(d))
                             and not api.is_complex_dtype(d) for d in dtypes):
        return a
    ints = all(api.is_integer_dtype(d) or api.is_bool_dtype(d) for d in dtypes)
    if ints and not x.isna().to_numpy().any():
        return x.to_numpy(dtype=np.int64)
    return x.to_numpy(dtype=np.float64, na_value=np.nan)


def numpy_data(v):
    """``v`` with values that pandas and the kernels read: a DataArray holding a pandas
    extension array (xarray keeps the array of a nullable or Arrow Series:
    ``s.to_xarray()``, ``xr.DataArray(s)``) as one holding its NumPy values
    (:func:`pandas_values`: <NA> as NaN); a DataArray, Dataset, Series or DataFrame of
    byte-swapped (big-endian) values, as some files give, in native byte order; anything
    else as it is. A ``Float64`` dtype is no NumPy dtype ("Cannot interpret
    'Float64Dtype()' as a data type" from every check); pandas' take and reindex, which
    align series, raise "Big-endian buffer not supported on little-endian compiler"."""
    if isinstance(v, xr.DataArray) and isinstance(v.dtype, pd.api.extensions.ExtensionDtype):
        return v.copy(data=pandas_values(pd.Series(v.data)).reshape(v.shape))
    if isinstance(v, (xr.DataArray, pd.Series)) and _swapped(v.dtype):
        return v.astype(v.dtype.newbyteorder("="))
    if isinstance(v, pd.DataFrame) and any(_swapped(d) for d in v.dtypes):
        v = v.copy(deep=False)
        for i, d in enumerate(v.dtypes):   # by position: column labels may repeat
            if _swapped(d):
                v.isetitem(i, v.iloc[:, i].astype(d.newbyteorder("=")))
        return v
    if isinstance(v, xr.Dataset) and any(_swapped(a.dtype) for a in v.data_vars.values()):
        return v.map(numpy_data, keep_attrs=True)
    return v


def _swapped(dtype) -> bool:
    """A NumPy dtype whose values are not in the machine's byte order ('>f8')."""
    return isinstance(dtype, np.dtype) and not dtype.isnative


def on_labels(b: xr.DataArray, a: xr.DataArray, bname: str, aname: str) -> xr.DataArray:
    """``b`` on ``a``'s labels: along each dim both index, the same labels in another
    order are put in ``a``'s order (inputs matched by label, as the signal is to the
    data; ``xr.align(join="exact")`` refused them: "cannot align objects with
    join='exact'"); other labels are a ValueError naming the dim."""
    for d in set(a.indexes) & set(b.indexes):
        ia, ib = a.indexes[d], b.indexes[d]
        if ia.equals(ib):
            continue
        if not (ia.is_unique and ib.is_unique and len(ia) == len(ib) and ia.isin(ib).all()):
            raise ValueError(f"{aname} and {bname} have other {d!r} labels (matched by "
                             f"label): {list(ia[:3])} ... and {list(ib[:3])} ...")
        b = b.reindex({d: a[d].values})   # a[d]'s dtype (the Index's: object for strings)
    return b


def coords(obj, dims=("time", "asset"), what: str = "data") -> None:
    """Raise ``DataError`` unless ``obj`` (DataArray or Dataset) has each of ``dims`` as a
    dimension with a coordinate: kernels index by label, and a missing one used to
    surface as a bare ``KeyError`` deep inside."""
    for d in dims:
        if d not in obj.dims:
            raise DataError(f"{what} has no {d!r} dimension (dims {tuple(obj.dims)}); "
                            f"name your dims with .rename({{'old': {d!r}}}) or "
                            f".expand_dims({d!r})")
        if d not in obj.coords:
            raise DataError(f"{what} has the dimension {d!r} but no {d!r} coordinate; add one "
                            f"with .assign_coords({d}=...) (timestamps for 'time', names "
                            "for 'asset')")
