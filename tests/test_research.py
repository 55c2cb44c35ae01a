"""run_research_analysis: shape, aliases, errors, and one cell against a direct backtest."""
import numpy as np
import pytest

import quantlab as ql


def test_one_cell_equals_a_direct_backtest():
    out = ql.run_research_analysis(["AAPL", "MSFT"], "momentum", fees=0.001, progress=False)
    assert set(out) == {"AAPL", "MSFT"}
    cell = out["MSFT"]["cross_sectional_momentum"]  # keyed by registry name
    ds = ql.data.load()
    s = ql.strategies.get("cross_sectional_momentum")
    sig = s.signal(ds)  # ranked on the whole universe
    direct = ql.backtest(ds.sel(asset=["MSFT"]), sig.sel(asset=["MSFT"]), fees=0.001).metrics()
    for k in ("sharpe_ratio", "total_return", "max_drawdown"):
        assert cell[k] == pytest.approx(float(direct[k].sel(asset="MSFT")), rel=1e-12)
    assert cell["n_trades"] == int(direct["n_trades"].sel(asset="MSFT"))
    assert len(cell["signals"]) == ds.sizes["time"]


def test_comprehensive_has_every_strategy_and_correlation():
    out = ql.run_research_analysis("IBM", progress=False)
    assert set(out["IBM"]) == set(ql.strategies.names()) | {"correlation"}
    corr = out["IBM"]["correlation"]
    assert set(corr["with"].index) == {"AAPL", "GOOG", "MSFT"}
    assert np.nanmax(np.abs(corr["rolling_average"].values)) <= 1


def test_unknown_symbols_and_types_are_named():
    with pytest.raises(ValueError, match="unknown symbol 'GOOGL': did you mean GOOG.*load_csv"):
        ql.run_research_analysis(["GOOGL"])
    with pytest.raises(ValueError, match="unknown analysis_type 'momentun'.*Did you mean 'momentum'"):
        ql.run_research_analysis(["IBM"], "momentun")
