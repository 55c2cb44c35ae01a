"""Streamed and metrics-only backtests equal the in-memory backtest (helper "resume",
session 45): the same numbers for every result field, whichever way the run is cut."""
import numpy as np

import quantlab as ql
from panels import ohlcv_panel


def _panel(seed=0):
    """36 bars x 2 assets of OHLCV random walks, a signal over 2 parameters; with
    fixed_fees=500 on 5,000 of cash a portfolio often ends on a margin call that takes
    all its equity (0 on the last bar, no position)."""
    return ohlcv_panel(seed, n=36, m=2, n_params=2, fraction=0.4)


def test_metrics_only_exposure_of_an_account_at_zero_equity_equals_the_full_metrics():
    """A bar with no position at zero equity (an account a margin call emptied) is 0/0:
    res.metrics() skipped it (1.89) and metrics_only (what sweeps score) summed the NaN
    (NaN), in memory and streamed alike. No position is no exposure: 0 in both. The
    bars after, 0/0 returns (no observation), count in neither (session 57)."""
    kw = dict(fixed_fees=500.0, init_cash=5_000.0, group=True, max_leverage=2.0)
    # the first seed whose margin call empties an account (exactly 0 since session 54:
    # a 1e-13 residue of the closes' rounding goes into the capped fee)
    for seed in range(40):
        ds, sig = _panel(seed)
        res = ql.backtest(ds, sig, **kw)
        last = res.equity.isel(time=-1)
        if ((last == 0.0) & ~res.positions.isel(time=-1).any("asset")).any():
            break
    else:
        raise AssertionError("no seed in 0..39 ends an account at exactly 0 equity")
    full = res.metrics()["exposure"]
    names = ("exposure", "turnover", "fees_paid")
    for data in (ds, ds.chunk(time=12)):
        mo = ql.backtest(data, sig, metrics_only=names, **kw)
        mo = mo.compute() if hasattr(mo, "compute") else mo
        np.testing.assert_allclose(mo["exposure"].values, full.values, rtol=1e-12)
    assert np.isfinite(full.values).all()
    value = abs(res.positions * res.prices).fillna(0.0).sum("asset")
    ratio = (value / res.equity).fillna(0.0).where(res.returns.notnull())
    np.testing.assert_allclose(full.values, ratio.mean("time"), rtol=1e-12)
    # the emptied account's exposure is its mean over the bars it lived, > its mean
    # over every bar (the 0/0 bars counted 0 before)
    assert (full.values >= (value / res.equity).fillna(0.0).mean("time").values).all()


def test_metrics_only_returns_metrics_of_an_emptied_account_equal_the_full_metrics():
    """After an account's equity reaches 0 its returns are 0/0: NaN in res.returns,
    which res.metrics() skips (total_return -1, sharpe -10.5 at seed 4), while
    metrics_only fed them to its running statistics: sharpe, volatility, total return
    ... NaN and win_rate another number, in memory and streamed. Now skipped there too."""
    ds, sig = _panel(4)
    kw = dict(fixed_fees=500.0, init_cash=5_000.0, group=True)
    res = ql.backtest(ds, sig, **kw)
    assert res.returns.isnull().any() and (res.equity.isel(time=-1) == 0).any()
    full = res.metrics()
    names = ("sharpe_ratio", "sortino_ratio", "annual_volatility", "total_return",
             "max_drawdown", "win_rate", "profit_factor", "stability_of_timeseries")
    for data in (ds, ds.chunk(time=7)):
        mo = ql.backtest(data, sig, metrics_only=names, **kw)
        mo = mo.compute() if hasattr(mo, "compute") else mo
        for k in names:
            np.testing.assert_allclose(mo[k].values, full[k].values, rtol=1e-10, atol=1e-12,
                                       err_msg=k)
    assert np.isfinite(full["sharpe_ratio"].values).all()
