"""Per-bar signals for deployments (issue #27): a strategy's exposure at each new bar from
state carried between bars, instead of recomputing its whole trailing window.

A strategy opts in by overriding ``Strategy._live(**params, **inputs)`` to return a
:class:`LiveSignal`; ``Strategy.live(**inputs)`` returns it (None for strategies without
one and for list-valued parameters: the deployment then recomputes the trailing window).

The contract, checked per strategy against ``signal`` on real data:

- ``update(i, time, rows)`` is called once per bar in time order, from the first bar the
  deployment holds; ``i`` is that bar's index counted from the first bar of the
  deployment's history (so rebalance phases, ``i % period``, match ``signal``'s).
- It returns the exposure per asset at that bar (float64, NaN = hold, clipped to
  [-1, 1]), equal to the last row of ``strategy.signal`` over the bars fed so far, to
  1e-9 relative.
- Values must not depend on where the feed started beyond the strategy's ``warmup``:
  compute each window's statistic from that window (no running sums over the whole
  feed), so a deployment restored from its buffered bars (2 x ``warmup`` + ``period``,
  refed with their indices, after a bar holding only each asset's last close before
  them: ``close``, NaN elsewhere) continues with the same bits as one that never stopped.
  (Strategies whose ``warmup`` is None keep all bars and are refed all of them.)
- External inputs: ``ql.deploy(..., inputs=)`` passes those the strategy declares;
  without them ``live()`` gets none and uses the bundled defaults itself.

Helpers: :class:`Rows` (the trailing rows, no copies), :class:`Returns` (simple returns
bridging gaps, as ``ql.data.returns``), :func:`rank_last` (``ql.rolling.rank``'s last
row) and :func:`rolling_last` (a block kernel's last row with the whole feed's bits).
"""
from __future__ import annotations

import abc

import numpy as np

from quantlab.data import CARRY_BARS

__all__ = ["LiveSignal", "Rows", "Returns", "rank_last", "rolling_last"]


class LiveSignal(abc.ABC):
    """The exposure of one strategy (one parameter combination), bar by bar.

    ``periods`` is the bars' periods per year, as ``signal`` reads the data's calendar
    (``ql.calendar.periods_for``): a deployment sets it to its own before the first bar,
    for a signal that annualises (volatility_regime's ``target_vol``).

    Examples
    --------
    >>> import numpy as np
    >>> class Last(LiveSignal):          # long when the close rose since the last bar
    ...     def __init__(self):
    ...         self.rows = Rows(2)
    ...     def update(self, i, time, rows):
    ...         w = self.rows.push(rows["close"])
    ...         return np.sign(w[-1] - w[0]) if len(w) == 2 else np.full(w.shape[1], np.nan)
    >>> s = Last()
    >>> s.update(0, None, {"close": np.array([1.0, 2.0])})
    array([nan, nan])
    >>> s.update(1, None, {"close": np.array([1.5, 1.0])})
    array([ 1., -1.])
    """

    periods: float = 252

    @abc.abstractmethod
    def update(self, i: int, time, rows: dict) -> np.ndarray:
        """The exposure per asset at a new bar.

        Parameters
        ----------
        i : int
            The bar's index from the first bar of the deployment's history.
        time : numpy.datetime64
            The bar's timestamp.
        rows : dict
            Variable name -> float64 array (asset,) of this bar (NaN: no bar).

        Returns
        -------
        numpy.ndarray
            float64 (asset,) in [-1, 1]; NaN = hold.

        Examples
        --------
        See :class:`LiveSignal`.
        """


class Rows:
    """The last ``k`` rows pushed, as one contiguous (rows, asset) array without copies.

    Each row is written twice into a (2k, asset) buffer, so the trailing window is always
    one slice of it (O(asset) per push, no concatenation).

    Parameters
    ----------
    k : int
        Rows kept (>= 1).

    Examples
    --------
    >>> import numpy as np
    >>> r = Rows(2)
    >>> r.push(np.array([1.0, 2.0]))
    array([[1., 2.]])
    >>> _ = r.push(np.array([3.0, 4.0])); r.push(np.array([5.0, 6.0]))
    array([[3., 4.],
           [5., 6.]])
    """

    def __init__(self, k: int):
        if int(k) < 1:
            raise ValueError(f"Rows needs k >= 1, got {k!r}")
        self.k, self.n, self._pos, self._buf = int(k), 0, 0, None

    def push(self, row: np.ndarray) -> np.ndarray:
        """Append ``row`` and return the window of the last min(n, k) rows (a view).

        Parameters
        ----------
        row : numpy.ndarray
            One bar's values (asset,).

        Returns
        -------
        numpy.ndarray
            (min(n, k), asset) view; valid until the next push.

        Examples
        --------
        >>> import numpy as np
        >>> Rows(3).push(np.array([1.0])).shape
        (1, 1)
        """
        row = np.asarray(row, dtype=np.float64)
        if self._buf is None:
            self._buf = np.empty((2 * self.k, row.shape[0]))
        self._buf[self._pos] = row
        self._buf[self._pos + self.k] = row
        self._pos = (self._pos + 1) % self.k
        self.n += 1
        return self.window()

    def window(self) -> np.ndarray:
        """The last min(n, k) rows, oldest first (a view).

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> import numpy as np
        >>> r = Rows(2); _ = r.push(np.array([7.0])); r.window()
        array([[7.]])
        """
        m = min(self.n, self.k)
        if self._buf is None:
            return np.empty((0, 0))
        end = self._pos + self.k
        return self._buf[end - m:end]


