"""The backtest kernel checks a close-only panel's closes as it reads them
(``simulate(check=True)``) instead of a ``validate`` pass first, and a float signal's
targets (``check_target=True``) instead of ``check_signal``'s pass: the same faults are
refused with the same message, NaN bars and targets still pass, and other panels keep
the pass."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import _threads
from quantlab import data as qdata
from quantlab.backtesting import dispatch
from quantlab._kernels import backtest as _k


def _close(n=300, m=40, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    t = pd.date_range("2020-01-01", periods=n, freq="D")
    return xr.DataArray(c, dims=("time", "asset"),
                        coords={"time": t, "asset": [f"A{i}" for i in range(m)]}, name="close")


def _signal(close):
    return xr.where(close > close.rolling(time=5, min_periods=1).mean(), 1.0, -0.5)


def _message(fn):
    with pytest.raises(ql.DataError) as e:
        fn()
    return str(e.value)


@pytest.mark.parametrize("value", [0.0, -0.0, -3.0, np.inf, -np.inf])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_bad_close_is_named_as_validate_names_it(value, threads):
    n, m = 2500, 64   # on 2 threads, two blocks of accounts: the fault in either
    assert len(_threads.blocks(m, n * m * dispatch._COST, 2, dispatch._COST,
                               min_cols=dispatch._MIN_COLS, per_thread=1)[1]) == 2
    close = _close(n, m)
    sig = _signal(close)
    rng = np.random.default_rng(1)
    for _ in range(6):   # one fault, or two where the later row comes first in the panel
        bad = close.copy()
        t, a = int(rng.integers(0, n)), int(rng.integers(0, m))
        bad[t, a] = value
        if rng.random() < 0.5:
            bad[max(t - 3, 0), m - 1 - a] = -1.0
        want = _message(lambda: ql.data.validate(bad))
        got = _message(lambda: ql.backtest(bad, sig, fees=0.001, threads=threads))
        assert got == want
        got = _message(lambda: ql.backtest(bad, sig, threads=threads,
                                           metrics_only=["sharpe_ratio"]))
        assert got == want


def test_nan_closes_pass_and_the_run_equals_a_validated_one(monkeypatch):
    close = _close()
    close[10:20, 3] = np.nan      # a gap
    close[:50, 7] = np.nan        # late listing
    close[:, 9] = np.nan          # never listed
    sig = _signal(close).fillna(0.0)
    fused = ql.backtest(close, sig, fees=0.001, slippage=0.0005, threads=2)
    monkeypatch.setattr("quantlab.backtesting.dispatch._kernel_checks", lambda *a: False)
    plain = ql.backtest(close, sig, fees=0.001, slippage=0.0005, threads=2)
    xr.testing.assert_identical(fused.equity, plain.equity)
    pd.testing.assert_frame_equal(fused.orders, plain.orders)


def test_the_validate_pass_runs_only_where_the_kernel_cannot_check(monkeypatch):
    calls = []
    real = qdata._check_bars
    monkeypatch.setattr(qdata, "_check_bars", lambda p, t: calls.append(1) or real(p, t))
    close = _close(m=8)
    sig = _signal(close)
    ql.backtest(close, sig)
    assert calls == []                       # close only, fixed slippage: the kernel
    ds = close.to_dataset()
    ds["volume"] = xr.full_like(close, 1e6)
    ql.backtest(ds, sig)                     # volume is checked too: the pass
    assert calls == [1]
    ql.backtest(ds, sig, slippage=ql.Slippage("volume_based"))
    assert calls == [1, 1]


@pytest.mark.parametrize("m", [1, 3, 4, 7, 8, 9, 17])
def test_kernel_check_finds_the_first_bad_row_at_any_width_and_stride(m):
    rng = np.random.default_rng(m)
    n = 12
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    c[2, 0] = np.nan
    target = np.full((n, m), 0.5)

    def run(close, check):
        return _k.simulate(close, close, target, np.zeros((n, m)), np.zeros((n, m)), 0.0,
                           np.arange(m, dtype=np.intp), np.arange(m, dtype=np.intp), m,
                           1e5, np.zeros(m), np.zeros(m), 1.0, 1.0, False, False,
                           check=check)

    run(c, True)   # NaN passes
    for value in (0.0, -1.0, np.inf, -np.inf):
        for j in {0, m // 2, m - 1}:   # the SIMD lanes, the tail
            bad = c.copy()
            bad[5, j] = value
            bad[9, 0] = -2.0
            for layout in (bad, np.asfortranarray(bad)):   # contiguous rows, strided
                with pytest.raises(_k.InvalidPrice, match="row 5"):
                    run(layout, True)
                run(layout, False)   # not asked: no check


@pytest.mark.parametrize("group", [False, True])
def test_a_streamed_close_only_run_is_checked_by_the_kernel_chunk_by_chunk(group,
                                                                           monkeypatch):
    import dask
    calls = []
    real = qdata._check_bars
    monkeypatch.setattr(qdata, "_check_bars", lambda p, t: calls.append(1) or real(p, t))
    close = _close(n=300, m=8)
    sig = _signal(close)
    with dask.config.set(scheduler="sync"):
        res = ql.backtest(close.chunk(time=50, asset=4), sig, group=group, fees=0.001)
        np.testing.assert_array_equal(
            res.equity.values, ql.backtest(close, sig, group=group, fees=0.001).equity.values)
        assert calls == []                   # every chunk checked in the kernel
        bad = close.copy()
        bad[220, 5] = -1.0                   # in the fifth time chunk
        want = _message(lambda: ql.backtest(bad, sig, group=group))
        got = _message(lambda: ql.backtest(bad.chunk(time=50, asset=4), sig, group=group))
    assert got == want
    assert "non-positive price -1" in got


def test_the_named_fault_comes_without_the_kernels_error_attached():
    close = _close(m=8)
    bad = close.copy()
    bad[40, 2] = 0.0
    with pytest.raises(ql.DataError) as e:
        ql.backtest(bad, _signal(close))
    assert e.value.__context__ is None and e.value.__cause__ is None


def test_no_kernel_column_still_gets_the_data_checked():
    close = _close(m=8)
    bad = close.copy()
    bad[40, 2] = np.inf
    empty_sweep = xr.DataArray(np.zeros(0), dims="fee_rate", coords={"fee_rate": np.zeros(0)})
    want = _message(lambda: ql.data.validate(bad))
    assert _message(lambda: ql.backtest(bad, _signal(close), fees=empty_sweep)) == want


def test_a_record_arrays_field_is_read_as_its_values():
    # a float64 field of a record array has a 12-byte stride here: no whole doubles
    close = _close(n=60, m=8)
    rec = np.zeros(close.shape, dtype=[("x", "f4"), ("close", "f8")])
    rec["close"] = close.values
    field = close.copy(data=rec["close"])
    assert field.values.strides[1] == 12
    ql.data.validate(field)
    sig = _signal(close)
    np.testing.assert_array_equal(ql.backtest(field, sig, fees=0.001).equity.values,
                                  ql.backtest(close, sig, fees=0.001).equity.values)
    rec["close"][30, 5] = -2.0
    want = _message(lambda: ql.data.validate(close.copy(data=rec["close"].copy())))
    assert "non-positive price -2" in want
    assert _message(lambda: ql.data.validate(field)) == want
    assert _message(lambda: ql.backtest(field, sig)) == want


def test_lazy_fields_read_from_many_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor
    close = _close(n=2500, m=64)
    sig = _signal(close)
    ref = ql.backtest(close, sig, fees=0.001, threads=1)
    for _ in range(5):
        res = ql.backtest(close, sig, fees=0.001, threads=2)
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda k: getattr(res, ("orders", "positions", "cash")[k % 3]),
                                range(12)))
        for k, g in enumerate(got):
            want = getattr(ref, ("orders", "positions", "cash")[k % 3])
            if isinstance(g, pd.DataFrame):
                pd.testing.assert_frame_equal(g, want, check_exact=True)
            else:
                np.testing.assert_array_equal(g.values, want.values)


def _signal_message(sig, close):
    """What the values pass before the kernel said of ``sig`` (check_signal's own)."""
    with pytest.raises(ValueError) as e:
        dispatch.check_signal(sig, close.to_dataset())
    return str(e.value)


def _value_error(fn):
    with pytest.raises(ValueError) as e:
        fn()
    assert not isinstance(e.value, _k.InvalidTarget)
    assert e.value.__context__ is None and e.value.__cause__ is None
    return str(e.value)


@pytest.mark.parametrize("value", [1.5, -1.0 - 1e-11, np.inf, -np.inf, 7.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_signal_out_of_range_is_named_as_check_signal_names_it(value, threads):
    n, m = 2500, 64   # on 2 threads, two blocks of accounts: the fault in either
    close = _close(n, m)
    rng = np.random.default_rng(2)
    for _ in range(5):   # one fault, or two where the later row comes first in the panel
        sig = _signal(close)
        t, a = int(rng.integers(0, n)), int(rng.integers(0, m))
        sig[t, a] = value
        if rng.random() < 0.5:
            sig[max(t - 3, 0), m - 1 - a] = -2.0
        want = _signal_message(sig, close)
        assert "signal must be in [-1, 1]" in want
        assert _value_error(lambda: ql.backtest(close, sig, fees=0.001,
                                                threads=threads)) == want
        assert _value_error(lambda: ql.backtest(close, sig, threads=threads,
                                                metrics_only=["sharpe_ratio"])) == want


def test_the_signal_pass_runs_only_where_the_kernel_cannot_check(monkeypatch):
    passes = []
    real = dispatch.check_signal

    def spy(signal, ds, labels=True, values=True):
        passes.append(values and signal.dtype != bool)
        return real(signal, ds, labels=labels, values=values)

    monkeypatch.setattr(dispatch, "check_signal", spy)
    close = _close(m=8)
    ql.backtest(close, _signal(close), fees=0.001)
    assert passes == [False]                       # the kernel checked the targets
    passes.clear()
    ds = close.to_dataset()
    ds["volume"] = xr.full_like(close, 1e6)
    # the bars by validate's pass before the kernel: the signal's pass first, as before
    ql.backtest(ds, _signal(close), fees=0.001)
    ql.backtest(ds, _signal(close), slippage=ql.Slippage("volume_based"))
    assert passes == [True, True]
    passes.clear()
    import dask
    with dask.config.set(scheduler="sync"):   # close-only chunks: the kernel
        ql.backtest(close.chunk(time=100), _signal(close), group=True)
    assert passes == [False, False, False]


@pytest.mark.parametrize("panel", ["close", "ohlcv", "close+slippage window"])
def test_a_bad_signal_is_named_before_a_bad_bar_on_every_panel(panel):
    # the review: with the targets checked in the kernel on every panel, an OHLCV
    # panel's bad close (validate's pass, before the kernel) was named first
    close = _close(n=300, m=8)
    ds, kw = close.to_dataset(), {"fees": 0.001}
    if panel == "ohlcv":
        for v in ("open", "high", "low"):
            ds[v] = close
        ds["volume"] = xr.full_like(close, 1e6)
    if panel == "close+slippage window":
        ds["high"], ds["low"] = close * 1.01, close * 0.99
        kw = {"slippage": ql.Slippage("adaptive")}
    sig = _signal(close)
    sig[250, 3] = 3.0
    bad = ds.copy(deep=True)
    for v in bad.data_vars:
        if v != "volume":
            bad[v][20, 1] = -1.0
    assert _value_error(lambda: ql.backtest(bad, sig, **kw)) == _signal_message(sig, close)


def test_targets_at_the_bounds_and_nan_pass_and_the_run_is_unchanged(monkeypatch):
    close = _close(n=2500, m=64)
    sig = _signal(close)
    sig[5, 1], sig[6, 2], sig[7, 3], sig[8, 4] = 1.0 + 1e-13, -1.0 - 1e-13, np.nan, -1.0
    fused = ql.backtest(close, sig, fees=0.001, threads=2)
    real = _k.simulate
    monkeypatch.setattr(_k, "simulate", lambda *a, **kw: real(*a, **dict(kw, check_target=False)))
    plain = ql.backtest(close, sig, fees=0.001, threads=2)
    xr.testing.assert_identical(fused.equity, plain.equity)
    pd.testing.assert_frame_equal(fused.orders, plain.orders)


@pytest.mark.parametrize("m", [1, 3, 4, 7, 8, 9, 17])
def test_kernel_target_check_finds_the_first_bad_row_at_any_width_and_stride(m):
    rng = np.random.default_rng(m)
    n = 12
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    target = np.full((n, m), 0.5)
    target[2, 0] = np.nan

    def run(tgt, check_target, close=c):
        return _k.simulate(close, close, tgt, np.zeros((n, m)), np.zeros((n, m)), 0.0,
                           np.arange(m, dtype=np.intp), np.arange(m, dtype=np.intp), m,
                           1e5, np.zeros(m), np.zeros(m), 1.0, 1.0, False, False,
                           check=True, check_target=check_target)

    run(target, True)   # NaN passes
    for value in (1.0 + 1e-11, -1.5, np.inf, -np.inf):
        for j in {0, m // 2, m - 1}:   # the SIMD lanes, the tail
            bad = target.copy()
            bad[5, j] = value
            bad[9, 0] = 2.0
            for layout in (bad, np.asfortranarray(bad)):   # contiguous rows, strided
                with pytest.raises(_k.InvalidTarget, match="row 5"):
                    run(layout, True)
                run(layout, False)   # not asked: no check
            badc = c.copy()
            badc[5, j] = -1.0       # the close of the same row is named first
            with pytest.raises(_k.InvalidPrice, match="row 5"):
                run(bad, True, badc)


def test_a_bad_signal_is_named_before_a_bad_close_as_before():
    close = _close(n=300, m=8)
    sig = _signal(close)
    sig[250, 3] = 3.0
    bad = close.copy()
    bad[20, 1] = 0.0              # an earlier row: the kernel meets the close first
    want = _signal_message(sig, close)
    assert _value_error(lambda: ql.backtest(bad, sig, fees=0.001)) == want


def test_no_kernel_column_still_gets_the_signal_checked():
    close = _close(m=8)
    sig = _signal(close)
    sig[40, 2] = -4.0
    empty_sweep = xr.DataArray(np.zeros(0), dims="fee_rate", coords={"fee_rate": np.zeros(0)})
    want = _signal_message(sig, close)
    assert _value_error(lambda: ql.backtest(close, sig, fees=empty_sweep)) == want


@pytest.mark.parametrize("group", [False, True])
def test_a_streamed_signal_is_checked_by_the_kernel_chunk_by_chunk(group):
    import dask
    close = _close(n=300, m=8)
    sig = _signal(close)
    sig[220, 5] = 1.25                       # in the fifth time chunk
    want = _value_error(lambda: ql.backtest(close, sig, group=group))
    with dask.config.set(scheduler="sync"):
        got = _value_error(lambda: ql.backtest(close.chunk(time=50, asset=4), sig,
                                               group=group))
    assert got == want and "first 1.25" in got
