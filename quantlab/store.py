"""A local on-disk store for your own bars: CSV/Parquet files -> a zarr store chunked
over (time, asset), appendable, resumable after a kill, opened lazily with dask.

A store is a local directory or any fsspec URL zarr understands (``s3://``, ``gs://``,
``memory://``, ``file://``; ``storage_options=`` go to the filesystem): its layout is one
zarr group holding a float64 array per bar variable
(``time x asset``, chunks ``chunk_time x chunk_asset``) and an int64 ``time`` array (ns
since 1970, naive UTC or as written), plus ``quantlab_store.json``: the progress marker
and the store's metadata (assets, asset classes, variables, attrs, the sha256 of every
ingested file). Only its first ``n_time`` rows are the store; the marker is rewritten
atomically after every chunk, and ``n_time`` advances when a whole row of chunks is
written, so a killed ingest leaves a readable store and a rerun resumes it.

The marker also knows what was written (since session 46): ``chunks``, per variable the
CRC32C of the file written at each chunk position (``"3.0"``); ``meta``, the sha256 of
each array's metadata but its shape; ``digest``, the sha256 of the marker itself. Every
read checks them: a chunk swapped or copied over, an edited zarr.json or marker is a
DataError naming it, never other numbers.
"""
from __future__ import annotations

import builtins
import codecs
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import types
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _progress
from quantlab import _validate as _v
from quantlab import calendar as _cal
from quantlab import data as _data
from quantlab.errors import DataError

__all__ = ["ingest", "open"]

MARKER = "quantlab_store.json"
FORMAT = 1
_STAGING = ".staging"
_LOCK = ".ingest.lock"
_PARQUET_EXTS = (".parquet", ".pq")
CHUNK_TIME, CHUNK_ASSET = 8192, 64


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ModuleNotFoundError("ql.data.ingest/open need zarr (>= 3): pip install zarr") from None
    return zarr


def compressors(checksum: bool = False):
    """The codec of every array a new store (and a streamed backtest's results) is
    written with: Blosc LZ4 with byte shuffle decodes a chunk of float64 prices ~3x
    faster than zarr's default zstd (5.6 vs 18 ns a value), writes it ~4x faster, and
    shuffled bytes compress smaller (0.76 vs 0.90 of raw). An existing store keeps its
    codec: zarr reads it from each array's metadata (old zstd stores open and append).
    ``checksum``: a CRC32C of each compressed chunk after it (a store's data: LZ4 decodes
    most flipped bytes into other numbers, silently; ~0.2 ms a 3 MB chunk)."""
    from zarr.codecs import BloscCodec, Crc32cCodec
    blosc = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    return (blosc, Crc32cCodec()) if checksum else (blosc,)


def run_compressors():
    """The codec of a streamed backtest's results arrays that compress
    (:func:`compressible`): Blosc LZ4 without shuffle. Their bytes repeat (cash between
    orders, a flat equity), which LZ4 finds as they are; a (8192, 200) chunk of cash
    encoded in 1.0 ms to 0.017 of its bytes, against 2.3-6 ms to 0.007 with shuffle."""
    from zarr.codecs import BloscCodec
    return (BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),)


def compressible(values: np.ndarray, keep: float = 0.5) -> bool:
    """Whether :func:`run_compressors`' LZ4 keeps at most ``keep`` of ``values``'
    bytes: writing the rest would cost more than compressing (LZ4 encodes ~0.1-0.3 ms a
    MB; a file took ~1 ms a MB into the page cache of a 2-core AMD EPYC)."""
    import numcodecs   # lazy: zarr's dependency, a store's writes only

    values = np.ascontiguousarray(values)
    if values.nbytes == 0:
        return False
    lz4 = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
    return len(lz4.encode(values)) <= keep * values.nbytes


# --------------------------------------------------------------------------- location

def _missing_package(url: str, err: Exception) -> str:
    """Name the package fsspec needs for ``url``'s protocol (s3 -> s3fs, gs -> gcsfs)."""
    from fsspec.registry import known_implementations
    proto = url.split("://", 1)[0]
    pkg = known_implementations.get(proto, {}).get("class", "").split(".")[0]
    pkg = pkg or "the fsspec implementation of this protocol"
    return (f"store {url!r}: the {proto}:// protocol needs the {pkg!r} package, which is "
            f"not installed ({err}); pip install {pkg}")


def _marker_problem(state: dict) -> str | None:
    """What is wrong with a marker's fields (None: nothing), so an edited or damaged one
    is named rather than read as other rows or assets."""
    def count(k, lo):
        v = state.get(k)
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo
        return None if ok else f"{k} must be an integer >= {lo}, got {v!r}"

    missing = [k for k in ("format", "n_time", "chunk_time", "chunk_asset", "assets",
                           "asset_class", "variables", "files", "attrs") if k not in state]
    if missing:
        return f"no {', '.join(missing)}"
    for problem in (count("n_time", 0), count("chunk_time", 1), count("chunk_asset", 1)):
        if problem:
            return problem
    assets, classes, variables = state["assets"], state["asset_class"], state["variables"]
    if not isinstance(assets, list) or not all(isinstance(a, str) for a in assets):
        return "assets must be a list of names"
    if len(set(assets)) != len(assets):
        return f"duplicate assets {sorted({a for a in assets if assets.count(a) > 1})}"
    if not isinstance(classes, list) or len(classes) != len(assets):
        return f"asset_class must list one class per asset ({len(assets)})"
    if (not isinstance(variables, list) or not variables
            or not set(variables) <= set(_data.BAR_VARS)):
        return f"variables must be some of {list(_data.BAR_VARS)}, got {variables!r}"
    if not isinstance(state["files"], dict) or not isinstance(state["attrs"], dict):
        return "files and attrs must be mappings"
    return None


