"""The backtest kernel as a resumable state machine: ``simulate`` over row chunks with one
``SimState`` gives the bits of one call over all rows, for every feature."""
import io

import numpy as np
import pytest

from quantlab._kernels import backtest as _k

N, A, P = 48, 3, 2          # bars, assets, parameter values per asset
M = A * P                   # columns
CASH = 10_000.0


def _inputs(feature, group, seed=0):
    """Kernel arguments for ``feature`` (as quantlab/backtest.py builds them)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (N, A)), axis=0))
    opn = close * np.exp(rng.normal(0, 0.01, (N, A)))
    high = np.maximum(close, opn) * (1 + rng.uniform(0, 0.03, (N, A)))
    low = np.minimum(close, opn) * (1 - rng.uniform(0, 0.03, (N, A)))
    for a in (opn, high, low, close):   # missing bars
        a[5:8, 1] = np.nan
        a[20, 2] = np.nan
    target = rng.choice([-0.6, 0.0, 0.4, 0.9, np.nan], size=(N, M))
    n_groups = P if group else M
    grp = (np.tile(np.arange(P), A) if group else np.arange(M)).astype(np.intp)
    kw = dict(close=close, exec_price=close, target=target,
              slip_base=np.full((N, A), 0.001), impact=np.zeros((N, A)), impact_cap=0.05,
              asset=np.repeat(np.arange(A), P).astype(np.intp), group=grp,
              n_groups=n_groups, init_cash=CASH, fees=np.zeros(M), fixed_fees=np.zeros(M),
              max_leverage=1.0, max_position_size=1.0, daily=False, next_open=False)
    bars = (opn, high, low)
    if feature == "next_open":
        kw.update(next_open=True, exec_price=opn)
    elif feature == "fees":
        kw.update(fees=np.full(M, 0.002), fixed_fees=np.linspace(0, 30, M), daily=True)
    elif feature == "impact":
        kw.update(impact=np.full((N, A), 0.002))
    elif feature == "stops":
        kw.update(bars=bars, stops=(np.full(M, 0.03), np.full(M, 0.05),
                                    np.where(np.arange(M) % 2, 0.02, np.nan)))
    elif feature == "limit":
        kw.update(bars=bars, limit=(np.where(np.arange(M) % 3, 0.01, np.nan), 3))
    elif feature.startswith("events"):   # events_<size type>[_acc]
        size_type = _k.SIZE_TYPES.index(feature.split("_")[1])
        size = {"equity": 0.3, "value": 2000.0, "shares": 7.0}[feature.split("_")[1]]
        kw.update(target=rng.choice([1.0, 0.0, np.nan, np.nan], size=(N, M)),
                  events=(rng.uniform(0.5, 1.5, (N, M)) * size, size_type,
                          feature.endswith("acc")), next_open=True, exec_price=opn)
    elif feature == "drawdown":
        kw.update(dd_limit=0.04, dd_cooldown=3, fixed_fees=np.full(M, 5.0))
    elif feature == "borrow":
        kw.update(borrow=2e-4, max_leverage=2.0)
    elif feature == "margin":
        kw.update(margin=0.35, max_leverage=3.0, borrow=1e-4,
                  target=np.where(np.isnan(target), np.nan, np.sign(target)))
    elif feature == "drain":   # forced exits whose fees take all equity, missing bars
        miss = rng.random((N, A)) < 0.3
        kw.update(close=np.where(miss, np.nan, close), exec_price=np.where(miss, np.nan, close),
                  fees=np.full(M, 0.3), slip_base=np.full((N, A), 0.2), dd_limit=0.02,
                  dd_cooldown=1, max_leverage=3.0, daily=True)
    elif feature == "everything":
        kw.update(bars=bars, stops=(np.full(M, 0.04), np.full(M, np.nan), np.full(M, 0.03)),
                  limit=(np.where(np.arange(M) % 2, 0.005, np.nan), 2), dd_limit=0.05,
                  dd_cooldown=2, borrow=1e-4, max_leverage=2.0, margin=0.2,
                  fees=np.full(M, 0.001), fixed_fees=np.full(M, 2.0),
                  impact=np.full((N, A), 0.001), next_open=True, exec_price=opn)
    return kw


TIMED = ("close", "exec_price", "target", "slip_base", "impact")


def _rows(kw, a, b):
    """The kwargs with every time-indexed input cut to rows [a, b)."""
    out = dict(kw)
    for k in TIMED:
        out[k] = kw[k][a:b]
    if kw.get("bars") is not None:
        out["bars"] = tuple(x[a:b] for x in kw["bars"])
    if kw.get("events") is not None:
        sz, st, acc = kw["events"]
        out["events"] = (sz[a:b], st, acc)
    return out


def _chunked(kw, cuts, metrics_only, state=None):
    """Run on [0, c1), [c1, c2), ... [ck, N) with one state; concatenated results."""
    state = state or _k.SimState(M, kw["n_groups"], CASH)
    bounds = [0, *cuts, N]
    outs = [_k.simulate(**_rows(kw, a, b), metrics_only=metrics_only, state=state)
            for a, b in zip(bounds[:-1], bounds[1:])]
    return _join(outs, metrics_only), state


def _join(outs, metrics_only):
    if metrics_only:
        return outs[-1]
    eq, cash, pos, orders, halted, interest = zip(*outs)
    cat = np.concatenate
    return (cat(eq), cat(cash), cat(pos), tuple(cat(o) for o in zip(*orders)), cat(halted),
            cat(interest))


def _equal(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


FEATURES = ["plain", "next_open", "fees", "impact", "stops", "limit", "events_equity",
            "events_value", "events_shares", "events_equity_acc", "events_shares_acc",
            "drawdown", "borrow", "margin", "drain", "everything"]
SPLITS = [(0,), (1,), (N - 1,), (N,), (7, 8, 30), (5, 6, 7, 21, 40)]


@pytest.mark.parametrize("metrics_only", [False, True], ids=["full", "metrics_only"])
@pytest.mark.parametrize("group", [False, True], ids=["own", "group"])
@pytest.mark.parametrize("feature", FEATURES)
def test_simulate_in_chunks_matches_one_call(feature, group, metrics_only):
    kw = _inputs(feature, group)
    whole = _k.simulate(**kw, metrics_only=metrics_only)
    if not metrics_only and feature != "plain":
        assert len(whole[3][0]) > 0
    for cuts in SPLITS:
        got, state = _chunked(kw, cuts, metrics_only)
        _equal(got, whole)
        assert state.bar == N


@pytest.mark.parametrize("feature", [*FEATURES, "events_value_acc"])
def test_simulate_bar_by_bar_matches_one_call(feature):
    for group in (False, True):
        kw = _inputs(feature, group, seed=1)
        whole = _k.simulate(**kw)
        got, state = _chunked(kw, range(1, N), False)
        _equal(got, whole)   # order times t included: absolute bar numbers
        assert state.n_orders == len(whole[3][0]) and state.bar == N
        _equal(_chunked(kw, range(1, N), True)[0], _k.simulate(**kw, metrics_only=True))


def test_drained_account_fee_cut_reaches_an_earlier_calls_order_record():
    # a forced exit's capped fee is cut on the later bar that closes the account's last
    # position (its asset had no bar): bar by bar, that record went out with an earlier
    # call; the state keeps a reference to it and the cut lands there
    kw = _inputs("drain", True, seed=1)   # a seed where that happens
    whole = _k.simulate(**kw)
    got, _ = _chunked(kw, range(1, N), False)
    _equal(got, whole)
    # the path is exercised: a state rebuilt by from_dict each bar (no references to
    # earlier outputs) misses the cut
    s, outs = _k.SimState(M, kw["n_groups"], CASH), []
    for r in range(N):
        outs.append(_k.simulate(**_rows(kw, r, r + 1), state=s))
        s = _k.SimState.from_dict(s.to_dict())
    assert not np.array_equal(_join(outs, False)[3][4], whole[3][4])
    np.testing.assert_array_equal(_join(outs, False)[1], whole[1])   # cash is right


def test_simulate_without_state_leaves_no_trace_between_calls():
    kw = _inputs("everything", True)
    _equal(_k.simulate(**kw), _k.simulate(**kw))


@pytest.mark.parametrize("feature", ["everything", "events_shares_acc", "limit"])
def test_state_saved_to_npz_and_loaded_continues_like_one_call(feature):
    kw = _inputs(feature, True)
    whole = _k.simulate(**kw)
    k = 19
    state = _k.SimState(M, kw["n_groups"], CASH)
    first = _k.simulate(**_rows(kw, 0, k), state=state)
    buf = io.BytesIO()
    np.savez(buf, **state.to_dict())
    buf.seek(0)
    with np.load(buf) as z:
        loaded = _k.SimState.from_dict(dict(z))
    copy = state.copy()
    rest = _k.simulate(**_rows(kw, k, N), state=loaded)
    _equal(_join([first, rest], False), whole)
    # the copy is independent: it continues the same way, the original stayed at k
    assert state.bar == k and copy.bar == k and loaded.bar == N
    _equal(_join([first, _k.simulate(**_rows(kw, k, N), state=copy)], False), whole)


def test_state_metrics_only_round_trip_continues_like_one_call():
    kw = _inputs("drawdown", True)
    whole = _k.simulate(**kw, metrics_only=True)
    state = _k.SimState(M, kw["n_groups"], CASH)
    _k.simulate(**_rows(kw, 0, 30), metrics_only=True, state=state)
    state = _k.SimState.from_dict(state.to_dict())
    _equal(_k.simulate(**_rows(kw, 30, N), metrics_only=True, state=state), whole)


def test_fresh_state_holds_the_initial_values():
    s = _k.SimState(4, 2, 500.0)
    d = s.to_dict()
    assert d["version"] == _k.STATE_VERSION and d["bar"] == 0 and d["n_orders"] == 0
    np.testing.assert_array_equal(d["cash"], [500.0, 500.0])
    np.testing.assert_array_equal(d["q"], np.zeros(4))
    assert np.isnan(d["last"]).all() and (d["resume"] == -1).all()
    assert d["stats"].shape == (2, len(_k.FIELDS)) and d["extras"].shape == (2, len(_k.EXTRAS))


@pytest.mark.parametrize("field, value, match", [
    ("version", 99, "version"),
    ("q", np.zeros(5), "'q'"),
    ("pending", np.zeros(4), "'pending'"),           # float, not int8
    ("resume", np.zeros(2, dtype=np.int32), "'resume'"),
    ("stats", np.zeros((2, 3)), "'stats'"),
    ("cash", [1.0, 2.0], "'cash'"),                   # a list, not an array
    ("bar", -1, "bar"),
    ("bar", 1.5, "bar"),
    ("n_groups", 3, "'cash'"),                        # the arrays no longer fit
])
def test_from_dict_refuses_wrong_version_shape_or_dtype(field, value, match):
    d = _k.SimState(4, 2, 500.0).to_dict()
    d[field] = value
    with pytest.raises(ValueError, match=match):
        _k.SimState.from_dict(d)


def test_from_dict_refuses_a_missing_field():
    d = _k.SimState(4, 2, 500.0).to_dict()
    del d["drain_rec"]
    with pytest.raises(ValueError, match="drain_rec"):
        _k.SimState.from_dict(d)


def test_simulate_refuses_a_state_of_another_shape():
    kw = _inputs("plain", True)
    with pytest.raises(ValueError, match="state is for"):
        _k.simulate(**kw, state=_k.SimState(M + 1, kw["n_groups"], CASH))


@pytest.mark.parametrize("args", [(-1, 1, 1.0), (2, 0, 1.0), (2, 1, 0.0), (2, 1, np.inf),
                                  (2.5, 1, 1.0), (True, 1, 1.0)])
def test_simstate_refuses_bad_sizes_or_cash(args):
    with pytest.raises(ValueError):
        _k.SimState(*args)


def test_enum_names_are_exported_once():
    assert _k.REASONS == ("signal", "stop", "take_profit", "trailing", "drawdown",
                          "margin_call", "fixed_fee")
    assert _k.SIZE_TYPES == ("equity", "value", "shares")
    assert _k.EXTRAS == ("fees", "traded", "eq_sum", "orders", "exposure")
    from quantlab._kernels import metrics as _km
    assert _k.FIELDS == _km.FIELDS and len(_k.FIELDS) == 38
    assert _km.FIELDS[_km.F_MAX_DD] == "max_dd" and _km.FIELDS[_km.F_DN_WB] == "dn_wb"
    try:   # the Python layer labels with the same names (until it imports them)
        from quantlab import backtesting as bt
    except ImportError:
        import quantlab.backtest as bt
    assert tuple(bt.REASONS) == _k.REASONS and tuple(bt.SIZE_TYPES) == _k.SIZE_TYPES


def test_fee_cut_of_an_account_closed_with_negative_cash_reaches_an_earlier_calls_record():
    # an account drained by a forced order's fee and closed (equity <= 0) with cash < 0
    # has that fee cut on a later bar; bar by bar, the record went out with an earlier
    # call and the state must keep its reference while the account is closed (it kept it
    # only while the account was open: the fee stayed 1636.48 too high)
    import pandas as pd
    import xarray as xr

    import quantlab as ql
    from quantlab.backtesting import dispatch
    from quantlab.backtesting.options import BacktestOptions

    rng = np.random.default_rng(18)
    n, m, p = 48, 3, 2
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), 0))
    c = np.where(rng.random((n, m)) < 0.3, np.nan, c)
    ds = xr.Dataset({"close": (("time", "asset"), c)},
                    coords={"time": pd.bdate_range("2024-01-01", periods=n),
                            "asset": [f"A{i}" for i in range(m)]})
    sig = xr.DataArray(rng.choice([-0.6, 0.0, 0.4, 0.9, np.nan], size=(n, m, p)),
                       dims=("time", "asset", "p"),
                       coords={**ds["close"].coords, "p": np.arange(p)})
    kw = dict(fees=0.3, slippage=0.2, dd_limit=0.02, dd_cooldown=1, max_leverage=3.0,
              rebalance="daily", group=True)
    ref = ql.backtest(ds, sig, **kw).orders
    state, fees = _k.SimState(m * p, p, 100_000.0), []
    for r in range(n):
        run = dispatch.simulate(ds.isel(time=slice(r, r + 1)), sig.isel(time=slice(r, r + 1)),
                                None, None, BacktestOptions(**kw), state=state)
        fees.append(run.out[3][4])
    assert (ref["reason"] == "drawdown").any()
    np.testing.assert_array_equal(np.concatenate(fees), ref["fee"].to_numpy())
