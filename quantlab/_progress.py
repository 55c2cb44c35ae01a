"""Progress bars of long steps (an ingest, an out-of-core backtest): tqdm's, on stderr or
as a notebook widget, shown only once a step has run :data:`DELAY` seconds, so the
many short calls of a session print nothing."""
from __future__ import annotations

__all__ = ["bar", "DELAY"]

DELAY = 2.0   # seconds a step runs before its bar appears


def bar(total: int, desc: str, unit: str, enabled: bool = True):
    """A tqdm bar of ``total`` steps (a no-op one unless ``enabled``).

    Parameters
    ----------
    total : int
        The steps the work has.
    desc, unit : str
        The bar's label and its unit's name.
    enabled : bool, default True
        False: a disabled bar (its ``update`` does nothing).

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
    from tqdm.auto import tqdm   # lazy: ipywidgets in a notebook

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, delay=DELAY)