class _Where:
    """Where a store lives: an fsspec filesystem ``fs`` and the store's ``root`` on it,
    one code path for every protocol. ``zarr`` and ``options`` are what
    ``zarr.open_group`` takes: the URL and its storage options, or the directory for a
    local store (a plain path or ``file://``: zarr's own LocalStore). ``staging`` is a
    local folder, as staged bars are memory-mapped: inside a local store, in the temp
    folder (keyed by the URL) for a remote one. ``shown`` names the store in messages."""

    def __init__(self, store, storage_options, who: str):
        try:
            from fsspec.core import url_to_fs
            from fsspec.implementations.local import LocalFileSystem
        except ImportError:
            raise ModuleNotFoundError("ql.data.ingest/open need fsspec: pip install fsspec"
                                      ) from None
        if storage_options is not None and not isinstance(storage_options, dict):
            raise TypeError(f"{who}: storage_options must be a dict or None, got "
                            f"{storage_options!r}")
        text = os.fspath(store) if isinstance(store, (str, os.PathLike)) else None
        if not isinstance(text, str) or not text.strip():
            raise TypeError(f"{who}: store must be a path or an fsspec URL string, got "
                            f"{store!r}")
        url = text if "://" in text else str(_data._in_working_directory(
            f"{who}: store", Path(text).expanduser()))
        opts = dict(storage_options or {})
        try:
            fs, root = url_to_fs(url, **opts)
        except ImportError as e:
            raise ModuleNotFoundError(f"{who}: " + _missing_package(url, e)) from None
        except ValueError as e:          # fsspec: "Protocol not known: ..."
            raise ValueError(f"{who}: store {text!r}: {e}; give a local path or an fsspec "
                             "URL (s3://bucket/path, gs://..., memory://..., file://...)"
                             ) from None
        self.fs, self.root = fs, root.rstrip("/") or root
        self.local = isinstance(fs, LocalFileSystem)
        self.shown = url
        self.zarr, self.options = (self.root, None) if self.local else (url, opts or None)
        self.staging = (Path(self.root) / _STAGING if self.local else
                        Path(tempfile.gettempdir()) / "quantlab-staging"
                        / hashlib.sha256(url.encode()).hexdigest()[:24])

    def key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def entries(self) -> set[str]:
        """Names in the store's folder (none when it does not exist)."""
        try:
            listed = self.fs.ls(self.root, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return set()
        return {str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed}

    def group(self, mode: str):
        if self.local:   # zarr hangs on a FIFO zarr.json (root or array's), reads a device
            for f in [Path(self.root) / "zarr.json", *Path(self.root).glob("*/zarr.json")]:
                with contextlib.suppress(OSError):
                    if not stat.S_ISREG(os.stat(f).st_mode):
                        raise DataError(f"{f}: not a regular file (a FIFO, a device or a "
                                        "directory): corrupt store metadata; re-run ingest "
                                        "into a new store")
        return _zarr().open_group(self.zarr, mode=mode, storage_options=self.options)

    def read_marker(self) -> dict | None:
        if self.local:   # a FIFO hung the read below, /dev/zero filled memory
            with contextlib.suppress(OSError):
                mode = os.stat(self.key(MARKER)).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise DataError(f"{self.key(MARKER)}: not a regular file (a FIFO or a "
                                    "device); a store's marker is the file ql.data.ingest "
                                    "writes")
        try:
            text = self.fs.cat_file(self.key(MARKER))
        except (FileNotFoundError, IsADirectoryError):
            return None
        except NotADirectoryError:
            raise DataError(f"{self.shown}: not a folder (a file given as the store?); a "
                            "store is the folder ql.data.ingest writes") from None
        try:
            state = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:   # JSONDecodeError is a ValueError
            state = e
        if isinstance(state, dict) and "format" in state and state["format"] != FORMAT:
            raise DataError(f"{self.shown}: store format {state.get('format')!r}, this "
                            f"quantlab reads {FORMAT}")
        problem = (state if isinstance(state, Exception) else
                   "not a marker" if not isinstance(state, dict) else _marker_problem(state))
        if problem:
            raise DataError(f"{self.key(MARKER)}: corrupt store marker ({problem}); "
                            "re-run ingest into a new store") from None
        return state

    def write_marker(self, state: dict) -> None:
        """Atomic: a kill leaves the previous marker or this one, never half of one (a
        rename on a disk; on an object store, where a move is copy + delete, the copy
        replaces the object whole)."""
        tmp = self.key(f".{MARKER}.tmp")
        state["digest"] = _digest({k: v for k, v in state.items() if k != "digest"})
        try:
            self.fs.pipe_file(tmp, json.dumps(state, indent=1).encode())
            self.fs.mv(tmp, self.key(MARKER))
        except BaseException:   # a full disk: no half-written .tmp left behind
            with contextlib.suppress(OSError):
                self.fs.rm_file(tmp)
            raise


def _digest(obj) -> str:
    """The sha256 of ``obj`` as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


_META_FIELDS = ("zarr_format", "node_type", "data_type", "chunk_grid", "chunk_key_encoding",
                "fill_value", "codecs", "storage_transformers")


def _meta(arr) -> str:
    """The :func:`_digest` of the fields of an array's zarr metadata that change the
    numbers its chunks decode to (dtype, byte order, chunk grid, key encoding, fill
    value, codecs); not its shape, which grows with each append (:func:`open` checks it
    against the marker), nor a field a later zarr may add."""
    meta = arr.metadata.to_dict()
    return _digest({k: meta.get(k) for k in _META_FIELDS})


class UncheckedStoreWarning(UserWarning):
    """A store written by a quantlab before session 46: no checksum of each chunk's
    position, its metadata and its marker (see :func:`open`)."""


class IncompleteStoreWarning(UserWarning):
    """A store whose last write has not finished (an ingest still running, or stopped
    by a kill, an error or Ctrl-C): :func:`open` shows its complete chunk rows only."""


_WARNED: set = set()


def _sealed(loc: _Where, state: dict, arrays: dict) -> bool:
    """Whether the store has a chunk index (see :class:`_Checked`), after checking its
    marker against the marker's checksum and each array's metadata against the one
    written: a DataError naming the file. A store written before it (no index) is read
    as before, with one :class:`UncheckedStoreWarning` per store and process."""
    if "digest" in state and state["digest"] != _digest(
            {k: v for k, v in state.items() if k != "digest"}):
        raise DataError(f"{loc.key(MARKER)}: its contents do not match its checksum "
                        "(edited or damaged after ingest wrote it); re-run ingest into a "
                        "new store")
    names = ("time", *state["variables"])
    if "chunks" not in state:
        if loc.shown not in _WARNED:
            _WARNED.add(loc.shown)
            warnings.warn(f"store {loc.shown} was written by an older quantlab, without a "
                          "checksum of each chunk at its position: a chunk swapped or "
                          "copied over, or an edited zarr.json, would read as other "
                          "numbers, unnoticed; re-ingest the source files into a new store "
                          "to add them", UncheckedStoreWarning, stacklevel=4)
        return False
    index, meta, pending = state["chunks"], state.get("meta"), state.get("pending")
    if ("digest" not in state or not isinstance(index, dict) or not isinstance(meta, dict)
            or not all(isinstance(index.get(v), dict) for v in names)
            or not isinstance(pending, (dict, type(None)))):
        raise DataError(f"{loc.key(MARKER)}: corrupt store marker (its chunk index, "
                        "metadata checksums or own checksum missing or not mappings); "
                        "re-run ingest into a new store")
    for v in names:
        if meta.get(v) != _meta(arrays[v]):
            raise DataError(f"{loc.shown}: {v}/zarr.json is not the metadata ingest wrote "
                            "there (its dtype, byte order, chunks, fill value or codecs "
                            "edited); re-run ingest into a new store")
    return True


def _guards(state: dict, var: str, sealed: bool, loc: _Where | None = None) -> dict:
    """The ``index`` and ``pending`` of :class:`_Checked` for ``var`` (none: unsealed);
    with ``loc`` (a reader), ``refresh``: the store's index of ``var`` as its marker
    now has it."""
    if not sealed:
        return {}
    pending = state.get("pending")
    return {"index": state["chunks"][var],
            "pending": None if pending is None else
            {"rows": pending["rows"], "chunks": pending["chunks"].get(var, {})},
            "refresh": None if loc is None else
            (lambda: (loc.read_marker() or {}).get("chunks", {}).get(var, {}))}


# --------------------------------------------------------------------------- reading

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _list_files(source: Path) -> list[Path]:
    """A folder's data files as load_csv lists them (*.csv, *.csv.gz), plus Parquet."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        if source.exists() or source.is_symlink():   # a FIFO, a device, a broken link
            raise _data._not_a_file(source)
        raise FileNotFoundError(f"{source}: no such file or directory")
    return _data._data_files(source, (*_data._DIR_EXTS, *_PARQUET_EXTS), "ingest",
                             ".csv or .parquet")


def _read_file(path: Path, layout: str, dayfirst: bool | None = None,
               order: dict | None = None):
    """One file -> ({asset: frame}, tz_aware), read and validated by load_csv's reader
    (``dayfirst``, ``order``: as ``ql.data.parse_dates`` takes them; Arrow's reads are
    ISO 8601 or epoch dates, in no day/month order).
    A clean CSV or Parquet file is read by Arrow (``_clean_csv``, ``_clean_parquet``);
    any other CSV goes through load_csv's reader, any other Parquet is written out as CSV
    text (one file at a time) and read the same way, so its rules and messages are
    load_csv's; messages name the Parquet file."""
    if not path.name.lower().endswith(_PARQUET_EXTS):
        fast = _clean_csv(path, layout)
        return fast if fast is not None else _data._read_table(
            path, None, layout, dayfirst=dayfirst, order=order)
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        raise ModuleNotFoundError(f"{path}: Parquet input needs pyarrow: pip install pyarrow"
                                  ) from None
    try:
        import pyarrow.parquet as pq   # lazy: Parquet input only
        names = pq.read_schema(path).names
    except Exception:        # a corrupt file: read_parquet's message below
        names = []
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:                # pyarrow: "Multiple matches for FieldRef.Name(close) in ..."
        raise DataError(f"{path}: column(s) {', '.join(map(repr, twice))} appear more than "
                        "once; keep one of each")
    try:
        df = pd.read_parquet(path)
    except Exception as e:   # pyarrow raises its own types for a corrupt file
        raise DataError(f"{path}: cannot read as Parquet ({e})") from None
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
    stem = path.name[: -len(next(e for e in _PARQUET_EXTS if path.name.lower().endswith(e)))]
    fast = _clean_parquet(df, stem, layout)
    if fast is not None:
        return fast
    texts = {}
    for c in df.columns:     # ISO text by NumPy: pandas' own datetime formatting is slow
        col = df[c]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col, z = col.dt.tz_convert("UTC").dt.tz_localize(None), "Z"
        elif pd.api.types.is_datetime64_dtype(col.dtype):
            z = ""
        elif col.dtype.kind == "f" and _data._normal_name(c) == "date":
            texts[c] = _epoch_text(col.to_numpy(np.float64))   # not Arrow's 1.7041536e+12
            continue
        else:
            if _csv_unwritable(col):   # lists, structs, bytes: their text, which load_csv
                texts[c] = col.map(_cell_text).to_numpy(dtype=object)  # ignores or refuses
            continue
        values = col.to_numpy()       # its own unit: no ns overflow past 2262 here
        nat = np.isnat(values)
        ok = values[~nat]
        units = ("m", "s", "ms", "us") if z else ("D", "m", "s", "ms", "us")  # "2024-01-02Z"
        unit = next((u for u in units    # one text format per column; an offset needs a time
                     if (ok.astype(f"datetime64[{u}]") == ok).all()), "ns")
        text = np.datetime_as_string(values, unit=unit)
        if z:
            text = np.char.add(text, z)
        if nat.any():
            text = np.where(nat, "", text)
        texts[c] = text
    table = pa.Table.from_arrays(
        [pa.array(texts[c]) if c in texts else pa.Array.from_pandas(df[c]) for c in df.columns],
        names=[str(c) for c in df.columns])
    del df
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / f"{stem}.csv"
        # Arrow's CSV writer: shortest round-trip floats, ~10x pandas' to_csv
        try:
            pa_csv.write_csv(table, str(csv))
        except pa.ArrowException as e:
            raise DataError(f"{path}: a column type that has no CSV text "
                            f"({', '.join(f'{f.name!r}: {f.type}' for f in table.schema)}): "
                            f"{e}") from None
        del table
        try:
            return _data._read_table(csv, None, layout, dayfirst=dayfirst, order=order)
        except DataError as e:
            raise DataError(str(e).replace(str(csv), str(path))) from None


def _epoch_text(v: np.ndarray) -> np.ndarray:
    """A float date column's text: whole numbers (epoch s/ms/µs/ns stored as floats, as
    pandas stores an integer column with a gap) as integer digits, NaN empty, any other
    value as Python writes it (load_csv then names it)."""
    whole = np.isfinite(v) & (v == np.trunc(v)) & (np.abs(v) < 2.0 ** 63)
    text = np.array(["" if x != x else repr(float(x)) for x in v], dtype=object)
    text[whole] = v[whole].astype(np.int64).astype(str)
    return text


def _cell_text(x) -> str:
    return repr(x) if isinstance(x, (bytes, bytearray)) else str(x)   # no raw NUL bytes


def _csv_unwritable(col: pd.Series) -> bool:
    """A column Arrow's CSV writer refuses (list, struct, map, binary values)."""
    import pyarrow as pa
    if col.dtype != object:
        return False
    try:
        t = pa.Array.from_pandas(col).type
    except (pa.ArrowException, TypeError, ValueError):
        return True
    return pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _clean_parquet(df: pd.DataFrame, stem: str, layout: str):
    """The common Parquet file without a text round trip: one ns datetime column named
    as a date, float64/integer price and volume columns, no NaN, strictly increasing
    times and valid bars. Returns what load_csv's reader would return for its CSV text
    (Arrow writes shortest round-trip floats, so the values are the same), or None when
    any rule might apply: the text path then gives load_csv's exact message."""
    if layout not in ("single", "single_or_kline"):
        return None
    names = [_data._normal_name(str(c).strip()) for c in df.columns]
    keep = [c for c in (*_data.BAR_VARS, "adj_close") if c in names]
    known = [n for n in names if n in _data._KNOWN]
    if (names.count("date") != 1 or "asset" in names or "adj_close" in keep
            or "close" not in keep or len(known) != len(set(known))
            or len({str(c) for c in df.columns}) != df.shape[1]
            or _data._unread([str(c) for c in df.columns], names)
            or str(df.columns[0]).strip().isdigit()     # a headerless kline's first row
            or any(not str(c).strip() or str(c).strip() != str(c) for c in df.columns)):
        return None
    date = df.iloc[:, names.index("date")]
    aware = isinstance(date.dtype, pd.DatetimeTZDtype)
    if aware:
        date = date.dt.tz_convert("UTC").dt.tz_localize(None)
    t = date.to_numpy()
    if t.dtype.kind != "M" or np.datetime_data(t.dtype)[0] not in ("s", "ms", "us", "ns"):
        return None
    ns = t.astype("datetime64[ns]")     # pandas 3 reads Parquet times as [us]
    if (not t.size or np.isnat(t).any() or (ns.astype(t.dtype) != t).any()   # past 2262
            or (t.size > 1 and (np.diff(ns.view(np.int64)) <= 0).any())):
        return None
    t = ns
    cols = {}
    for c in keep:
        col = df.iloc[:, names.index(c)]
        if not (col.dtype == np.float64 or (isinstance(col.dtype, np.dtype)
                                            and col.dtype.kind in "iu")):
            return None
        cols[c] = col.to_numpy(np.float64)
        if np.isnan(cols[c]).any():
            return None
    panels = [cols[v][:, None] if v in cols else None for v in _data.BAR_VARS]
    if _data._k.check_bars(*panels)[0]:
        return None
    asset = _data._asset_name(f"{stem}.csv")
    if not asset:
        return None
    return {asset: pd.DataFrame(cols, index=pd.DatetimeIndex(t, name="date"))}, aware


# A clean CSV file: what Arrow reads with explicit types and load_csv's reader would read
# the same, else None (load_csv's reader then gives its exact message). Arrow's float
# parser and pandas' agree bit for bit on decimal text (both correctly rounded); dates
# are ISO 8601 of one shape per column (the shape of the first: load_csv parses a column
# with the format of its first date) or epoch digits of one length (one unit).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
                       r"(?:Z|[+-]\d{2}:\d{2})?)?")


