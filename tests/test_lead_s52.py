"""Session 52 (lead): fixes found reviewing session 51's change, and this session's own."""
import numpy as np

from quantlab import _progress


def test_progress_bar_takes_a_numpy_count_as_a_count():
    # a count computed with NumPy (np.int64) was taken for an iterable: TypeError
    with _progress.bar(np.int64(3), "demo", "step") as b:
        b.update(2)
    assert (b.total, b.n) == (3, 2)
    with _progress.bar(range(4), "demo", "step") as b:
        assert list(b) == [0, 1, 2, 3]
    assert b.total == 4