class Returns:
    """Simple returns bar by bar, as ``ql.data.returns`` over the whole feed:
    r_t = p_t / p_last - 1, p_last the last valid price before t (a gap is bridged by the
    first bar after it); NaN where p_t is NaN or no earlier price exists. ``last`` is the
    last valid price (pandas ``ffill``), ``carried`` the price ``ql.data.carried`` gives
    (carried at most ``CARRY_BARS`` bars), ``held`` where it is carried over no bar,
    ``gone`` where an asset that had a price has none within them (delisted, or halted
    longer).

    Examples
    --------
    >>> import numpy as np
    >>> r = Returns()
    >>> r.push(np.array([100.0, np.nan]))
    array([nan, nan])
    >>> _ = r.push(np.array([np.nan, 5.0])); r.push(np.array([110.0, 6.0]))
    array([0.1, 0.2])
    >>> r.last
    array([110.,   6.])
    >>> for _ in range(6): _ = r.push(np.array([np.nan, 7.0]))
    >>> r.carried, r.gone
    (array([nan,  7.]), array([ True, False]))
    """

    def __init__(self):
        self.last = self.age = None     # age: bars since the last valid price (0: now)

    def push(self, price: np.ndarray, carry: bool = False) -> np.ndarray:
        """The returns at a new bar; updates ``last``.

        Parameters
        ----------
        price : numpy.ndarray
            The bar's prices (asset,); NaN: no bar.
        carry : bool, default False
            Returns of the carried prices (``returns(carried(close))``): 0 on a missing
            bar whose price is carried, instead of NaN.

        Returns
        -------
        numpy.ndarray
            float64 (asset,).

        Examples
        --------
        >>> import numpy as np
        >>> r = Returns()
        >>> r.push(np.array([1.0])), r.push(np.array([np.nan]), carry=True)
        (array([nan]), array([0.]))
        """
        price = np.asarray(price, dtype=np.float64)
        if self.last is None:
            self.last = np.full(price.shape, np.nan)
            self.age = np.zeros(price.shape, dtype=np.int64)
        with np.errstate(all="ignore"):   # NaN = no bar; no warning for it
            r = price / self.last - 1.0
        missing = np.isnan(price)
        self.last = np.where(missing, self.last, price)
        self.age = np.where(missing, self.age + 1, 0)
        if carry:   # a carried price is the last one (after a price, c_last is p_last)
            r = np.where(self.held, 0.0, r)
        return r

    @property
    def held(self) -> np.ndarray:
        """Assets without a price at the last bar pushed whose last one is carried."""
        return (self.age > 0) & ~np.isnan(self.carried)

    @property
    def carried(self) -> np.ndarray:
        """The last valid price where it is at most ``CARRY_BARS`` bars old, else NaN:
        ``ql.data.carried``'s row at the last bar pushed."""
        return np.where(self.age <= CARRY_BARS, self.last, np.nan)

    @property
    def gone(self) -> np.ndarray:
        """Assets that had a price but none in the last ``CARRY_BARS`` + 1 bars."""
        return ~np.isnan(self.last) & (self.age > CARRY_BARS)


def rank_last(window: np.ndarray, minp: int = 1) -> np.ndarray:
    """Percentile rank of the window's last row among its finite values, per column:
    ``ql.rolling.rank``'s value at the window's last row (pandas ``rolling.rank(pct=True,
    method="average")``): (less + (equal + 1) / 2) / n, n the finite values; NaN where the
    last value is not finite or n < ``minp``.

    Parameters
    ----------
    window : numpy.ndarray
        (rows, asset), oldest first (e.g. :meth:`Rows.push`'s window).
    minp : int, default 1
        Finite values needed.

    Returns
    -------
    numpy.ndarray
        float64 (asset,) in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rank_last(np.array([[1.0, 3.0], [2.0, np.nan], [2.0, 1.0]]))
    array([0.83333333, 0.5       ])
    >>> rank_last(np.array([[1.0], [np.nan], [2.0]]), minp=3)
    array([nan])
    """
    x = window[-1]
    finite = np.isfinite(window)
    n = finite.sum(axis=0)
    less = ((window < x) & (window != -np.inf)).sum(axis=0)
    equal = (window == x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = (less + (equal + 1) * 0.5) / n
    return np.where(np.isfinite(x) & (n >= max(minp, 1)), pct, np.nan)


def rolling_last(fn, rows: Rows, i: int, window: int) -> np.ndarray:
    """``fn(x, window)[-1]`` (a ``ql.rolling`` function on NumPy rows) at bar ``i``, with
    the bits of ``fn`` over the whole feed.

    The block kernels (sum, mean, var, std, min, max) cut the rows into blocks of
    ``window`` from the first row and read, for row i, its block and the one before: so
    ``rows`` (kept with ``Rows(2 * window)``) from that block's start on give the same
    value, and ties between windows rank as in ``signal``. A feed that started later
    than that block uses the rows it has.

    Parameters
    ----------
    fn : callable
        E.g. ``ql.rolling.std``.
    rows : Rows
        The last rows fed, ``k >= 2 * window``; the last one is bar ``i``.
    i : int
        The bar's index from the first bar of the feed.
    window : int
        The window of ``fn``.

    Returns
    -------
    numpy.ndarray
        (asset,).

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> r = Rows(2 * 5)
    >>> got = [rolling_last(ql.rolling.std, r, i, 5) for i in range(50) if r.push(x[i]) is not None]
    >>> bool((np.array(got) == ql.rolling.std(x, 5))[4:].all())
    True
    """
    w = rows.window()
    first = max(0, (i // window - 1) * window)
    return fn(w[-min(len(w), i - first + 1):], window)[-1]