def _csv_bytes(path: Path) -> bytes | None:
    """The file's UTF-8 bytes (gzip by content, a UTF-8 BOM dropped), or None for
    anything load_csv's reader treats specially (other encodings, NUL, leading blanks)."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if (not data or data[:1].isspace() or b"\x00" in data
            or data.startswith(tuple(_data._COMPRESSED))):
        return None
    return data


def _csv_header(first: str, layout: str):
    """(column names, kline) of a clean header line (or a headerless kline's first row),
    or None when load_csv's reader might refuse it or read it another way."""
    if '"' in first or "," not in first:
        return None
    cells = first.split(",")
    kline = layout == "kline" or (layout in ("auto", "single_or_kline")
                                  and _data._is_headerless_kline(cells))
    if kline:
        return (_data.KLINE_COLUMNS + [f"extra_{i}" for i in range(len(cells))]
                )[:len(cells)], True
    header = [h.strip() for h in cells]
    names = [_data._normal_name(h) for h in header]
    keys = [n if n in _data._KNOWN else h for h, n in zip(header, names)]
    keys = [k for k in keys if k]
    if (layout not in ("auto", "single", "single_or_kline") or len(keys) != len(set(keys))
            or "date" not in names or "asset" in names or "close" not in names
            or _data._unread(header, names)):     # load_csv's reader refuses or asks
        return None
    return names, False


def _csv_dates(col, kline: bool):
    """(int64 ns since 1970, tz_aware) of a date column of one shape, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    first = col[0].as_py()
    if first.isdigit():                            # epoch: one length, so one unit
        if first[0] == "0" or len(first) not in _data._EPOCH_UNITS:
            return None
        if not pc.all(pc.match_substring_regex(col, rf"^[0-9]{{{len(first)}}}$")).as_py():
            return None
        ints = pc.cast(col, pa.int64()).to_numpy()
        t = pd.to_datetime(ints, unit=_data._EPOCH_UNITS[len(first)])
        lo, hi = pd.Timestamp.min.as_unit("ns"), pd.Timestamp.max.as_unit("ns")
        if t.min() < lo or t.max() > hi:
            return None
        return t.as_unit("ns").asi8, True
    if kline or not _ISO_DATE.fullmatch(first) or not "1678" <= first[:4] <= "2261":
        return None
    shape = "".join("[0-9]" if c.isdigit() else re.escape(c) for c in first)
    if not pc.all(pc.match_substring_regex(col, f"^{shape}$")).as_py():
        return None
    years = pc.min_max(pc.utf8_slice_codeunits(col, 0, 4)).as_py()
    if not "1678" <= years["min"] <= years["max"] <= "2261":
        return None
    aware = re.search(r"(?:Z|[+-]\d{2}:\d{2})$", first) is not None
    t = pc.cast(col, pa.timestamp("ns", "UTC" if aware else None))
    return t.cast(pa.int64()).to_numpy(), aware


def _clean_csv(path: Path, layout: str):
    """A clean CSV file read by Arrow with explicit types (no per-row Python): one asset
    (a per-symbol file or kline export), comma-separated, every price cell a finite
    number, dates of one shape, strictly increasing, valid bars. Returns what load_csv's
    reader returns for it, or None when any of its rules might apply (the caller then
    runs that reader, with its exact message), or when pyarrow is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        return None
    data = _csv_bytes(path)
    end = data.find(b"\n") if data is not None else -1
    if end < 0:
        return None
    try:
        got = _csv_header(data[:end].rstrip(b"\r").decode(), layout)
    except UnicodeDecodeError:
        return None
    if got is None:
        return None
    names, kline = got
    keep = [c for c in (*_data.BAR_VARS, "adj_close") if c in names]
    if "close" not in keep:       # load_csv: adj_close alone is a close-only asset
        return None
    fields = [f"f{i}" for i in range(len(names))]
    use = {"date": fields[names.index("date")], **{c: fields[names.index(c)] for c in keep}}
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [       # UTF-8 throughout, no copy
            None, pa.py_buffer(np.array([0, len(data)], np.int64)), pa.py_buffer(data)]
        ).validate(full=True)
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=fields, skip_rows=0 if kline else 1),
            parse_options=pa_csv.ParseOptions(newlines_in_values=b'"' in data),
            convert_options=pa_csv.ConvertOptions(
                column_types={f: pa.string() if c == "date" else pa.float64()
                              for c, f in use.items()},
                include_columns=list(use.values()), null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False))
        if table.num_rows == 0:
            return None
        dates = _csv_dates(table.column(use["date"]), kline)
    except (pa.ArrowException, ValueError, OverflowError):
        return None
    if dates is None or (dates[0].size > 1 and (np.diff(dates[0]) <= 0).any()):
        return None
    cols = {c: table.column(use[c]).to_numpy() for c in keep}
    del table
    if not all(np.isfinite(v).all() for v in cols.values()) or (
            "adj_close" in cols and not (cols["adj_close"] >= _data.MIN_PRICE).all()):
        return None
    panels = [cols[v][:, None] if v in cols else None for v in _data.BAR_VARS]
    asset = _data._asset_name(path.name)
    if _data._k.check_bars(*panels)[0] or not asset:
        return None
    t = pd.DatetimeIndex(dates[0].view("datetime64[ns]"), name="date")
    return {asset: pd.DataFrame(cols, index=t)}, dates[1]


class _Staged:
    """One asset's validated bars, staged on disk (a file is read once; the chunk writer
    then slices every asset without holding them in memory). ``t`` and ``v`` map the
    file anew on each access: a mapping kept open would keep every page it touched in
    the process's RSS, so peak RSS would grow with the panel (issue #30)."""

    def __init__(self, folder: Path, k: int, asset: str, file: str, variables: list[str],
                 dates: dict | None = None):
        self.asset, self.file, self.vars, self.dates = asset, file, variables, dates or {}
        self._t, self._v = folder / f"{k}.t.npy", folder / f"{k}.v.npy"

    @property
    def t(self) -> np.ndarray:
        return np.load(self._t, mmap_mode="r")

    @property
    def v(self) -> np.ndarray:
        return np.load(self._v, mmap_mode="r")


def _assemble(frames: dict):
    """(asset, int64 ns times, variables, (time, variable) values) per asset, as
    load_csv assembles them (``_bars_from_frame``: adj_close adjustment, the file's
    union of times). One unadjusted asset (the common file) is taken as it is: its
    reader already proved its times strictly increasing, so the union is its own."""
    if len(frames) == 1 and "adj_close" not in next(iter(frames.values())):
        (asset, df), = frames.items()
        variables = [v for v in _data.BAR_VARS if v in df]
        t = df.index.values.astype("datetime64[ns]").view(np.int64)
        yield asset, t, variables, df[variables].to_numpy(np.float64)
        return
    ds = _data._bars_from_frame(frames, "unknown")
    t = ds.indexes["time"].values.astype("datetime64[ns]").view(np.int64)
    variables = [v for v in _data.BAR_VARS if v in ds]
    for k, asset in enumerate(ds.indexes["asset"]):
        yield asset, t, variables, np.column_stack([ds[v].values[:, k] for v in variables])


def _replace(tmp: Path, final: Path, write) -> None:
    """``write(tmp)`` then rename it to ``final``; a failed write (a full disk) leaves
    no ``tmp`` behind, filling the disk further."""
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """``np.save(path, arr)`` through Python's file writes: NumPy's own (``tofile``)
    reports a full disk as "150000 requested and 70640 written", without the errno or
    its cause (No space left on device)."""
    with builtins.open(path, "wb") as f:
        np.lib.format.write_array(types.SimpleNamespace(write=f.write), arr,
                                  allow_pickle=False)


