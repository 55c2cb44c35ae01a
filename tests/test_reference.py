"""Every kernel family equals its plain twin in tests/reference/ (bottleneck's "every fast
function has a slow twin"): one parametrised test per family, no peer library needed
(peer parity lives in tests/parity/)."""
import numpy as np
import pytest

import quantlab as ql
import reference as ref
from quantlab import measures as qm
from quantlab._kernels import backtest as _bt
from quantlab._kernels import metrics as _km

RNG = np.random.default_rng(26)


def _panel(n=120, m=3, nan=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, m)).cumsum(0) + 50
    x[rng.random((n, m)) < nan] = np.nan
    x[:4, 1] = np.nan
    return x


# ---- rolling: every function of ql.rolling

ROLLING = ["sum", "mean", "var", "std", "zscore", "min", "max", "rank", "ewm_mean", "corr",
           "var_ddof0", "std_ddof0", "zscore_ddof0"]


@pytest.mark.parametrize("fn", ROLLING)
@pytest.mark.parametrize("window,minp", [(1, None), (5, None), (5, 2), (30, 10)])
def test_rolling_equals_reference(fn, window, minp):
    x = _panel()
    fn, _, ddof = fn.partition("_ddof")
    kw = {"ddof": int(ddof)} if ddof else {}
    got = np.asarray(getattr(ql.rolling, fn)(x, window, min_periods=minp, **kw))
    eff = window if minp is None else minp
    if fn == "ewm_mean":
        want = ref.ewm_mean(x, window, 1 if minp is None else minp)
    elif fn == "corr":
        want = ref.rolling_corr(x, window, eff)
    else:
        want = ref.rolling(fn, x, window, eff, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


# ---- metrics (those empyrical lacks; empyrical's own are in tests/parity/)

METRICS = {
    "recovery_time": lambda r, b: ref.recovery_time(r),
    "drawdown_duration": lambda r, b: ref.drawdown_duration(r),
    "win_rate": lambda r, b: ref.win_rate(r),
    "profit_factor": lambda r, b: ref.profit_factor(r),
    "tracking_error": lambda r, b: ref.tracking_error(r, b),
    "information_ratio": lambda r, b: ref.information_ratio(r, b),
}


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("seed", range(3))
def test_metrics_equals_reference(name, seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.02, 300)
    r[rng.random(300) < 0.05] = np.nan
    r[rng.random(300) < 0.05] = 0.0
    b = rng.normal(0.0003, 0.015, 300)
    args = (r, b) if name in ("tracking_error", "information_ratio") else (r,)
    got = getattr(ql.metrics, name)(*args)
    assert got == pytest.approx(METRICS[name](r, b), rel=1e-10, nan_ok=True)


# ---- measures (every one, incl. hurst / dfa / lyapunov_r from the nolds algorithm)

def _series(kind, n=300, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.normal(0, 1, n)
    if kind == "ar":   # persistent
        x = np.zeros(n)
        for t in range(1, n):
            x[t] = 0.6 * x[t - 1] + rng.normal()
        return x
    x = np.empty(n)   # logistic map, r = 4 (chaos)
    x[0] = 0.3
    for t in range(1, n):
        x[t] = 4 * x[t - 1] * (1 - x[t - 1])
    return x


def _bits(x, bins, binning):
    return ref.symbols(x, bins, binning)


MEASURES = {
    "hurst": (lambda x: qm.hurst(x), lambda x: ref.hurst(x)),
    "hurst_raw": (lambda x: qm.hurst(x, nvals=[8, 16, 32, 64], corrected=False,
                                     unbiased=False),
                  lambda x: ref.hurst(x, [8, 16, 32, 64], corrected=False, unbiased=False)),
    "dfa": (lambda x: qm.dfa(x), lambda x: ref.dfa(x)),
    "dfa_overlap": (lambda x: qm.dfa(x, nvals=[4, 6, 10, 20], overlap=True),
                    lambda x: ref.dfa(x, [4, 6, 10, 20], True)),
    "lyapunov_r": (lambda x: qm.lyapunov_r(x[:150]), lambda x: ref.lyapunov_r(x[:150])),
    "lyapunov_r_lag": (lambda x: qm.lyapunov_r(x[:150], emb_dim=3, lag=2, min_tsep=4,
                                               trajectory_len=8, tau=0.5),
                       lambda x: ref.lyapunov_r(x[:150], 3, 2, 4, 8, 0.5)),
    "higuchi_fd": (lambda x: qm.higuchi_fd(x, 8), lambda x: ref.higuchi_fd(x, 8)),
    "katz_fd": (qm.katz_fd, ref.katz_fd),
    "sample_entropy": (lambda x: qm.sample_entropy(x[:200], 2),
                       lambda x: ref.sample_entropy(x[:200], 2, 0.2 * np.std(x[:200]))),
    "permutation_entropy": (lambda x: qm.permutation_entropy(x, 4, 2),
                            lambda x: ref.permutation_entropy(x, 4, 2)),
    "permutation_entropy_normalized": (
        lambda x: qm.permutation_entropy(x, 3, 1, normalize=True),
        lambda x: ref.permutation_entropy(x, 3, 1) / np.log2(6)),
    "shannon_entropy": (lambda x: qm.shannon_entropy(x),
                        lambda x: ref.entropy_bits(_bits(x, 10, "width"))),
    "mutual_information": (
        lambda x: qm.mutual_information(x[1:], x[:-1]),
        lambda x: ref.mutual_information(_bits(x[1:], 3, "quantile"),
                                         _bits(x[:-1], 3, "quantile"))),
    "transfer_entropy": (
        lambda x: qm.transfer_entropy(x[:-1], x[1:], k=2),
        lambda x: ref.transfer_entropy(_bits(x[:-1], 3, "quantile"),
                                       _bits(x[1:], 3, "quantile"), 2)),
}


@pytest.mark.parametrize("name", sorted(MEASURES))
@pytest.mark.parametrize("kind", ["noise", "ar", "logistic"])
def test_measures_equals_reference(name, kind):
    x = _series(kind)
    fast, slow = MEASURES[name]
    assert fast(x) == pytest.approx(slow(x), rel=1e-9, abs=1e-12)


# ---- data kernels

def test_data_equals_reference():
    from quantlab._kernels import data as _kd

    x = _panel(nan=0.2) + 100
    np.testing.assert_allclose(_kd.simple_returns(x), ref.simple_returns(x), rtol=1e-15,
                               equal_nan=True)


# ---- backtest: the kernel against its plain-Python twin, fed the same arrays

N, A, P = 40, 3, 2          # bars, assets, parameter combinations (columns = A * P)
M = A * P


def _prices(seed):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (N, A)), 0))
    op = close * np.exp(rng.normal(0, 0.01, (N, A)))
    hi = np.maximum(op, close) * (1 + rng.uniform(0, 0.02, (N, A)))
    lo = np.minimum(op, close) * (1 - rng.uniform(0, 0.02, (N, A)))
    miss = rng.random((N, A)) < 0.1          # whole bars missing
    for v in (close, op, hi, lo):
        v[miss] = np.nan
    return rng, close, op, hi, lo


