"""Explorers: controls update the figures' data in place; cached signals keep it fast."""
import numpy as np

import quantlab as ql


def test_rolling_explorer_updates_in_place():
    ds = ql.data.load()
    e = ql.widgets.RollingExplorer(ds, window=20)
    before = np.array(e.source.data["z"])
    e.window.value = 60
    after = np.array(e.source.data["z"])
    np.testing.assert_allclose(after, ql.rolling.zscore(ds["close"].sel(asset="AAPL"), 60).values,
                               equal_nan=True)
    assert not np.allclose(before, after, equal_nan=True)


def test_strategy_explorer_controls_drive_the_backtest():
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, strategy="cross_sectional_momentum")
    names = [c.description for c in e.params.children]
    assert names == list(ql.strategies.get("cross_sectional_momentum").param_space)
    # the table equals a direct backtest of the same settings
    sig = ql.strategies.get("cross_sectional_momentum").signal(ds)
    res = ql.backtest(ds.sel(asset=["AAPL"]), sig.sel(asset=["AAPL"]), fees=0.001,
                      slippage=ql.Slippage("fixed", bps=5.0))
    assert e.metrics["total_return"] == float(res.metrics()["total_return"].sel(asset="AAPL"))
    eq_before = np.array(e.src["equity"].data["y"])
    e.fees.value = 0.005
    assert e.metrics["fees_paid"] > 0
    assert not np.allclose(eq_before, e.src["equity"].data["y"])
    e.asset.value = "IBM"
    np.testing.assert_allclose(e.src["price"].data["y"], ds["close"].sel(asset="IBM").values)
    n_cached = len(e._cache)
    e.asset.value = "MSFT"  # same strategy and parameters: the signal comes from the cache
    assert len(e._cache) == n_cached
    e.strategy.value = "spc"
    assert [c.description for c in e.params.children] == ["span", "k", "h"]
    e.params.children[0].value = 126
    assert ("spc", (("h", 4.0), ("k", 0.5), ("span", 126))) in e._cache
    # strategies whose data is missing are not offered
    close_only = ds[["close"]]
    assert "liquidity_timing" not in ql.widgets.StrategyExplorer(close_only).strategy.options