def _staged_intact(folder: Path, manifest: Path) -> bool:
    """Whether the bars an earlier (killed) run staged in ``folder`` are as it wrote
    them (their CRC32C in its manifest): a resumed ingest writes them into the store
    as the file's bars, so a damaged one would be other prices, unnoticed."""
    import crc32c   # lazy: a store's writes only

    try:
        m = json.loads(manifest.read_text())
        return all(crc32c.crc32c(np.ascontiguousarray(np.load(
                       folder / f"{k}.{s}.npy", mmap_mode="r"))) == e["crc32c"][s]
                   for k, e in enumerate(m["assets"]) for s in ("t", "v"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False   # unreadable, or staged by a quantlab before the CRC32C: stage again


def _stage(path: Path, sha: str, layout: str, staging: Path,
           dayfirst: bool | None = None) -> tuple[list[_Staged], bool]:
    """(staged assets, each with the day/month order of the file's dates, tz_aware)."""
    # keyed by name and content (asset names come from file names) and the date order
    key = f"{path.name}\0{sha}\0{layout}" + ("" if dayfirst is None else f"\0{dayfirst}")
    # surrogateescape: a file name the locale could not decode is its bytes again
    folder = staging / hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    manifest = folder / "manifest.json"
    if manifest.exists() and not _staged_intact(folder, manifest):
        shutil.rmtree(folder)            # damaged since an earlier (killed) run: again
    if not manifest.exists():            # not staged by an earlier (killed) run
        import crc32c   # lazy: a store's writes only

        order: dict = {}
        frames, aware = _read_file(path, layout, dayfirst, order)
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for k, (asset, t, variables, values) in enumerate(_assemble(frames)):
            crc = {}
            for suffix, arr in (("t", t), ("v", values)):
                arr = np.ascontiguousarray(arr)
                crc[suffix] = crc32c.crc32c(arr)
                _replace(folder / f"{k}.{suffix}.tmp.npy", folder / f"{k}.{suffix}.npy",
                         lambda f, arr=arr: _save_npy(f, arr))
            entries.append({"asset": str(asset), "vars": variables, "crc32c": crc})
        del frames
        _replace(folder / "manifest.tmp", manifest, lambda f: f.write_text(
            json.dumps({"aware": aware, "assets": entries, "dates": order})))
    m = json.loads(manifest.read_text())
    return [_Staged(folder, k, e["asset"], str(path), e["vars"], m.get("dates") or {})
            for k, e in enumerate(m["assets"])], m["aware"]


# --------------------------------------------------------------------------- ingest

def _stage_all(files, mode: str, state: dict | None, staging: Path, progress: bool = False,
               store: str = "the store"):
    """Read, validate and stage each new or changed file (those whose sha256 the store
    recorded are skipped); the cross-file checks of load_csv's directory reader (one
    owner per asset, no mix of naive and UTC timestamps), also against the store."""
    from concurrent.futures import ThreadPoolExecutor

    done = (state or {}).get("files", {})
    owner, staged, shas, zones, orders = {}, [], {}, {}, {}

    def read(f):   # hashing and pyarrow's reads release the GIL: files on 2 threads
        sha = _sha256(f)
        if done.get(f.name, {}).get("sha256") == sha:
            return sha, [], done[f.name]["aware"], done[f.name]["assets"]
        recs, aware = _stage(f, sha, mode, staging)
        orders[f] = recs[0].dates if recs else {}
        return sha, recs, aware, [r.asset for r in recs]

    with (ThreadPoolExecutor(2, thread_name_prefix="ql-stage") as pool,
          _progress.bar(len(files), "ingest: reading files", "file", progress) as bar):
        # each file checked in file order, as it comes: the errors of a one-by-one run;
        # an error cancels the files not yet begun
        futures = [pool.submit(read, f) for f in files]
        try:
            for f, fu in zip(files, futures):
                sha, recs, aware, assets = fu.result()
                bar.update()
                shas[f.name] = sha
                staged += recs
                zones.setdefault(aware, f)
                if len(zones) > 1 or (state and state["aware"] != aware):
                    other = zones.get(not aware) or "the store"
                    raise DataError(
                        f"{f} has "
                        f"{'UTC offsets (or epoch times)' if aware else 'naive timestamps'}"
                        f" but {other} has {'naive timestamps' if aware else 'UTC offsets'}"
                        ": their bars would not align; write every file with offsets, or "
                        "none")
                for a in assets:
                    if a in owner:
                        raise DataError(f"{owner[a]} and {f} both hold asset {a!r}: keep "
                                        "one (or rename one file)")
                    owner[a] = f
        except BaseException:
            for fu in futures:
                fu.cancel()
            raise
    orders = {f: orders[f] for f in files if f in orders}   # file order, not finish order
    return owner, _one_order(staged, orders, done, shas, mode, staging, store), shas, zones


def _one_order(staged: list, orders: dict, done: dict, shas: dict, mode: str,
                staging: Path, store: str) -> list:
    """``staged`` with the new files whose dates fit either day/month order staged
    again in the order another file, new or in the store, needs (load_csv's directory
    rule); a DataError when the store holds such a file read in the other order."""
    new = {f.name for f in orders}
    kept = {f"{name} (in the store {store})": e["dates"] for name, e in done.items()
            if name not in new and isinstance(e.get("dates"), dict)}
    every = {**kept, **orders}
    again, dayfirst = _data._order_again(every)
    stored = [f for f in again if not isinstance(f, Path)]
    if stored:
        need = next(f for f, o in every.items() if o.get("reading") and not o.get("either"))
        orders_ = ("month-first", "day-first (DD/MM)") if dayfirst else \
            ("day-first", "month-first (MM/DD)")
        raise DataError(f"{stored[0]} was ingested {orders_[0]} (its dates fit either "
                        f"order), but {need} needs {orders_[1]}: their bars would "
                        "not align; ingest every file into a new store")
    for f in again:
        recs, _ = _stage(f, shas[f.name], mode, staging, dayfirst=dayfirst)
        staged = [r for r in staged if r.file != str(f)] + recs
    return staged


def ingest(source, store, freq=None, chunk_time=None, chunk_asset=None, *,
           asset_class: str = "unknown", layout: str = "auto", storage_options=None,
           progress: bool = True):
    r"""Ingest a folder of CSV/Parquet files (or one file) into the zarr store ``store``.

    Files are read and validated two at a time by :func:`ql.data.load_csv`'s reader (one
    file per symbol, kline exports; a single file may be a long table; ``layout`` and
    ``asset_class`` as in load_csv; a clean comma-separated CSV or Parquet file -- ISO
    8601 or epoch dates of one shape, finite numbers, sorted, valid bars -- is read by
    pyarrow when installed, with the same bars; any other goes load_csv's reader and
    gets its message; files whose dates fit either day/month order are read day-first
    when another file of the folder or the store needs it, as load_csv reads a
    directory), staged on local disk, and written in chunks of
    ``chunk_time`` x ``chunk_asset`` (defaults 8192 x 64 for a new store; an existing
    store keeps its own), compressed with Blosc LZ4 + shuffle (an existing store keeps
    its codec): memory holds two files and one chunk row, never the panel.

    Rerunning on the same store appends: files whose sha256 was ingested are skipped;
    bars after the store's last time are added; bars at times the store holds must agree
    exactly (a differing value, a bar the store lacks or a missing bar is a DataError
    naming file, asset, time); a bar before the store's end at a time the store does not
    hold, a new asset or a new variable is a DataError (ingest into a new store).
    A killed ingest leaves the store readable up to its last complete chunk row; rerun
    the same call to resume.

    Parameters
    ----------
    source : str or os.PathLike
        A folder of CSV/Parquet files, or one file.
    store : str or os.PathLike
        The store's directory (created if absent), or an fsspec URL zarr understands
        (``s3://bucket/path``, ``gs://...``, ``memory://...``, ``file://...``; the
        protocol's package, e.g. s3fs or gcsfs, must be installed).
    freq : str, optional
        Overrides the inferred bar frequency, e.g. ``"1min"`` (see
        :mod:`quantlab.calendar`).
    chunk_time, chunk_asset : int, optional
        Chunk shape of a new store (defaults 8192 x 64).
    asset_class : str, default 'unknown'
        As in :func:`ql.data.load_csv`.
    layout : {'auto', 'single', 'long', 'wide', 'kline'}, default 'auto'
        As in :func:`ql.data.load_csv`.
    storage_options : dict, optional
        Passed to the URL's fsspec filesystem (credentials, endpoint, ...).
    progress : bool, default True
        Progress bars of the files read and the chunks written, shown once a step has
        taken 2 seconds (a small ingest shows none).

    Returns
    -------
    pathlib.Path or str
        The store's path (a local path given) or its URL.

    Raises
    ------
    DataError
        For invalid files and for bars that conflict with the store (see above).
    ValueError
        If a chunk size or ``layout`` is out of range, the URL's protocol is unknown, or
        ``source`` is a URL (ingest reads local files).
    ModuleNotFoundError
        If the URL's protocol needs a package that is not installed (named).

    Examples
    --------
    >>> import pathlib, tempfile, quantlab as ql
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "ACME.csv").write_text("Date,Open,High,Low,Close,Volume\n"
    ...     "2024-01-02,10,11,9.5,10.5,1000\n2024-01-03,10.5,11.2,10.1,11,1200\n"
    ...     "2024-01-04,11,11.5,10.8,11.2,900\n")
    >>> path = ql.store.ingest(folder, folder / "store")
    >>> path.name
    'store'
    >>> ql.store.ingest(folder / "ACME.csv", "memory://doc/acme")      # an fsspec URL
    'memory://doc/acme'
    """
    _zarr()
    _v.choice("layout", layout, ("auto", "single", "long", "wide", "kline"))
    progress = _v.flag("progress", progress)
    if not isinstance(asset_class, str) or not asset_class.strip():
        raise TypeError(f"ingest: asset_class must be a non-empty string, got {asset_class!r}")
    if chunk_time is not None:
        chunk_time = _v.integer("chunk_time", chunk_time, 1, 10 ** 7)
    if chunk_asset is not None:
        chunk_asset = _v.integer("chunk_asset", chunk_asset, 1, 10 ** 5)
    if freq is not None:
        _cal._step(freq)
    loc = _Where(store, storage_options, "ingest")
    _data.user_path("ingest: source", source)        # a path, not "" or None
    if "://" in os.fspath(source):
        raise ValueError(f"ingest: source {os.fspath(source)!r} is a URL; ingest reads local "
                         "files (the store may be a URL): copy them first, e.g. "
                         "fsspec.filesystem(protocol).get(url, folder, recursive=True)")
    source = _data.user_path("ingest: source", source)
    files = _list_files(source)
    if source.is_dir():
        if layout not in ("auto", "single", "kline"):
            raise ValueError(f"ingest: a directory holds one file per asset; layout must be "
                             f"'auto', 'single' or 'kline', got {layout!r}")
        mode = {"auto": "single_or_kline", "single": "single", "kline": "kline"}[layout]
    else:
        mode = layout
    try:     # a file above it, a read-only disk, a name too long: said for which store
        if loc.fs.isfile(loc.root) or (loc.entries() - {_STAGING, _LOCK} and
                                       not loc.fs.exists(loc.key(MARKER))):
            raise DataError(f"{loc.shown}: exists and is not a quantlab store (no {MARKER}); "
                            "give a new or empty directory")
        loc.fs.makedirs(loc.root, exist_ok=True)
    except OSError as e:
        raise _data.io_error(e, f"ingest of {source} into {loc.shown}") from e
    with _writer_lock(loc):
        state = loc.read_marker()
        if state is not None:
            for name, given in (("chunk_time", chunk_time), ("chunk_asset", chunk_asset)):
                if given is not None and given != state[name]:
                    raise ValueError(f"ingest: {name}={given}, but the store {loc.shown} has "
                                     f"{name}={state[name]}; omit it to append")
            if freq is not None and state.get("freq") is not None and \
                _cal._step(state["freq"]) != _cal._step(freq):
                raise ValueError(f"ingest: freq={freq!r}, but the store has freq="
                                 f"{state['freq']!r}")
        try:
            owner, staged, shas, zones = _stage_all(files, mode, state, loc.staging, progress,
                                                    loc.shown)
            if state is None:
                variables = [v for v in _data.BAR_VARS if any(v in r.vars for r in staged)]
                aware = next(iter(zones))
                state = {"format": FORMAT, "n_time": 0, "chunk_time": chunk_time or CHUNK_TIME,
                         "chunk_asset": chunk_asset or CHUNK_ASSET, "assets": list(owner),
                         "asset_class": [asset_class] * len(owner), "variables": variables,
                         "aware": aware, "freq": freq, "files": {}, "every_chunk": True,
                         "attrs": {"source": str(source), "time_zone": "UTC" if aware
                                   else "as written (no UTC offset)"}}
            for r in staged:
                if r.asset not in state["assets"]:
                    raise DataError(f"{r.file}: asset {r.asset!r} is not in the store "
                                    f"{loc.shown} (its assets are fixed at the first ingest: "
                                    f"{', '.join(state['assets'])}); ingest into a new store")
                extra = [v for v in r.vars if v not in state["variables"]]
                if extra:
                    raise DataError(f"{r.file}: asset {r.asset!r} has {', '.join(extra)}, which "
                                    f"the store {loc.shown} does not hold "
                                    f"({', '.join(state['variables'])})")
            _write(loc, state, staged, source, files, shas, owner, progress)
        except (DataError, ValueError):
            # a refusal is not a kill: nothing to resume, so leave no staged copy (a
            # remote store's is in the temp folder, where nobody would find it)
            shutil.rmtree(loc.staging, ignore_errors=True)
            raise
        except OSError as e:   # disk full, permission denied: said which store, resumable
            raise _data.io_error(e, f"ingest of {source} into {loc.shown}", "the rows "
                                 "committed so far are kept: fix the cause and run the same "
                                 "ingest again to resume") from e
        shutil.rmtree(loc.staging, ignore_errors=True)
    return Path(loc.shown) if "://" not in loc.shown else loc.shown


@contextlib.contextmanager
def _writer_lock(loc: _Where):
    """One ingest at a time into a local store: an exclusive ``flock`` on a file in it,
    released by the system if the process dies (a killed ingest does not block its
    resume). Two at once interleaved their rows and both reported success. Stores on
    an fsspec URL have no such lock: one writer at a time is the caller's to ensure."""
    try:
        import fcntl
    except ImportError:   # Windows: no flock
        fcntl = None
    if not loc.local or fcntl is None:
        yield
        return
    with builtins.open(loc.key(_LOCK), "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise DataError(f"{loc.shown}: another ingest is writing this store; wait for "
                            "it to finish (one ingest at a time)") from None
        except OSError:   # no locks on this file system (NFS without lockd): as a URL
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(f, fcntl.LOCK_UN)


def _corrupt(loc: _Where, e: Exception) -> Exception:
    """A damaged zarr.json: zarr/JSON errors of many types -> DataError (ImportError kept);
    one the disk could not read (permission denied, an I/O error) is that OSError, saying
    which store: the store may be intact, not to be ingested again."""
    if isinstance(e, (ImportError, DataError)):
        return e
    if _unread(e):
        return _data.io_error(e, f"reading the store {loc.shown}", _UNREAD)
    return DataError(f"{loc.shown}: corrupt store metadata ({type(e).__name__}: {e}); "
                     "re-run ingest into a new store")


def writes_all(arr):
    """``arr`` (a zarr array) writing every chunk it is given. zarr's default first
    compares each chunk to the fill value, to skip empty ones: a full pass that took 3 of
    the 4 ms of writing a (8192, 64) float64 chunk when the fill is 0.0 (its compare goes
    through a void dtype), and most of a streamed backtest's writer thread; a store's
    chunks, so that a missing chunk file is damage (see ``_missing_chunk``)."""
    return arr.with_config({"write_empty_chunks": True})


def _open_arrays(loc: _Where, state: dict, create: bool):
    # a store made with "every_chunk" holds a file for each chunk of its rows, empty ones
    # too (NaN, a few bytes), so open() can tell a deleted chunk from an empty one
    every = writes_all if state.get("every_chunk") else (lambda a: a)
    if not create:
        try:
            g = loc.group("a")
            arrays = {v: every(g[v]) for v in ("time", *state["variables"])}
        except Exception as e:
            raise _corrupt(loc, e) from None
        sealed = _sealed(loc, state, arrays)
        checked = {v: _Checked(a, loc.shown, v, **_guards(state, v, sealed))
                   for v, a in arrays.items()}
        return g, checked.pop("time"), checked
    g = loc.group("a")
    n_asset = len(state["assets"])
    g.create_array("time", shape=(0,), chunks=(state["chunk_time"],), dtype="int64",
                   fill_value=0, dimension_names=("time",), overwrite=True,
                   compressors=compressors(checksum=True))
    for v in state["variables"]:
        g.create_array(v, shape=(0, n_asset), dtype="float64", fill_value=np.nan,
                       chunks=(state["chunk_time"], state["chunk_asset"]),
                       dimension_names=("time", "asset"), overwrite=True,
                       compressors=compressors(checksum=True))
    names = ("time", *state["variables"])
    for k in ("meta", "chunks", "pending"):
        state.pop(k, None)
    if all(_chunk_files(g[v]) is not None for v in names):   # the store's own codecs
        state["meta"] = {v: _meta(g[v]) for v in names}
        state["chunks"] = {v: {} for v in names}  # chunk key -> the file written there
    checked = {v: _Checked(every(g[v]), loc.shown, v, **_guards(state, v, "chunks" in state))
               for v in names}
    return g, checked.pop("time"), checked


def _block(tb: np.ndarray, recs: dict, a0: int, a1: int, assets, variables):
    """The (variable, time, asset) block of staged bars at times ``tb``, assets a0:a1,
    and the mask of cells inside each asset's file span (where a file speaks)."""
    # filled asset by asset into (variable, asset, time): each asset's values land in a
    # contiguous row (a (time, asset) block took a strided column per asset and variable)
    out = np.full((len(variables), a1 - a0, len(tb)), np.nan)
    span = np.zeros((a1 - a0, len(tb)), bool)
    n = len(tb)
    for j, a in enumerate(assets[a0:a1]):
        r = recs.get(a)
        t = r.t if r is not None else ()
        if len(t) == 0:
            continue
        p0 = int(np.searchsorted(t, tb[0]))
        if p0 + n <= len(t) and t[p0 + n - 1] == tb[-1] and np.array_equal(t[p0:p0 + n], tb):
            hit, rows = slice(None), r.v[p0:p0 + n]   # the usual case: every bar, in a row
            span[j] = True
        else:
            pos = np.minimum(np.searchsorted(t, tb), len(t) - 1)
            hit = t[pos] == tb
            span[j] = (tb >= t[0]) & (tb <= t[-1])
            rows = r.v[pos[hit]]
        for k, v in enumerate(r.vars):
            out[variables.index(v), j, hit] = rows[:, k]
    return out.transpose(0, 2, 1), span.T


def _write(loc: _Where, state: dict, staged: list, source: Path, files, shas, owner,
           progress: bool = False) -> None:
    """Check the staged bars against the committed rows, then write the new rows chunk by
    chunk (one chunk row in memory), committing n_time after each complete chunk row."""
    n_old = state["n_time"]
    if n_old:
        g, tarr, arrs = _open_arrays(loc, state, create=False)
    committed = tarr[:n_old] if n_old else np.empty(0, np.int64)
    recs = {r.asset: r for r in staged}
    new = _new_times(staged, committed)
    if n_old:
        _check_overlap(loc.shown, state, staged, recs, committed, arrs)
    if state["freq"] is not None:      # the given freq must fit every step
        _cal.infer(pd.DatetimeIndex(np.r_[committed, new].view("datetime64[ns]")),
                   freq=state["freq"])
    elif n_old and new.size and state["attrs"].get("freq"):
        _same_calendar(state, committed, new, staged)
    if not n_old:      # the marker first: from here the directory is a store to resume
        loc.write_marker(state)
        g, tarr, arrs = _open_arrays(loc, state, create=True)
    _write_rows(loc, state, recs, new, tarr, arrs, progress)
    _write_provenance(loc, state, source, files, shas, owner, g, tarr,
                      {Path(r.file).name: r.dates for r in staged})


def _same_calendar(state: dict, committed: np.ndarray, new: np.ndarray, staged) -> None:
    """An append keeps the store's inferred bar frequency (hourly bars after daily ones
    left no calendar, silently: its metrics then annualised with 252). The calendar may
    still change with more rows (a first week of 24/7-looking minutes turning 24/5)."""
    was = {k: state["attrs"].get(k) for k in ("freq", "calendar")}
    try:
        now = _cal.infer(pd.DatetimeIndex(np.r_[committed, new].view("datetime64[ns]")))
    except ValueError as e:
        now = {"freq": None, "calendar": str(e)}
    if now["freq"] != was["freq"]:
        files = ", ".join(sorted({Path(r.file).name for r in staged}))[:200]
        raise DataError(f"appending {files}: the store's bars are {was.get('freq')} "
                        f"({was.get('calendar')}); with the new rows they would be "
                        f"{now['freq']} ({now['calendar']}); ingest them into a new store, "
                        "or give freq= to the first ingest")


def _new_times(staged: list, committed: np.ndarray) -> np.ndarray:
    """The sorted times after the store's end; a staged time at or before the end must
    be a row the store holds (DataError otherwise)."""
    n_old = committed.size
    end = committed[-1] if n_old else np.iinfo(np.int64).min
    new = np.empty(0, np.int64)
    for r in staged:
        t = r.t
        old = t[t <= end]
        if old.size:
            pos = np.minimum(np.searchsorted(committed, old), n_old - 1)
            miss = np.flatnonzero(committed[pos] != old)
            if miss.size:
                raise DataError(f"{r.file}: asset {r.asset!r} at {_data.time_label(old[miss[0]])}"
                                f": a bar before the store's last time "
                                f"{_data.time_label(end)} at a time the store does not hold; a "
                                "store grows at its end only (ingest into a new store)")
        later = np.asarray(t[t > end])
        if later.size:
            pos = np.minimum(np.searchsorted(new, later), max(new.size - 1, 0))
            if new.size == 0 or (new[pos] != later).any():
                new = np.union1d(new, later)
    return new


def _check_overlap(store: str, state: dict, staged: list, recs: dict,
                   committed: np.ndarray, arrs: dict) -> None:
    """Every committed row a file speaks for must agree with it (NaN = no bar), checked
    chunk by chunk on the store's grid; DataError at the first difference."""
    ct, ca = state["chunk_time"], state["chunk_asset"]
    assets, variables = state["assets"], state["variables"]
    n_old, end = committed.size, committed[-1]
    first = [t[0] for t in (r.t for r in staged) if t.size]
    lo = [np.searchsorted(committed, t0) for t0 in first if t0 <= end]
    if not lo:
        return
    for t0 in range(min(lo) // ct * ct, n_old, ct):
        t1 = min(t0 + ct, n_old)
        tb = committed[t0:t1]
        for a0 in range(0, len(assets), ca):
            a1 = min(a0 + ca, len(assets))
            if not any(a in recs for a in assets[a0:a1]):
                continue
            got, span = _block(tb, recs, a0, a1, assets, variables)
            if not span.any():
                continue
            for k, v in enumerate(variables):
                have = arrs[v][t0:t1, a0:a1]
                bad = span & ~((got[k] == have) | (np.isnan(got[k]) & np.isnan(have)))
                if bad.any():
                    i, j = map(int, np.argwhere(bad)[0])
                    a = assets[a0 + j]
                    raise DataError(
                        f"{recs[a].file}: asset {a!r} at {_data.time_label(tb[i])}: {v} is "
                        f"{got[k][i, j]:g} in the file but {have[i, j]:g} in the store "
                        f"{store} (NaN = no bar); ingest only adds bars after the store's "
                        "end: put changed history in a new store")


def _write_rows(loc: _Where, state: dict, recs: dict, new: np.ndarray, tarr, arrs,
                progress: bool = False) -> None:
    """Resize, write the time coordinate, then the chunk rows; the marker records, after
    each chunk row, its chunks' files and n_time (what a resumed ingest trusts), and
    after each chunk of a row that holds committed rows (an append's first), that
    chunk's file (a reader open across the append checks its rows against it). Rewritten
    after every chunk, the marker (which grows with the chunks) cost O(chunks^2): 513
    writes, 15.5 MB, a quarter of the ingest of 64 assets x 3000 bars in 480 chunks."""
    ct, ca = state["chunk_time"], state["chunk_asset"]
    assets, variables = state["assets"], state["variables"]
    n_old = state["n_time"]
    n_new = n_old + new.size
    if n_old % ct and tarr.index is not None:   # its last chunk row is rewritten
        _pending(state, {"time": tarr, **arrs}, n_new)
        loc.write_marker(state)
    tarr.resize((n_new,))
    for a in arrs.values():
        a.resize((n_new, len(assets)))
    tarr[n_old:n_new] = new
    loc.write_marker(state)
    t0 = n_old
    rows = -(-n_new // ct) - n_old // ct
    with _progress.bar(rows * -(-len(assets) // ca), "ingest: writing chunks", "chunk",
                       progress) as bar:
        while t0 < n_new:
            t1 = min((t0 // ct + 1) * ct, n_new)     # on the chunk grid
            tb = new[t0 - n_old:t1 - n_old]
            for a0 in range(0, len(assets), ca):
                a1 = min(a0 + ca, len(assets))
                got, _ = _block(tb, recs, a0, a1, assets, variables)
                for k, v in enumerate(variables):
                    _put(arrs[v], t0, t1, a0, a1, got[k])
                state["chunk"] = [t0 // ct, a0 // ca]
                if t0 % ct:   # an append's first row, holding committed rows a reader
                    loc.write_marker(state)   # open across it reads: each new file listed
                bar.update()
            state["n_time"] = t1
            state.pop("pending", None)
            loc.write_marker(state)
            t0 = t1


def _pending(state: dict, arrays: dict, n_new: int) -> None:
    """Before an append rewrites the partial last chunk row: the CRC32C of each of its
    chunks' committed rows, so a kill after a chunk's write and before the index has
    its new file still opens (``pending`` of :class:`_Checked`, ``state["pending"]``)."""
    ct, ca, n_old = state["chunk_time"], state["chunk_asset"], state["n_time"]
    r, rows = n_old // ct, n_old % ct
    first = slice(n_old, min((r + 1) * ct, n_new))       # the append's first write
    state["pending"] = {"rows": n_old, "chunks": {}}
    for v, a in arrays.items():
        at = ([(r,)] if v == "time" else
              [(r, j) for j in range(-(-len(state["assets"]) // ca))])
        state["pending"]["chunks"][v] = {chunk_key(x): a.committed(x, rows, first)
                                         for x in at}
        a.pending = {"rows": n_old, "chunks": state["pending"]["chunks"][v]}


def _write_provenance(loc: _Where, state: dict, source: Path, files, shas, owner, g,
                      tarr, dates: dict) -> None:
    """Provenance (file hashes, owned assets, the day/month order its dates were read
    in: ``dates``, by file name, for the files read now) and calendar attributes, once
    every row is in."""
    state.pop("chunk", None)
    for f in files:
        a = [x for x, o in owner.items() if o == f]
        order = dates.get(f.name, state["files"].get(f.name, {}).get("dates"))
        state["files"][f.name] = {"sha256": shas[f.name], "assets": a, "aware": state["aware"],
                                  **({"dates": order} if order else {})}
    times = pd.DatetimeIndex(tarr[:state["n_time"]].view("datetime64[ns]"))
    attrs = {"source": str(source),
             "time_zone": "UTC" if state["aware"] else "as written (no UTC offset)",
             "source_files": sorted(state["files"]),
             "sha256": {k: v["sha256"] for k, v in sorted(state["files"].items())}}
    cal = xr.Dataset(coords={"time": times})
    _cal.annotate(cal, freq=state["freq"])
    attrs.update(cal.attrs)
    state["attrs"] = attrs
    g.attrs.update(attrs)
    loc.write_marker(state)


def _put(arr, t0, t1, a0, a1, values) -> None:
    """One variable's chunk (a seam the kill-and-resume test interrupts)."""
    arr[t0:t1, a0:a1] = values


# --------------------------------------------------------------------------- open

def open(store, chunks: dict | None = None, *,  # noqa: A001 (ql.data.open)
         storage_options: dict | None = None, verify: bool = False) -> xr.Dataset:
    r"""The store as a lazily loaded, dask-backed Dataset.

    Dims (time, asset), the variables, ``asset_class`` coord and attrs of
    :func:`ql.data.load_csv` (``source``, ``time_zone``, ``freq``, ``calendar``,
    ``periods_per_year``) plus provenance (``source_files``, ``sha256`` per file). Only
    complete chunk rows are shown: a store whose ingest was killed opens at its last
    complete row.

    Parameters
    ----------
    store : str or os.PathLike
        A store made by :func:`ingest`: a local path or an fsspec URL.
    chunks : dict, optional
        Dask chunks per dim (``time``, ``asset``; default: the store's; -1, or more than
        the dim holds: the whole dim).
    storage_options : dict, optional
        Passed to the URL's fsspec filesystem.
    verify : bool, default False
        Read every chunk once now (a full read of the store), so a damaged chunk is a
        DataError here rather than when the data are first computed; and trust nothing
        ingest checked: a backtest of this panel loads and validates every bar variable.
        Without it, a backtest of an ingested store reads only the variables it uses
        (ingest validated them all): arrays edited outside quantlab after ingest are
        checked by ``verify=True`` or ``ql.data.validate``, not by that backtest.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    DataError
        If ``store`` is not a quantlab store (a file, no marker), is empty, or its
        metadata are corrupt or not those written (the marker's and each zarr.json's
        checksums); when a damaged chunk, or one that is not the chunk written at its
        position (swapped, copied over: its CRC32C against the store's index), is read
        (at compute time, or at once with ``verify=True``), naming the variable and
        rows or chunk: re-run ingest.
    OSError
        A file of the store the disk will not read (permission denied, an I/O error),
        of its type and errno, naming the store (and, at compute time, the variable and
        rows): the store may be intact.

    Warns
    -----
    UncheckedStoreWarning
        Once per store, for a store written before the index existed: read as before.
    IncompleteStoreWarning
        For a store whose last ingest has not finished (running, killed, interrupted):
        its complete chunk rows are shown.
    ValueError
        If ``chunks`` names another dim or a size < 1.

    Examples
    --------
    >>> import pathlib, tempfile, quantlab as ql
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "ACME.csv").write_text("Date,Open,High,Low,Close,Volume\n"
    ...     "2024-01-02,10,11,9.5,10.5,1000\n2024-01-03,10.5,11.2,10.1,11,1200\n"
    ...     "2024-01-04,11,11.5,10.8,11.2,900\n")
    >>> path = ql.store.ingest(folder, folder / "store")
    >>> ds = ql.store.open(path)
    >>> ds["close"].values.ravel().tolist(), ds.attrs["calendar"]
    ([10.5, 11.0, 11.2], 'business_day')
    >>> ql.store.open(ql.store.ingest(folder / "ACME.csv", "memory://doc/open"))["close"].shape
    (3, 1)
    """
    import dask.array as da
    import dask.base

    _zarr()
    loc = _Where(store, storage_options, "open")
    try:
        state = loc.read_marker()
    except OSError as e:   # permission denied: said for which store
        raise _data.io_error(e, f"reading the store {loc.shown}", _UNREAD) from e
    if state is None:
        raise DataError(f"{loc.shown}: not a quantlab store (no {MARKER}); create it with "
                        "ql.data.ingest")
    n = state["n_time"]
    if n == 0:
        raise DataError(f"{loc.shown}: empty store (its first ingest stopped before a chunk row "
                        "was complete); rerun ql.data.ingest to resume")
    try:
        g = loc.group("r")
        arrays = {v: g[v] for v in ("time", *state["variables"])}
    except Exception as e:
        raise _corrupt(loc, e) from None
    for v, a in arrays.items():   # the marker's rows and assets must be in the arrays
        width = () if v == "time" else (len(state["assets"]),)
        if a.shape[0] < n or tuple(a.shape[1:]) != width:
            raise DataError(f"{loc.shown}: variable {v!r} holds {a.shape}, but the marker "
                            f"lists {n} rows x {len(state['assets'])} assets; re-run ingest "
                            "into a new store")
        # an edited zarr.json: chunks of another grid or dtype decode as damage or, same
        # sized, as other numbers (float64 bytes read as int64)
        grid = (state["chunk_time"], *((state["chunk_asset"],) if width else ()))
        dtype = np.dtype("int64" if v == "time" else "float64")
        if tuple(a.chunks) != grid or a.dtype != dtype:
            raise DataError(f"{loc.shown}: variable {v!r} is {a.dtype} in chunks "
                            f"{tuple(a.chunks)}, but the store writes {dtype} in chunks {grid} "
                            "(its zarr.json edited?); re-run ingest into a new store")
        codecs_ = [c.to_dict()["name"] for c in getattr(a.metadata, "codecs", ())]
        if codecs_[:1] != ["bytes"]:   # a transpose first reads every chunk scrambled
            raise DataError(f"{loc.shown}: variable {v!r} has codecs {codecs_}; the store "
                            "writes bytes, then a compressor (its zarr.json edited?); re-run "
                            "ingest into a new store")
    _warn_unfinished(loc, state, arrays["time"].shape[0])
    sealed = _sealed(loc, state, arrays)   # marker, metadata, then each chunk's identity
    if state.get("every_chunk"):   # then every chunk of those rows has its file
        _missing_chunk(loc, state, arrays)
    tz = _Checked(arrays["time"], loc.shown, "time", **_guards(state, "time", sealed, loc))
    ct, size = tz.chunks[0], tz.shape[0]               # (a FIFO hangs zarr's read)
    time = np.concatenate([tz[(slice(t0, min(t0 + ct, size)),)] for t0 in range(0, n, ct)]
                          )[:n].view("datetime64[ns]")
    if chunks is not None and not isinstance(chunks, dict):
        raise TypeError(f"open: chunks must be a dict {{'time': rows, 'asset': assets}} "
                        f"(-1: the whole dim) or None, got {chunks!r}")
    chunks = dict(chunks or {})
    for d in chunks:
        _v.choice("chunks dimension", d, ("time", "asset"))
    whole = {"time": n, "asset": len(state["assets"])}
    chunks = {d: whole[d] if c == -1 and not isinstance(c, bool) else c
              for d, c in chunks.items()}
    # longer than the dim: the whole dim (1e30 failed in dask's rechunk as "ufunc 'isnan'
    # not supported for the input types", an int64 overflow)
    ct = builtins.min(_v.integer("chunks['time']", chunks.get("time", state["chunk_time"]),
                                 1), builtins.max(n, 1))
    ca = builtins.min(_v.integer("chunks['asset']", chunks.get("asset", state["chunk_asset"]),
                                 1), builtins.max(whole["asset"], 1))
    token = dask.base.tokenize(loc.shown, json.dumps(state, sort_keys=True, default=str))
    data = {}
    for v in state["variables"]:
        z = _Checked(arrays[v], loc.shown, v, **_guards(state, v, sealed, loc))
        if verify:
            for t0 in range(0, n, state["chunk_time"]):
                z[t0:min(t0 + state["chunk_time"], n)]
        data[v] = (("time", "asset"), da.from_array(z, chunks=z.chunks, name=f"ql-store-{v}-"
                                                   f"{token}")[:n].rechunk((ct, ca)))
    ds = xr.Dataset(data, coords={"time": time, "asset": state["assets"],
                                  "asset_class": ("asset", state["asset_class"])})
    # every row came through ingest's reader, which validated its bars (see validated);
    # not rows written by write_panel, nor when verify asks for every bar to be checked
    if state["files"] and not state.get("unchecked") and not verify:
        for v in state["variables"]:
            ds[v].encoding[_VALIDATED] = ds[v].data.name
    ds.attrs.update(state["attrs"])
    if "freq" not in ds.attrs:      # a first ingest stopped: calendar of what is there
        _cal.annotate(ds, freq=state.get("freq"))
    ds.attrs["store"] = loc.shown
    return ds


def _warn_unfinished(loc: _Where, state: dict, planned: int) -> None:
    """An IncompleteStoreWarning when the store's last ingest has not finished: rows
    resized for (``planned``, the time array's length) but not committed, or its
    provenance not yet written. Such a store opens at its last complete chunk row on
    purpose (a reader beside a running ingest); a killed or interrupted one opened so
    without a word, as if whole."""
    n = state["n_time"]
    if planned > n or "chunk" in state:
        warnings.warn(f"{loc.shown}: its last ingest has not finished (still running, or "
                      f"stopped by a kill, an error or Ctrl-C): showing its first {n} rows"
                      + (f" of {planned}" if planned > n else "") + "; rerun "
                      "ql.data.ingest to finish it", IncompleteStoreWarning, stacklevel=3)


def _missing_chunk(loc: _Where, state: dict, arrays: dict) -> None:
    """A DataError naming the first chunk file missing from the store's complete rows
    (zarr reads a missing chunk as its fill value: NaN prices, 1970 times), looked up
    where each array's own key encoding puts it (an edited one would read every chunk as
    fill), or not a regular file (zarr hangs on a FIFO and reads a directory as fill)."""
    n, ct, ca = state["n_time"], state["chunk_time"], state["chunk_asset"]
    rows = range(-(-n // ct))
    for v in ("time", *state["variables"]):
        try:
            have = loc.fs.find(loc.key(v), detail=True)
        except FileNotFoundError:
            have = {}
        base = loc.fs._strip_protocol(loc.key(v))
        encode = arrays[v].metadata.chunk_key_encoding.encode_chunk_key
        want = ([(i,) for i in rows] if v == "time" else
                [(i, j) for i in rows for j in range(-(-len(state["assets"]) // ca))])
        for at in want:
            key = encode(at)
            info = have.get(f"{base}/{key}")
            problem = ("is missing (deleted or never written" if info is None else
                       None if info["type"] == "file" or (
                           loc.local and info.get("islink")
                           and os.path.isfile(info["name"])) else
                       "is not a regular file (a FIFO, device or link to one")
            if problem:
                raise DataError(f"{loc.shown}: variable {v!r}, rows {at[0] * ct}:"
                                f"{min((at[0] + 1) * ct, n)}: chunk {'/'.join(map(str, at))} "
                                f"{problem}; file {v}/{key}); re-run ingest into a new store")


_VALIDATED = "quantlab_validated"


def validated(var: xr.DataArray) -> bool:
    """True for a bar variable of an ingested store as :func:`open` returned it (without
    ``verify``; every row ingested, none by :func:`write_panel`): ingest validated its
    bars (``ql.data.validate``'s rules, by load_csv's reader), and its
    dask graph is the store's own (any change or selection makes a new graph), so a
    backtest need not load it only to check it again."""
    name = getattr(var.data, "name", None)
    return name is not None and var.encoding.get(_VALIDATED) == name


def _chunk_files(arr):
    """(fetch, checksum) of a zarr v3 array in the store's own codecs (little-endian
    bytes, Blosc, then optionally CRC32C: :func:`compressors`), whose chunks
    :class:`_Checked` decodes from their files: ``fetch(at, limit)`` returns the bytes of
    chunk ``at``'s file (at most ``limit``; a negative ``limit``: its last ``-limit``
    bytes; None: all) or None when it has none; None for any other array."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec   # lazy: zarr is optional
    from zarr.storage import LocalStore   # lazy: zarr is optional

    meta = getattr(arr, "metadata", None)
    codecs_ = tuple(getattr(meta, "codecs", ()))
    store = getattr(getattr(arr, "store_path", None), "store", None)
    if (getattr(meta, "zarr_format", None) != 3 or sys.byteorder != "little"
            or store is None
            or len(codecs_) not in (2, 3) or not isinstance(codecs_[0], BytesCodec)
            or getattr(codecs_[0].endian, "value", None) != "little"
            or not isinstance(codecs_[1], BloscCodec)
            or not all(isinstance(c, Crc32cCodec) for c in codecs_[2:])):
        return None
    encode = meta.chunk_key_encoding.encode_chunk_key
    if isinstance(store, LocalStore):
        folder = Path(store.root) / arr.store_path.path
        return (lambda at, limit: _local_bytes(folder / encode(at), limit)), len(codecs_) == 3
    from zarr.core.buffer import default_buffer_prototype   # lazy: zarr is optional
    from zarr.core.sync import sync   # lazy: zarr is optional
    prefix = f"{arr.store_path.path}/" if arr.store_path.path else ""

    def fetch(at, limit):   # any other zarr store (fsspec URLs, memory): through its API
        from zarr.abc.store import SuffixByteRequest   # lazy: zarr is optional

        # a suffix: the CRC32C a write records, not the whole chunk downloaded again
        suffix = None if limit is None or limit >= 0 else SuffixByteRequest(-limit)
        got = sync(store.get(prefix + encode(at), prototype=default_buffer_prototype(),
                             byte_range=suffix))
        raw = None if got is None else got.to_bytes()
        return raw if raw is None or limit is None or limit < 0 else raw[:limit]
    return fetch, len(codecs_) == 3


def _local_bytes(path: Path, limit: int) -> bytes | memoryview | None:
    """The bytes of a local chunk file (see :func:`_chunk_files`), None if it has none.
    At most ``limit`` bytes (up to :data:`_SCRATCH_MAX`) are read into this thread's
    scratch buffer, valid until the thread's next read: ``f.read(limit)`` allocated a
    fresh ``limit``-byte object per chunk, whose first touch cost a page fault per 4 kB
    (~15k per streamed portfolio run of 200 assets x 130k minute bars, ~8 % of its
    CPU with the decode's own)."""
    try:   # non-blocking: a FIFO must not hang the read (zarr's would); binary on
        # Windows (else its C runtime turns CRLF into LF and stops at a Ctrl-Z byte)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):   # zarr: a directory is fill
        os.close(fd)
        raise ValueError(f"chunk file {path} is not a regular file")
    with builtins.open(fd, "rb") as f:
        if limit is not None and limit < 0:
            f.seek(max(0, os.fstat(fd).st_size + limit))
            limit = -limit
        # at most a frame's size and one byte more: a huge file is damage, not read
        if limit is None or limit > _SCRATCH_MAX:
            return f.read(limit)
        buf = getattr(_scratch, "buf", None)
        if buf is None or len(buf) < limit:   # a new one: views of the old stay valid
            buf = _scratch.buf = bytearray(limit)
        return memoryview(buf)[:f.readinto(memoryview(buf)[:limit])]


_scratch = threading.local()   # each reading thread's buffer for :func:`_local_bytes`
_SCRATCH_MAX = 1 << 26   # 64 MiB: a larger chunk is read into its own bytes


_BLOSC_OVERHEAD = 16   # a Blosc frame's header: at most this beyond the data it holds


def _decoded(raw: bytes, checksum: bool, out: np.ndarray) -> np.ndarray:
    """``out`` filled from one chunk file's bytes ``raw`` (Blosc, then a CRC32C of it if
    ``checksum``), as zarr's codecs decode it. A wrong checksum or a frame whose sizes
    (Blosc's header: bytes 4-8 the decoded size, 12-16 the frame's) do not match raises
    ValueError: a short frame decoded into ``out`` would leave its end unwritten."""
    import crc32c   # lazy: a store's reads only
    import numcodecs.blosc   # lazy: a store's reads only (zarr's dependency)

    frame = memoryview(raw)
    if checksum:
        frame = frame[:-4]
        if len(raw) < 4 or crc32c.crc32c(frame) != int.from_bytes(raw[-4:], "little"):
            raise ValueError("Stored and computed checksum do not match")
    if (len(frame) < _BLOSC_OVERHEAD or int.from_bytes(frame[4:8], "little") != out.nbytes
            or int.from_bytes(frame[12:16], "little") != len(frame)):
        raise ValueError(f"a Blosc frame of {len(frame)} bytes is not a chunk of "
                         f"{out.nbytes} bytes")
    numcodecs.blosc.decompress(frame, out)
    return out


def row_writer(arr):
    """``put(t0, values)``: rows ``t0:t0 + len(values)`` of ``arr`` (a local zarr array in
    the store's own codecs, or uncompressed little-endian bytes; one chunk across its
    other dims), each whole chunk encoded and written straight into its file, the bytes
    zarr writes (an edge chunk padded with the fill value, as zarr pads it); rows that are
    not whole chunks go through zarr. Each file is written whole or not at all (a
    temporary file renamed over it, as zarr writes). zarr's own write of a (8192, 200)
    float64 chunk cost ~2.4x its Blosc encode and file write (its asyncio codec pipeline;
    1.0 vs 0.42 s CPU for a streamed backtest's 3 x 16 such chunks). None for any other
    array."""
    from zarr.storage import LocalStore   # lazy: zarr is optional

    store, encode = arr.store_path.store, _chunk_encoder(arr)
    if (encode is None or not isinstance(store, LocalStore)
            or tuple(arr.chunks[1:]) != tuple(arr.shape[1:])):
        return None
    folder = Path(store.root) / arr.store_path.path
    c, n, dtype = arr.chunks[0], arr.shape[0], np.dtype(arr.dtype)
    key = arr.metadata.chunk_key_encoding.encode_chunk_key

    def put(t0: int, values: np.ndarray) -> None:
        t1 = t0 + len(values)
        if t0 % c or (t1 % c and t1 != n):
            arr[t0:t1] = values
            return
        for r in range(t0, t1, c):
            block = values[r - t0:r - t0 + c]
            if len(block) < c or block.dtype != dtype or not block.flags.c_contiguous:
                block = np.empty((c, *arr.shape[1:]), dtype)   # padded as zarr pads
                block[:min(c, t1 - r)] = values[r - t0:r - t0 + c]
                block[min(c, t1 - r):] = arr.metadata.fill_value
            path = folder / key((r // c,) + (0,) * (arr.ndim - 1))
            path.parent.mkdir(parents=True, exist_ok=True)
            # a whole chunk's rows as they are (no copy), into a temporary file renamed
            # over the chunk's, as zarr writes: a write killed half-way (a full disk)
            # left half a chunk that later read as zarr's "cannot reshape" or a Blosc
            # error, the rows it held lost; now the chunk is the old one or the new one
            _replace(path.with_name(f"{path.name}.partial"), path,
                     lambda f, b=encode(block): f.write_bytes(b))
    return put


def _chunk_encoder(arr):
    """``encode(block)``: a C-contiguous chunk's file bytes as ``arr``'s codecs make them,
    for the store's own codecs (Blosc, then optionally CRC32C) or none (little-endian
    bytes: the file is the chunk's memory, written without a copy); else None."""
    import numcodecs   # lazy: zarr's dependency, a store's writes only
    from zarr.codecs import BytesCodec   # lazy: zarr is optional

    codecs_ = tuple(getattr(arr.metadata, "codecs", ()))
    if (arr.metadata.zarr_format == 3 and sys.byteorder == "little" and len(codecs_) == 1
            and isinstance(codecs_[0], BytesCodec)
            and getattr(codecs_[0].endian, "value", "little") == "little"):
        return memoryview
    files = _chunk_files(arr)
    if files is None:
        return None
    spec = codecs_[1]
    blosc = numcodecs.Blosc.from_config(   # as zarr's BloscCodec configures it
        {"cname": spec.cname.value, "clevel": spec.clevel, "blocksize": spec.blocksize,
         "shuffle": {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[spec.shuffle.value],
         "typesize": spec.typesize})
    if not files[1]:
        return blosc.encode

    def checked(block):
        import crc32c   # lazy: zarr's dependency, a store's writes only
        frame = blosc.encode(block)
        return frame + crc32c.crc32c(frame).to_bytes(4, "little")
    return checked


def _identity(raw: bytes, checksum: bool) -> int:
    """What the store's index records of a chunk file: the CRC32C of its compressed
    bytes, which a store's codecs append (its last 4 bytes: no cost to read back), or
    of the whole file without that codec."""
    import crc32c   # lazy: a store's reads only

    return int.from_bytes(raw[-4:], "little") if checksum else crc32c.crc32c(raw)


_UNREAD = "the store is unchanged: fix the permissions or the disk and read it again"


def _unread(e: Exception) -> bool:
    """An OSError of the disk (permission denied, an I/O error), not of a missing file."""
    return isinstance(e, OSError) and not isinstance(
        e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, gzip.BadGzipFile))


def _not_the_chunk(e: Exception) -> bool:
    """True for the disk's or memory's errors, raised as they are; not for a codec's
    OSError (gzip's BadGzipFile: a chunk that is not gzip data is damage)."""
    return isinstance(e, (OSError, MemoryError)) and not isinstance(e, gzip.BadGzipFile)


def chunk_key(at) -> str:
    """A chunk's key in a store's index: its grid position, ``"3.0"``."""
    return ".".join(map(str, at))


class _Checked:
    """A zarr array whose read and write errors (a truncated or damaged chunk: the
    codec's "decompression error", short reads; an append that fills a partial chunk
    decodes it first) are a DataError naming the store, variable and rows (and, for a
    write, the chunk), wherever dask computes them or ingest appends.

    ``index`` (a store's ``chunks[var]``: chunk key -> :func:`_identity` of the file
    written there; None for a store written before it) is checked on every chunk read,
    so a chunk swapped with another, copied from elsewhere or edited is a DataError, and
    kept up to date by every write. ``pending`` (``{"rows": n, "chunks": {key: crc}}``):
    the chunks an append is rewriting, whose first rows up to ``n`` must keep the CRC32C
    recorded before (a kill between the write and the index's update)."""

    def __init__(self, arr, shown: str, var: str, index: dict | None = None,
                 pending: dict | None = None, refresh=None):
        self.arr, self.shown, self.var = arr, shown, var
        self.dtype, self.ndim, self.chunks = arr.dtype, arr.ndim, arr.chunks
        self.index, self.pending, self.refresh = index, pending, refresh
        self._files = _chunk_files(arr)
        if self._files is None and index is not None:   # open checked the codecs
            raise DataError(f"{shown}: variable {var!r}: its chunks cannot be checked "
                            "against the store's index on this machine (big-endian?); "
                            "read the store on a little-endian one")

    @property
    def shape(self):
        return self.arr.shape

    def resize(self, shape) -> None:
        self.arr.resize(shape)

    def __getitem__(self, key):
        try:
            got = None if self._files is None else self._read(key)
            return self.arr[key] if got is None else got
        except DataError:
            raise
        except Exception as e:    # codec errors have no common type (RuntimeError, ValueError)
            if _unread(e):       # permission denied: which store, variable and rows
                rows = self._rows(key)
                raise _data.io_error(e, f"reading the store {self.shown}, variable "
                                     f"{self.var!r}, rows {rows}", _UNREAD) from e
            if _not_the_chunk(e):
                raise
            raise self._damaged(key, e, "") from None

    def _read(self, key):
        """The values ``key`` (a slice per dim) selects, decoded from the chunk files
        here: zarr's asyncio read of a (8192, 64) chunk cost ~3x its Blosc decode, most
        of it Python holding the GIL (a streamed portfolio of 200 assets x 130k minute
        bars, medians of 7 on 2 cores: 1 dask worker 0.76 -> 0.57-0.65 s, 2 workers
        0.63-0.67 -> 0.53-0.59 s). None (zarr reads it) for any other key; without an
        index, also for a key that is not one whole chunk (as dask's ``from_array``
        asks) or a chunk without a file (zarr's fill value)."""
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim or not all(isinstance(k, slice) for k in key):
            return None
        span = [k.indices(n) for k, n in zip(key, self.arr.shape)]
        if any(s[2] != 1 or s[1] <= s[0] for s in span):
            return None
        whole = all(a % c == 0 and b == min(a + c, n)
                    for (a, b, _), c, n in zip(span, self.chunks, self.arr.shape))
        if whole:
            out = self._chunk(tuple(a // c for (a, _, _), c in zip(span, self.chunks)))
            if out is None:
                return None
            edge = tuple(slice(0, b - a) for a, b, _ in span)
            return np.ascontiguousarray(out[edge])   # an edge chunk: its part, as zarr's
        if self.index is None:
            return None
        got = np.empty([b - a for a, b, _ in span], self.dtype)   # several chunks' parts
        ranges = [range(a // c, -(-b // c)) for (a, b, _), c in zip(span, self.chunks)]
        for at in np.ndindex(*map(len, ranges)):
            at = tuple(int(r[i]) for r, i in zip(ranges, at))
            lo = [max(a, i * c) for (a, _, _), i, c in zip(span, at, self.chunks)]
            hi = [min(b, (i + 1) * c) for (_, b, _), i, c in zip(span, at, self.chunks)]
            dst = tuple(slice(x - a, y - a) for x, y, (a, _, _) in zip(lo, hi, span))
            src = tuple(slice(x - i * c, y - i * c)
                        for x, y, i, c in zip(lo, hi, at, self.chunks))
            one = self._chunk(at)
            got[dst] = self.arr.fill_value if one is None else one[src]
        return got

    def _chunk(self, at):
        """Chunk ``at`` (whole, padding included) decoded from its file and checked
        against the index; None for a chunk without a file that the index does not
        list (zarr's fill value)."""
        fetch, checksum = self._files
        out = np.empty(self.chunks, self.dtype)
        raw = fetch(at, out.nbytes + _BLOSC_OVERHEAD + 4 * checksum + 1)
        key = chunk_key(at)
        if raw is None:
            if self.index is not None and key in self.index:
                raise self._not_written(key, "its file is missing")
            return None
        out = _decoded(raw, checksum, out)
        if self.index is not None:
            got = _identity(raw, checksum)
            want = self.index.get(key)
            if got != want and not self._kept(key, at, out) and not self._appended(key, got):
                raise self._not_written(key, "none was recorded there" if want is None else
                                        f"checksum {got:08x}, written {want:08x}")
        return out

    def _kept(self, key: str, at, out: np.ndarray) -> bool:
        """A chunk an append was rewriting when it stopped: its committed rows intact."""
        import crc32c   # lazy: a store's reads only

        pend = self.pending or {}
        want = pend.get("chunks", {}).get(key)
        rows = pend.get("rows", 0) - at[0] * self.chunks[0]
        return (want is not None and 0 < rows < self.chunks[0]
                and crc32c.crc32c(np.ascontiguousarray(out[:rows])) == want)

    def _appended(self, key: str, got: int) -> bool:
        """The chunk an append rewrote since this reader opened the store (its last,
        partly filled chunk row): the marker now lists it, and an append keeps the rows
        written before (a reader reads only those). Else a reader open across an append
        was refused its last chunk row (an outside review)."""
        if self.refresh is None:
            return False
        try:
            now = self.refresh()
        except DataError:
            return False
        if now.get(key) != got:
            return False
        self.index[key] = got
        return True

    def committed(self, at, rows: int, write) -> int:
        """The CRC32C of chunk ``at``'s first ``rows`` rows as stored (checked), which
        the append's ``write`` (its first rows' slice) must keep (``pending``)."""
        import crc32c   # lazy: a store's writes only

        try:
            out = self._chunk(at)
        except DataError:
            raise
        except Exception as e:
            if _not_the_chunk(e):
                raise
            raise self._damaged((write,), e, f", chunk {at} (appending)") from None
        if out is None:
            raise self._not_written(chunk_key(at), "its file is missing")
        return crc32c.crc32c(np.ascontiguousarray(out[:rows]))

    def _not_written(self, key: str, why: str) -> DataError:
        return DataError(f"store {self.shown}: {self.var} chunk {key} is not the chunk "
                         f"written there ({why}: swapped, copied over, edited or deleted "
                         "after it was written); re-run ingest into a new store")

    def __setitem__(self, key, value) -> None:
        try:
            self.arr[key] = value
        except Exception as e:
            if _not_the_chunk(e):   # a full disk is not a damaged chunk
                raise
            key = key if isinstance(key, tuple) else (key,)
            chunk = tuple((k.start or 0) // c if isinstance(k, slice) else k // c
                          for k, c in zip(key, self.chunks))
            raise self._damaged(key, e, f", chunk {chunk} (appending)") from None
        if self.index is not None:
            self._record(key)

    def _record(self, key) -> None:
        """The index's entries for the chunks a write of ``key`` (slices) rewrote."""
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        span = [k.indices(n)[:2] for k, n in zip(key, self.arr.shape)]
        fetch, checksum = self._files
        for at in np.ndindex(*[max(0, -(-b // c) - a // c)
                               for (a, b), c in zip(span, self.chunks)]):
            at = tuple(int(i) + a // c for i, (a, _), c in zip(at, span, self.chunks))
            raw = fetch(at, -4 if checksum else None)
            if raw is None:
                raise OSError(f"{self.shown}: {self.var} chunk {chunk_key(at)} was not "
                              "written (no file after the write)")
            self.index[chunk_key(at)] = _identity(raw, checksum)

    @staticmethod
    def _rows(key) -> str:
        rows = key[0] if isinstance(key, tuple) else key
        return f"{rows.start or 0}:{rows.stop}" if isinstance(rows, slice) else str(rows)

    def _damaged(self, key, e: Exception, where: str) -> DataError:
        rows = self._rows(key)
        return DataError(f"{self.shown}: variable {self.var!r}, rows {rows}{where}: damaged "
                         f"chunk ({type(e).__name__}: {e}); re-run ingest into a new store")


# --------------------------------------------------------------------------- writer

def write_panel(store, pieces, assets, variables=_data.BAR_VARS, *, asset_class="unknown",
                chunk_time=None, chunk_asset=None, source="generated", freq=None) -> Path:
    """Write a panel given as consecutive time pieces straight into a new store, one chunk
    row in memory (the synthetic-data generator's path; no files, no staging).

    ``pieces``: an iterable of ``(times, {variable: array (len(times), len(assets))})``,
    times datetime64/int64 ns, strictly increasing across pieces. Committed per chunk row
    like :func:`ingest`. Returns the store's path."""
    loc = _Where(store, None, "write_panel")
    if loc.fs.isfile(loc.root) or loc.entries() - {_LOCK}:   # a refused ingest's lock
        raise DataError(f"{loc.shown}: not empty; write_panel creates a new store")
    ct = _v.integer("chunk_time", chunk_time or CHUNK_TIME, 1, 10 ** 7)
    ca = _v.integer("chunk_asset", chunk_asset or CHUNK_ASSET, 1, 10 ** 5)
    variables = list(variables)
    state = {"format": FORMAT, "n_time": 0, "chunk_time": ct, "chunk_asset": ca,
             "assets": [str(a) for a in assets], "asset_class": [asset_class] * len(assets),
             "variables": variables, "aware": False, "freq": freq, "files": {}, "attrs": {},
             "every_chunk": True,
             "unchecked": True}   # its rows never passed ingest's checks (see open)
    try:   # a full disk, no permission, a read-only one: named, as ingest's are
        loc.fs.makedirs(loc.root, exist_ok=True)
        _write_pieces(loc, state, pieces, source, freq)
    except OSError as e:
        raise _data.io_error(e, f"write_panel into {loc.shown}", "the store is "
                             "incomplete: remove it and write it again") from e
    return Path(loc.shown) if "://" not in loc.shown else loc.shown


def _write_pieces(loc: _Where, state: dict, pieces, source: str, freq) -> None:
    """write_panel's rows, as it documents (``state``: the new store's marker)."""
    ct, ca, variables, assets = (state["chunk_time"], state["chunk_asset"],
                                 state["variables"], state["assets"])
    g, tarr, arrs = _open_arrays(loc, state, create=True)
    loc.write_marker(state)
    buf_t, buf = [], {v: [] for v in variables}
    last = None

    def flush(n_rows):
        t = np.concatenate(buf_t)
        blocks = {v: np.concatenate(buf[v]) for v in variables}
        t0, t1 = state["n_time"], state["n_time"] + n_rows
        tarr.resize((t1,))
        tarr[t0:t1] = t[:n_rows]
        for v in variables:
            arrs[v].resize((t1, len(assets)))
            for a0 in range(0, len(assets), ca):
                _put(arrs[v], t0, t1, a0, min(a0 + ca, len(assets)), blocks[v][:n_rows, a0:a0 + ca])
        state["n_time"] = t1
        loc.write_marker(state)
        buf_t[:] = [t[n_rows:]]
        for v in variables:
            buf[v][:] = [blocks[v][n_rows:]]

    for times, values in pieces:
        times = np.asarray(times).astype("datetime64[ns]").view(np.int64)
        if times.size and ((np.diff(times) <= 0).any() or (last is not None and times[0] <= last)):
            raise DataError("write_panel: times not strictly increasing")
        if times.size:
            last = times[-1]
        buf_t.append(times)
        for v in variables:
            buf[v].append(np.asarray(values[v], np.float64).reshape(len(times), len(assets)))
        while sum(map(len, buf_t)) >= ct:
            flush(ct)
    if sum(map(len, buf_t)):
        flush(sum(map(len, buf_t)))
    times = pd.DatetimeIndex(tarr[:state["n_time"]].view("datetime64[ns]"))
    cal = xr.Dataset(coords={"time": times})
    _cal.annotate(cal, freq=freq)
    state["attrs"] = {"source": source, "time_zone": "as written (no UTC offset)",
                      "source_files": [], "sha256": {}, **cal.attrs}
    g.attrs.update(state["attrs"])
    loc.write_marker(state)