def _col(v):
    return np.full(M, float(v))


# each feature alone, then combined; kw: kernel keywords plus the cost/leverage knobs
FEATURES = {
    "plain": {},
    "slippage_impact": dict(slip=0.002, impact=2e-3, cap=0.01),
    "impact_capped": dict(impact=0.05, cap=0.003),
    "fees": dict(fee=0.004),
    "fixed_fees": dict(fixed=5.0),
    "fixed_fees_skip": dict(fixed=300.0),
    "leverage": dict(lev=2.5, mps=1.5),
    "daily": dict(daily=True),
    "stops": dict(bars=True, stops=(_col(0.04), _col(np.nan), _col(np.nan))),
    "take_profit": dict(bars=True, stops=(_col(np.nan), _col(0.05), _col(np.nan))),
    "trailing": dict(bars=True, stops=(_col(np.nan), _col(np.nan), _col(0.03))),
    "stops_close_only": dict(stops=(_col(0.03), _col(0.04), _col(0.02))),
    "limit": dict(bars=True, limit=(_col(0.01), 0), close_only=True),
    "limit_tif": dict(bars=True, limit=(_col(0.015), 2), close_only=True),
    "events_equity": dict(events=(0, False)),
    "events_value_acc": dict(events=(1, True)),
    "events_shares_acc": dict(events=(2, True)),
    "drawdown": dict(dd_limit=0.08, dd_cooldown=3),
    "drawdown_halt": dict(dd_limit=0.1, dd_cooldown=N),
    "borrow": dict(lev=2.0, borrow=2e-3),
    "margin": dict(lev=3.0, mps=3.0, margin=0.3),
    "drained": dict(lev=4.0, mps=4.0, margin=0.24, slip=0.05, fee=0.05, fixed=50.0,
                    bars=True, stops=(_col(0.02), _col(0.02), _col(np.nan))),
    "combined": dict(slip=0.001, impact=0.01, cap=0.02, fee=0.002, fixed=30.0, lev=3.0,
                     mps=2.0, daily=True, dd_limit=0.2, dd_cooldown=2, borrow=1e-3,
                     margin=0.3, bars=True, stops=(_col(0.05), _col(0.1), _col(0.03)),
                     limit=(_col(0.01), 2)),
    "combined_events": dict(fee=0.002, fixed=3.0, lev=2.0, dd_limit=0.15, dd_cooldown=1,
                            bars=True, stops=(_col(0.05), _col(np.nan), _col(0.03)),
                            events=(0, True), limit=(_col(0.01), 0), borrow=1e-3),
}


