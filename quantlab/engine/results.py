"""``TickResult``: what one batch of ticks produced (counts, orders, wall time)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from quantlab import compat

__all__ = ["TickResult"]


@dataclass
class TickResult:
    """One batch: counts, the orders, and the batch's wall time. ``order_array`` holds the
    orders as the rows (tick index, symbol, signed qty, price in ticks) of a (4, orders)
    int64 array; the ``orders`` DataFrame (price in currency) is built on first access,
    because building one (~60 µs) takes longer than processing a hundred ticks.

    Parameters
    ----------
    ticks, signal_count, order_count, rejected_ticks, rejected_orders : int
        The batch's counts.
    processing_time_us : float
        Its wall time in µs (the dict path's includes parsing).
    order_array : ndarray
        (4, orders) int64: tick index, symbol, signed qty, price in ticks.
    tick_size : float
        Currency per tick (the ``orders`` prices).

    Examples
    --------
    >>> from quantlab.engine import TickEngine
    >>> from quantlab.testing import synthetic_ticks
    >>> res = TickEngine().process_ticks(synthetic_ticks(2000, n_symbols=5, seed=1))
    >>> res.order_count, res["order_count"], res.order_array.shape
    (274, 274, (4, 274))
    >>> res.orders.head(2)
       tick  symbol_id  qty   price
    0   297          2  100  100.06
    1   298          4  100  100.13
    """

    ticks: int
    signal_count: int
    order_count: int
    rejected_ticks: int
    rejected_orders: int
    processing_time_us: float
    order_array: np.ndarray = field(repr=False)
    tick_size: float = field(repr=False)

    # the seed reads results as dicts (quantlab.compat): result["order_count"],
    # result.get("signal_count"), result["processing_latency_ms"]
    def __getitem__(self, key):
        return compat.tick_result_item(self, key)

    def get(self, key, default=None):
        """``result[key]`` for a seed key, else ``default`` (as ``dict.get``).

        Parameters
        ----------
        key : str
            A seed key (``keys()``).
        default : object
            Returned for any other key.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> res = TickEngine().process_market_data([])
        >>> res.get("order_count"), res.get("no such key", -1)
        (0, -1)
        """
        try:
            return compat.tick_result_item(self, key)
        except KeyError:
            return default

    def keys(self) -> list:
        """The seed's keys (``quantlab.compat.TICK_RESULT_KEYS`` and ``TICK_RESULT_UNITS``).

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> TickEngine().process_market_data([]).keys()[:3]
        ['ticks', 'signal_count', 'order_count']
        """
        return [*compat.TICK_RESULT_KEYS, *compat.TICK_RESULT_UNITS]

    def __contains__(self, key) -> bool:
        try:
            return key in compat.TICK_RESULT_KEYS or key in compat.TICK_RESULT_UNITS
        except TypeError:           # an unhashable key
            return False

    def __iter__(self):             # dict(result), `for key in result`: the seed's keys
        return iter(self.keys())

    @cached_property
    def orders(self) -> pd.DataFrame:
        tick, symbol, qty, price = self.order_array
        return pd.DataFrame({"tick": tick, "symbol_id": symbol, "qty": qty,
                             "price": price * self.tick_size})

    @classmethod
    def combine(cls, parts, tick_size) -> "TickResult":
        """One result for consecutive batches (their order tick indices already offset).

        Parameters
        ----------
        parts : list of TickResult
            The batches, in order.
        tick_size : float
            Currency per tick.

        Returns
        -------
        TickResult

        Examples
        --------
        >>> from quantlab.engine import TickEngine, TickResult
        >>> from quantlab.testing import synthetic_ticks
        >>> cols, eng = synthetic_ticks(2000, n_symbols=5, seed=1), TickEngine()
        >>> parts = [eng.process_ticks({k: v[i:i + 1000] for k, v in cols.items()})
        ...          for i in (0, 1000)]
        >>> both = TickResult.combine(parts, eng.tick_size)
        >>> both.ticks, both.order_count
        (2000, 274)
        """
        counts = ("ticks", "signal_count", "order_count", "rejected_ticks", "rejected_orders",
                  "processing_time_us")
        totals = {k: sum(getattr(p, k) for p in parts) for k in counts}
        totals["processing_time_us"] = float(totals["processing_time_us"])
        orders = np.concatenate([p.order_array for p in parts] + [np.empty((4, 0), np.int64)],
                                axis=1)
        return cls(**totals, order_array=orders, tick_size=tick_size)

