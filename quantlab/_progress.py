"""Progress bars of long steps (an ingest, an out-of-core backtest, a sweep, a search,
a suite of notebooks): tqdm's, on stderr or as a notebook widget, shown only once a step
has run :data:`DELAY` seconds, so the many short calls of a session print nothing. The
one place quantlab makes a bar."""
from __future__ import annotations

__all__ = ["bar", "DELAY"]

DELAY = 2.0   # seconds a step runs before its bar appears


def bar(total, desc: str, unit: str, enabled: bool = True, **kw):
    """A tqdm bar of ``total`` steps (a no-op one unless ``enabled``).

    Parameters
    ----------
    total : int or iterable
        The steps the work has, or the items to iterate over (the bar yields them).
    desc, unit : str
        The bar's label and its unit's name.
    enabled : bool, default True
        False: a disabled bar (its ``update`` does nothing).
    **kw
        More of tqdm's arguments (``initial=``, ``file=``).

    Returns
    -------
    tqdm.tqdm
        Use as a context manager; ``update()`` after each step.

    Examples
    --------
    >>> from quantlab import _progress
    >>> with _progress.bar(3, "demo", "step") as b:   # done in under 2 s: nothing shown
    ...     for _ in range(3):
    ...         b.update()
    >>> b.n
    3
    """
    from numbers import Integral

    from tqdm.auto import tqdm   # lazy: ipywidgets in a notebook

    if not isinstance(total, Integral):   # np.int64 is a count too, not an iterable
        kw["iterable"] = total
        total = len(total) if hasattr(total, "__len__") else None
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, delay=DELAY, **kw)
