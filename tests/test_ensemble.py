"""ql.ensemble: weights from past streams only, and allocations that do what they say on
synthetic markets built for them."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.strategies import Strategy


class _Fixed(Strategy):
    """A constant exposure on one asset (a test double, not registered)."""

    defaults = {"asset": "S0", "side": 1.0}
    param_space = {"asset": ["S0"], "side": (-1.0, 1.0)}

    def __init__(self, name, **params):
        self.name = name
        super().__init__(**params)

    def _signal(self, ds, asset, side):
        sig = xr.zeros_like(ds["close"])
        return sig.where(sig.asset != asset, side)


def _market(r):
    n, m = r.shape
    close = 100 * np.cumprod(1 + r, axis=0)
    return xr.Dataset({"close": (("time", "asset"), close)},
                      coords={"time": pd.bdate_range("2000-01-03", periods=n),
                              "asset": [f"S{i}" for i in range(m)]})


@pytest.mark.parametrize("allocation", ["equal", "risk_parity", "performance_momentum",
                                        "regime"])
def test_weights_sum_to_one_never_nan_and_do_not_look_ahead(allocation, equities):
    ds = equities.isel(time=slice(-900, None))
    e = ql.ensemble.Ensemble(["volatility_regime", "spc", "complex_systems"],
                             allocation=allocation, lookback=63, fees=0.001)
    w = e.weights(ds)
    assert w.dims == ("time", "strategy") and not bool(w.isnull().any())
    np.testing.assert_allclose(w.sum("strategy"), 1.0, atol=1e-12)
    for cut in (400, 700):
        part = e.weights(ds.isel(time=slice(0, cut + 1)))
        np.testing.assert_allclose(part.isel(time=-1), w.isel(time=cut), atol=1e-12)
    sig = e.signal(ds)
    assert float(abs(sig).max()) <= 1 and sig.dims == ("time", "asset")
    res = e.backtest(ds)
    assert np.isfinite(float(res.metrics()["sharpe_ratio"]))
    assert list(e.attribution(ds).columns) == ["volatility_regime", "spc", "complex_systems"]


def test_regime_allocation_favours_the_strategy_that_wins_in_the_current_regime():
    rng = np.random.default_rng(0)
    n = 2400
    calm = (np.arange(n) // 150) % 2 == 0              # alternating calm / wild blocks
    sd = np.where(calm, 0.004, 0.02)
    drift = np.where(calm, 0.002, -0.004)              # S0 rises in calm, falls in wild
    r = np.column_stack([drift + sd * rng.normal(size=n), 0.004 * rng.normal(size=n)])
    ds = _market(r)
    e = ql.ensemble.Ensemble([_Fixed("long", side=1.0), _Fixed("short", side=-1.0)],
                             allocation="regime", shrinkage=0.0)
    w = e.weights(ds).sel(strategy="long").values
    vol = ql.ensemble.detect_regimes(ds)["volatility"].shift(time=1).values
    late = np.arange(n) > 1200
    assert w[late & (vol == "low_vol")].mean() > 0.8
    assert w[late & (vol == "high_vol")].mean() < 0.2
    equal = ql.ensemble.Ensemble([_Fixed("long"), _Fixed("short", side=-1.0)])
    assert float(e.backtest(ds).equity.isel(time=-1)) > float(equal.backtest(ds).equity.isel(time=-1))


def test_performance_momentum_tilts_to_a_persistent_winner():
    rng = np.random.default_rng(1)
    r = np.column_stack([0.002 + 0.01 * rng.normal(size=800),
                         -0.0005 + 0.01 * rng.normal(size=800)])
    ds = _market(r)
    e = ql.ensemble.Ensemble([_Fixed("winner", asset="S0"), _Fixed("loser", asset="S1")],
                             allocation="performance_momentum", lookback=126, shrinkage=0.2)
    w = e.weights(ds).sel(strategy="winner")
    assert float(w.isel(time=slice(0, 126)).max()) == pytest.approx(0.5)   # equal at first
    assert float(w.isel(time=slice(300, None)).mean()) > 0.75
    monthly = ql.ensemble.Ensemble([_Fixed("winner", asset="S0"), _Fixed("loser", asset="S1")],
                                   allocation="performance_momentum", reweight="1M")
    wm = monthly.weights(ds).sel(strategy="winner").to_series()
    assert (wm.groupby(wm.index.to_period("M")).nunique() == 1).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown allocation"):
        ql.ensemble.Ensemble(["spc"], allocation="kelly")
    with pytest.raises(ValueError, match="unknown strategy"):
        ql.ensemble.Ensemble(["spcc"])
    with pytest.raises(ValueError, match="reweight"):
        ql.ensemble.Ensemble(["spc"], reweight="fortnightly").weights(ql.data.load())


def test_seed_constructor():
    e = ql.ensemble.create_unconventional_ensemble()
    assert list(e.strategies) == ql.strategies.names("unconventional")
    assert e.allocation == "regime"


@pytest.mark.parametrize("allocation", ["equal", "risk_parity", "performance_momentum",
                                        "regime"])
def test_an_ensemble_of_one_is_that_strategy(allocation):
    m = _market(np.random.default_rng(0).normal(0, 0.01, (300, 2)))
    # risk_parity failed inside numpy ('Input must be 1- or 2-d.': np.cov of one stream)
    e = ql.ensemble.Ensemble([_Fixed("a", side=1.0)], allocation=allocation)
    assert (e.weights(m) == 1.0).all()
    xr.testing.assert_allclose(e.backtest(m).returns, ql.backtest(
        m, _Fixed("a", side=1.0).signal(m), group=True).returns)
    # one name alone is one member, not one per letter ("unknown strategy 'v'")
    assert list(ql.ensemble.Ensemble("spc").strategies) == ["spc"]


def test_members_and_numbers_are_checked():
    for bad in ([42], [None]):                      # AttributeError: no .name
        with pytest.raises(TypeError, match="registry name, a Strategy"):
            ql.ensemble.Ensemble(bad)
    # NaN failed as int(nan); 2.7 became 2; 0 and 1 gave equal weights without a word
    for lb in (np.nan, 2.7, 0, 1, -5):
        with pytest.raises(ValueError, match="lookback"):
            ql.ensemble.Ensemble(["spc"], lookback=lb)
    with pytest.raises(TypeError, match="shrinkage"):   # '<=' between int and str
        ql.ensemble.Ensemble(["spc"], shrinkage="0.5")


@pytest.mark.parametrize("reweight, firsts", [
    ("1W", ["01-01", "01-06", "01-13", "01-20"]),
    ("2W", ["01-01", "01-13", "01-27", "02-10"]),     # was every week: the 2 was dropped
    ("1M", ["01-01", "02-03", "03-02", "04-01"]),
    ("3M", ["01-01", "04-01"]),                       # was every month
    ("1Q", ["01-01", "04-01"]),
    (5, ["01-01", "01-08", "01-15", "01-22"]),
])
def test_reweight_every_n_periods_or_bars(reweight, firsts):
    from quantlab.ensemble import _rebalance_mask
    ix = pd.bdate_range("2020-01-01", periods=70)
    assert list(ix[_rebalance_mask(ix, reweight)].strftime("%m-%d"))[:4] == firsts


@pytest.mark.parametrize("reweight", ["1h", "12h", "0W", "W2", "", 1.5, 0, True])
def test_reweight_that_is_not_a_number_of_periods_is_refused(reweight):
    # "1h" on daily bars was every bar, "12M" read as "2M" (monthly): refused, naming it
    with pytest.raises(ValueError, match="reweight"):
        ql.ensemble.Ensemble(["spc"], reweight=reweight).weights(ql.data.load())


def test_reweight_of_a_time_zone_aware_index_is_by_local_periods_without_a_warning():
    import warnings

    from quantlab.ensemble import _rebalance_mask
    ix = pd.date_range("2024-01-01", periods=300, freq="D", tz="America/New_York")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # pandas' "will drop timezone information"
        mask = _rebalance_mask(ix, "1M")
    assert list(ix[mask].strftime("%m-%d")) == [f"{m:02d}-01" for m in range(1, 11)]
