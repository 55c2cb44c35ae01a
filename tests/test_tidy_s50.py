"""Session 50, helper "tidy": counts bounded by name, the engine config read as typed,
wide CSV loading per file, the kernel stubs, and total return through a x1e15 bar."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab import _validate


# ---- 1. count-like arguments are bounded ---------------------------------------------

COUNTS = ("reps", "draws", "n_draws", "n_sims", "n_boot", "n_bootstrap", "n_paths",
          "n_samples", "n_splits", "n_folds", "folds", "max_iter", "n_iter", "iterations",
          "population_size", "workers", "n_jobs")


@pytest.mark.parametrize("name", COUNTS)
def test_count_names_are_bounded_by_name(name):
    # integer(name) without hi for a repetition count: at most MAX_COUNT, named
    assert _validate.integer(name, _validate.MAX_COUNT, 1) == _validate.MAX_COUNT
    with pytest.raises(ValueError, match=rf"^{name} must be an integer in \[1, 1000000\]"):
        _validate.integer(name, 10 ** 12, 1)
    with pytest.raises(ValueError, match=rf"{name} .*1,000,000"):   # a qualified label too
        _validate.integer(f"config: {name}", 1e30, 0)


def test_non_count_names_keep_their_range():
    # sizes of the data and formula inputs are not repetition counts
    assert _validate.integer("window", 10 ** 12, 1) == 10 ** 12
    assert _validate.integer("n_trials", 10 ** 12, 1) == 10 ** 12
    assert _validate.integer("n_bars", 10 ** 12, 0) == 10 ** 12


def test_reality_check_refuses_huge_reps():
    pytest.importorskip("arch")
    x = np.random.default_rng(0).normal(0, 0.01, (200, 3))
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"^reps must be an integer in \[1, 1000000\]"):
        ql.integrity.reality_check(x, reps=10 ** 12)   # was a 65 TiB allocation in arch
    with pytest.raises(ValueError, match=r"^reps must be an integer"):
        ql.integrity.reality_check(x, reps=1e30)
    assert time.perf_counter() - t < 30


def test_risk_parity_max_iter_bounded():
    cov = pd.DataFrame(np.cov(np.random.default_rng(0).normal(size=(50, 4)).T))
    # tol=0 never converges: max_iter=10**12 looped for ever
    with pytest.raises(ValueError, match=r"^max_iter must be an integer in \[0, 1000000\]"):
        ql.risk.risk_parity_weights(cov, tol=0, max_iter=10 ** 12)
    assert ql.risk.risk_parity_weights(cov, max_iter=50).sum() == pytest.approx(1.0)


# ---- 4. the kernel stubs define each name once -----------------------------------------

def test_kernel_stubs_define_each_name_once():
    # returns_acc.pxi (FIELDS, F_*, A_*, acc_groups) is included by backtest.pyx and
    # metrics.pyx: both export its names; metrics.pyi stubs them, backtest.pyi re-exports
    import collections
    import importlib
    import re
    from pathlib import Path

    where = collections.defaultdict(list)
    stubs = Path(ql.__file__).parent / "_kernels"
    for stub in sorted(stubs.glob("*.pyi")):
        text = stub.read_text()
        for name in set(re.findall(r"^(?:def |class )?(\w+)[(:]", text, re.M)) - {"import"}:
            where[name].append(stub.name)
    twice = {n: w for n, w in where.items() if len(w) > 1}
    assert not twice, f"stubbed in more than one kernel stub: {twice}"
    bt = importlib.import_module("quantlab._kernels.backtest")
    text = (stubs / "backtest.pyi").read_text()
    for name in ("A_ALL", "A_WEALTH", "F_N", "FIELDS", "acc_groups"):
        assert hasattr(bt, name) and re.search(rf"\b{name} as {name}\b", text), name