def _args(feature, group, next_open, seed):
    """The kernel's arguments, as quantlab/backtest.py builds them."""
    kw = dict(FEATURES[feature])
    rng, close, op, hi, lo = _prices(seed)
    long_only = "events" in kw or "limit" in kw and seed % 2
    levels = [0, 0.3, 0.7, 1, np.nan] + ([] if long_only else [-1, -0.4])
    target = rng.choice(levels, size=(N, M))
    asset = np.repeat(np.arange(A, dtype=np.intp), P)
    grp = (np.tile(np.arange(P, dtype=np.intp), A) if group
           else np.arange(M, dtype=np.intp))
    n_groups = P if group else M
    if kw.pop("close_only", False) and next_open:
        kw.pop("limit")   # limit orders need execution="close"
    lev = kw.pop("lev", 1.0)
    args = [close, op if next_open else close, target,
            np.full((N, A), kw.pop("slip", 0.0)), np.full((N, A), kw.pop("impact", 0.0)),
            kw.pop("cap", 0.0), asset, grp, n_groups, 1000.0, _col(kw.pop("fee", 0.0)),
            _col(kw.pop("fixed", 0.0)), lev, kw.pop("mps", lev), kw.pop("daily", False),
            next_open]
    if kw.pop("bars", False):
        kw["bars"] = (op, hi, lo)
    if "events" in kw:
        size_type, acc = kw["events"]
        target[:] = rng.choice([1.0, 0.0, np.nan, np.nan], size=(N, M))
        size = {0: rng.choice([0.2, 0.5, np.inf], size=(N, M)),
                1: rng.choice([100.0, 400.0, np.inf], size=(N, M)),
                2: rng.choice([1.0, 3.0], size=(N, M))}[size_type]
        kw["events"] = (size, size_type, acc)
    return args, kw


CASES = [(f, g, no) for f in FEATURES for g in (False, True) for no in (False, True)]


@pytest.mark.parametrize("feature,group,next_open", CASES,
                         ids=[f"{f}-{'group' if g else 'single'}-{'next_open' if no else 'close'}"
                              for f, g, no in CASES])
