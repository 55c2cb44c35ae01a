"""Session 57 (lead).

The per-bar means of a backtest's metrics (exposure, turnover's mean equity) count the
bars its returns count. Session 56 made a bar without a close of the account's assets and
without an equity change no observation for the returns; exposure and turnover still
divided by every bar: GOOG (listed 2004) held from 2000 read exposure 0.657 and turnover
0.289 for 1.0 and 0.211 over its own bars.
"""
import numpy as np
import pytest

import quantlab as ql

EXTRAS = ("exposure", "turnover", "fees_paid", "n_orders")


@pytest.fixture(scope="module")
def goog():
    ds = ql.data.load()
    sig = ds["close"].notnull().astype(float)
    own = ds.sel(asset=["GOOG"]).dropna("time", subset=["close"])
    return ds, sig, own, own["close"].notnull().astype(float)


@pytest.mark.parametrize("group", [False, True])
def test_exposure_and_turnover_of_a_late_listing_equal_its_own_bars(goog, group):
    ds, sig, own, own_sig = goog
    kw = dict(fees=0.001, group=group)
    # a portfolio of GOOG alone: its bars before the listing are no observation either
    data = ds.sel(asset=["GOOG"]) if group else ds
    full = ql.backtest(data, sig.sel(asset=data["asset"]), **kw).metrics()
    want = ql.backtest(own, own_sig, **kw).metrics()
    if not group:
        full, want = full.sel(asset="GOOG"), want.sel(asset="GOOG")
    for k in ("exposure", "turnover", "annual_return"):
        np.testing.assert_allclose(full[k].values, want[k].values, rtol=1e-12, err_msg=k)
    assert float(full["exposure"]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("chunked", [False, True])
def test_metrics_only_extras_equal_the_full_metrics_on_a_late_listing(goog, chunked):
    ds, sig, _, _ = goog
    data = ds.isel(time=slice(800, 1400))   # GOOG lists inside the window
    s = sig.isel(time=slice(800, 1400))
    assert data["close"].sel(asset="GOOG").isnull().sum() > 100
    full = ql.backtest(data, s, fees=0.001).metrics()
    mo = ql.backtest(data.chunk(time=128) if chunked else data, s, fees=0.001,
                     metrics_only=EXTRAS)
    mo = mo.compute() if chunked else mo
    for k in ("exposure", "turnover", "fees_paid"):   # n_orders: metrics_only's alone
        np.testing.assert_allclose(mo[k].values, full[k].values, rtol=1e-12, err_msg=k)
    assert float(mo["exposure"].sel(asset="GOOG")) == pytest.approx(1.0, abs=1e-12)


def test_an_account_never_priced_has_no_mean():
    ds = ql.data.load().isel(time=slice(0, 300))   # GOOG not yet listed
    sig = ds["close"].notnull().astype(float)
    for m in (ql.backtest(ds, sig).metrics(),
              ql.backtest(ds, sig, metrics_only=EXTRAS)):
        assert np.isnan(float(m["exposure"].sel(asset="GOOG")))
        assert np.isnan(float(m["turnover"].sel(asset="GOOG")))
        assert float(m["fees_paid"].sel(asset="GOOG")) == 0.0


def test_ticks_of_a_symbol_without_an_asset_name_are_named_in_a_warning(caplog):
    # they were left out of a deployment's bars with no word (counted in skipped, with
    # the invalid quotes): a feed's new listing never reached the strategy
    from quantlab.engine import BarAggregator

    agg = BarAggregator("1s", {0: "AAA"}, unit="us")
    tick = {"symbol_id": [0, 7, 7, 9], "bid_price": [10.0] * 4, "ask_price": [10.2] * 4,
            "bid_size": [1] * 4, "ask_size": [1] * 4, "timestamp": [0, 10, 20, 30]}
    with caplog.at_level("WARNING", logger="quantlab"):
        agg.add(tick)
        agg.add(dict(tick, timestamp=[40, 50, 60, 70]))   # once per symbol_id
    said = [r.getMessage() for r in caplog.records if "not in symbols" in r.getMessage()]
    assert len(said) == 1 and "7, 9" in said[0] and "0: AAA" in said[0], said
    assert agg.unknown_symbols == {7, 9} and agg.skipped == 6


def test_a_two_dimensional_text_timestamp_column_is_named_as_such():
    from quantlab.engine import TickEngine

    n = 5
    cols = {"symbol_id": np.zeros(n, int), "bid_price": np.full(n, 10.0),
            "ask_price": np.full(n, 10.1), "bid_size": np.ones(n), "ask_size": np.ones(n)}
    for stamps in (np.arange(2 * n).reshape(2, n),
                   np.array([["2024-01-02"] * n] * 2, dtype=object)):
        with pytest.raises(ValueError, match=r"'timestamp' must be one-dimensional, got "
                                             r"shape \(2, 5\)"):
            TickEngine().process_ticks(dict(cols, timestamp=stamps))


@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_a_target_that_differs_in_its_last_bits_is_no_change(execution):
    # a deployment's fallback recomputes a user strategy's signal over a trailing window:
    # 0.5 there may be 0.5 + 1 ulp; rebalance="on_change" read it as a change and sized
    # the drifted position back to half the equity, an order the backtest never placed
    ds = ql.data.load().isel(time=slice(0, 200))
    sig = xr_full(ds, 0.5)
    jitter = sig.copy()
    jitter[50:120] = np.nextafter(0.5, 1.0)
    jitter[120:] = np.nextafter(0.5, 0.0)
    want = ql.backtest(ds, sig, fees=0.001, fixed_fees=1.0, execution=execution)
    got = ql.backtest(ds, jitter, fees=0.001, fixed_fees=1.0, execution=execution)
    assert len(got.orders) == len(want.orders) == 3   # an entry per listed asset (not GOOG)
    np.testing.assert_array_equal(got.equity.values, want.equity.values)
    # a real change, however small in money, still trades
    moved = sig.copy()
    moved[100:] = 0.5 + 1e-9
    assert len(ql.backtest(ds, moved, fees=0.001, execution=execution).orders) > \
        len(ql.backtest(ds, sig, fees=0.001, execution=execution).orders)


def test_a_target_creeping_within_rounding_trades_once_it_adds_up_to_a_change():
    # the target acted on moves only by a change: steps of 4e-13 (each no change) trade
    # each time they add up to more than 1e-12 since the last order, every third bar; the
    # target compared with the last bar's, a creep never traded
    ds = ql.data.load().isel(time=slice(0, 200)).sel(asset=["IBM"])
    creep = xr_full(ds, 0.5)
    creep[100:] = 0.5 + 4e-13 * np.arange(1, 101)[:, None]
    res = ql.backtest(ds, creep)
    assert res.orders["t"].tolist() == [0, *range(102, 200, 3)]


def xr_full(ds, v):
    return ds["close"].notnull().astype(float) * 0 + v


def test_the_risk_reports_drawdown_table_reads_as_a_tear_sheet():
    # it printed the raw dict: -0.569547 beside a limit of 0.2 (the other sign) and a
    # time under water of 108 without a unit
    from quantlab import fmt, risk

    ds = ql.data.load().isel(time=slice(0, 400))
    res = ql.backtest(ds, ds["close"].notnull().astype(float) * 0.25, group=True)
    rep = risk.RiskManager().generate_risk_report(res)
    html = rep.tables_html()
    table = html[html.index("<h3>Drawdowns"):html.index("<h3>Stress")]
    d = rep.drawdown
    assert f"<td>{fmt.pct(d['max_drawdown'], sign=False)}</td>" in table
    assert "<td>-20.0 %</td>" in table and f"<td>{d['time_under_water']} bars</td>" in table
    assert "<td>yes</td>" in table or "<td>no</td>" in table
    assert "0.2<" not in table and "NaN" not in table and "None" not in table


def test_a_run_does_not_print_the_kernels_tcp_warning(tmp_path, capfd):
    # ipykernel 7 logged "Kernel is running over TCP without encryption ... susceptible to
    # eavesdropping" to the terminal at every notebook of `make report`
    import nbformat

    from quantlab import suite

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
    out = suite.execute_notebook_json(nbformat.writes(nb), {}, timeout=120)
    assert out["status"] == "ok", out["error"]
    err = capfd.readouterr().err
    assert "without encryption" not in err and "WARNING" not in err, err[-500:]