def test_backtest_equals_reference(feature, group, next_open):
    for seed in range(3):
        args, kw = _args(feature, group, next_open, seed)
        got = _bt.simulate(*args, **kw)
        want = ref.backtest.simulate(*args, **kw)
        for name, a, b in zip(("equity", "cash", "positions"), got[:3], want[:3]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=name)
        for name, a, b in zip(("t", "col", "size", "price", "fee", "reason"), got[3], want[3]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=f"orders {name}")
        np.testing.assert_array_equal(got[4], want[4], err_msg="halted")
        np.testing.assert_allclose(got[5], want[5], rtol=1e-12, atol=1e-12, err_msg="interest")
        # metrics-only: the same run's extras; its stats are accumulate() of the returns
        stats, extra = _bt.simulate(*args, **dict(kw, metrics_only=True))
        rets, want_extra = ref.backtest.simulate(*args, **dict(kw, metrics_only=True))
        np.testing.assert_allclose(extra, want_extra, rtol=1e-12, atol=1e-9,
                                   equal_nan=True, err_msg="metrics-only extras")
        if not np.isinf(rets).any():   # NaN: no observation, skipped by both
            with np.errstate(invalid="ignore", divide="ignore"):
                acc = _km.accumulate(rets, np.log1p(rets), np.empty((0, 0)), 0.0)
            np.testing.assert_allclose(stats, acc.T, rtol=1e-10, atol=1e-12, equal_nan=True,
                                       err_msg="metrics-only stats")


def test_backtest_twin_exercises_every_order_reason():
    """The cases above reach every reason code (else a feature went untested)."""
    seen = set()
    for feature, group, next_open in CASES:
        args, kw = _args(feature, group, next_open, 0)
        seen |= set(ref.backtest.simulate(*args, **kw)[3][5].tolist())
    assert seen == set(range(7))


def _one_asset(close, target, **kw):
    """Both simulators on one asset, one account; returns (kernel out, twin out)."""
    close = np.asarray(close, float)[:, None]
    target = np.asarray(target, float)[:, None]
    args = [close, kw.pop("exec_price", close), target, np.full_like(close, kw.pop("slip", 0.0)),
            np.zeros_like(close), 0.0, np.zeros(1, np.intp), np.zeros(1, np.intp), 1, 1000.0,
            np.full(1, kw.pop("fee", 0.0)), np.full(1, kw.pop("fixed", 0.0)), 1.0, 1.0, False,
            kw.pop("next_open", False)]
    return _bt.simulate(*args, **kw), ref.backtest.simulate(*args, **kw)


def test_backtest_twin_buy_costs_equal_hand_calculation():
    # DESIGN.md: exposure 1 invests all cash net of fees: Δ = (E - F) / (p (1+s)(1+f))
    s, f, fixed = 0.001, 0.002, 3.0
    for out in _one_asset([100.0, 110.0], [1.0, np.nan], slip=s, fee=f, fixed=fixed):
        eq, cash, pos, orders = out[:4]
        shares = (1000.0 - fixed) / (100 * (1 + s) * (1 + f))
        assert pos[0, 0] == pytest.approx(shares, rel=1e-12)
        assert orders[3][0] == pytest.approx(100 * (1 + s), rel=1e-15)
        assert orders[4][0] == pytest.approx(shares * 100 * (1 + s) * f + fixed, rel=1e-12)
        assert cash[0, 0] == pytest.approx(0.0, abs=1e-9)
        assert eq[1, 0] == pytest.approx(shares * 110.0, rel=1e-12)


def test_backtest_twin_stop_fills_at_level_or_gap_open():
    # stop-loss 5% of the entry close 100: a bar whose range reaches 95 fills at 95, one
    # that opens at 90 (gapped through it) at 90
    close = [100.0, 96.0]
    for low, op, want in ((94.0, 99.0, 95.0), (89.0, 90.0, 90.0)):
        bars = (np.array([[100.0], [op]]), np.array([[100.0], [100.0]]),
                np.array([[100.0], [low]]))
        for out in _one_asset(close, [1.0, np.nan], bars=bars,
                              stops=(np.full(1, 0.05), np.full(1, np.nan), np.full(1, np.nan))):
            orders = out[3]
            assert orders[5].tolist() == [0, 1]          # signal, then stop
            assert orders[3][1] == pytest.approx(want, rel=1e-15)
            assert out[2][1, 0] == 0.0


def _dataset(seed=7, n=60, m=3):
    import pandas as pd
    import xarray as xr

    rng, close, op, hi, lo = _prices(seed)
    close, op, hi, lo = (v[:n, :m] for v in (close, op, hi, lo))
    vol = np.where(np.isnan(close), np.nan, 1e5)
    t = pd.date_range("2020-01-01", periods=close.shape[0], freq="D")
    data = {"open": op, "high": hi, "low": lo, "close": close, "volume": vol}
    return xr.Dataset({k: (("time", "asset"), v) for k, v in data.items()},
                      coords={"time": t, "asset": [f"A{i}" for i in range(close.shape[1])]})


THROUGH = {
    "costs": dict(fees=0.002, fixed_fees=4.0, slippage=0.001),
    "next_open": dict(execution="next_open", fees=0.001, rebalance="daily"),
    "group_leverage_borrow": dict(group=True, max_leverage=2.0, borrow_rate=0.05,
                                  maintenance_margin=0.3),
    "stops": dict(sl_stop=0.03, tp_stop=0.05, sl_trail=0.04, fees=0.001),
    "limit": dict(order_type="limit", limit_offset=0.01, limit_tif=3),
    "drawdown": dict(dd_limit=0.05, dd_cooldown=2, group=True),
    "events": dict(events=True, size=0.3, accumulate=True, fees=0.001),
}


@pytest.mark.parametrize("name", sorted(THROUGH))
def test_backtest_through_ql_backtest_equals_reference(name, monkeypatch):
    """ql.backtest's own arguments for the kernel (recorded on the way in) give the twin
    the kernel's equity, cash, positions and orders."""
    ds = _dataset()
    rng = np.random.default_rng(3)
    kw = dict(THROUGH[name])
    sig = ds["close"].copy(data=rng.choice([0.0, 0.5, 1.0, np.nan], size=ds["close"].shape))
    if kw.pop("events", False):
        kw.update(entries=sig == 1.0, exits=sig == 0.0)
    else:
        kw["signal"] = sig if name == "limit" else sig * np.where(
            rng.random(sig.shape) < 0.3, -1, 1)
    calls = []
    real = _bt.simulate

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(_bt, "simulate", spy)
    res = ql.backtest(ds, **kw)
    assert len(calls) == 1
    args, kwargs = calls[0]
    # lean (cash and positions not written, rebuilt from the orders on first read) is
    # how ql.backtest takes the output, not a simulation option: the twin writes all
    kwargs = {k: v for k, v in kwargs.items() if k != "lean"}
    got = real(*args, **kwargs)
    want = ref.backtest.simulate(*args, **kwargs)
    for a, b in zip(got[:3], want[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)
    for a, b in zip(got[3], want[3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res.equity.values.reshape(want[0].shape), want[0], rtol=1e-12)
    for k, name in ((1, "cash"), (2, "positions")):   # lean: rebuilt from the orders
        np.testing.assert_allclose(getattr(res, name).values.reshape(want[k].shape), want[k],
                                   rtol=1e-12, atol=1e-9)
    assert len(res.orders) == len(want[3][0])


@pytest.mark.parametrize("seed", range(4))
def test_backtest_close_check_stops_at_the_twins_row(seed):
    rng = np.random.default_rng(seed)
    n, m = 40, 9
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    close[rng.random((n, m)) < 0.1] = np.nan
    for _ in range(rng.integers(1, 4)):
        close[rng.integers(0, n), rng.integers(0, m)] = rng.choice(
            [0.0, -1.0, np.inf, -np.inf, 1e-310, 5e-324])
    cols = np.arange(m, dtype=np.intp)
    args = (close, close, np.full((n, m), 0.5), np.zeros((n, m)), np.zeros((n, m)), 0.0,
            cols, cols, m, 1e5, np.zeros(m), np.zeros(m), 1.0, 1.0, False, False)
    with pytest.raises(ValueError) as want:
        ref.backtest.simulate(*args, check=True)
    with pytest.raises(_bt.InvalidPrice) as got:
        _bt.simulate(*args, check=True)
    assert str(got.value) == str(want.value)
