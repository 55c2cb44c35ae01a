"""Session 45 hostile probe: asset names given to a deployment or the tick engine, paths
with "~", and write errors (disk full) while saving checkpoints and ingesting."""
import errno

import numpy as np
import pytest

import quantlab as ql
from quantlab.engine import BarAggregator
from quantlab.errors import DataError


@pytest.fixture(scope="module")
def ibm():
    return ql.data.load().isel(time=slice(0, 120)).sel(asset=["IBM"])


# ---- asset names given as a list: a deployment's universe, the engine's symbols --------

TWINS = [(["IBM", "IBM"], "duplicate asset 'IBM'"),
         (["IBM", "IBM "], "differ only by surrounding spaces"),
         (["Nestl\u00e9", "Nestle\u0301"], "Unicode form"),
         (["IBM", ""], "empty asset name at position 1"),
         (["IBM", None], "missing asset name (None) at position 1"),
         ([], "universe is empty")]


@pytest.mark.parametrize("universe, message", TWINS)
def test_deploy_universe_of_twin_empty_or_missing_names_is_refused(universe, message):
    # ['IBM', 'IBM'] traded IBM twice: twice the equity of ['IBM'], no error
    with pytest.raises(DataError, match="universe") as e:
        ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe=universe)
    assert message in str(e.value)


def test_deploy_universe_given_as_one_string_is_refused_not_split_into_letters():
    with pytest.raises(TypeError, match="universe must be a list of asset names, got str 'IBM'"):
        ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe="IBM")


def test_deploy_universe_of_plain_names_trades_as_before(ibm):
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe=("IBM",))
    dep.replay(ibm)
    plain = ql.deploy("volatility_regime", {"window": 10, "lookback": 20})
    plain.replay(ibm)
    assert dep.universe == ["IBM"] and dep.equity_now() == plain.equity_now()


@pytest.mark.parametrize("symbols, message", [
    (["IBM", "MSFT", "IBM"], "symbol_ids 0 and 2 are both asset 'IBM'"),
    ({3: "IBM", 1: "IBM"}, "symbol_ids 1 and 3 are both asset 'IBM'"),
    (["IBM", "IBM "], "differ only by surrounding spaces"),
    (["Nestl\u00e9", "Nestle\u0301"], "Unicode form"),
])
def test_engine_symbols_naming_one_asset_twice_are_refused(symbols, message):
    # ['IBM', 'MSFT', 'IBM'] made symbol 2's ticks part of IBM's bars
    with pytest.raises((ValueError, DataError), match="symbols") as e:
        BarAggregator("1s", symbols)
    assert message in str(e.value)
    with pytest.raises((ValueError, DataError), match="symbols"):
        ql.engine.TickEngine().load_strategy_params(
            {"window": 10, "lookback": 20}, strategy="volatility_regime", symbols=symbols)


def test_engine_symbols_of_distinct_names_keep_their_order():
    agg = BarAggregator("1s", {2: "B", 0: "A", 1: "日本"})
    assert agg.assets == ["B", "A", "日本"]
    bars = agg.add({"symbol_id": [0, 1, 2, 0], "bid_price": [10.0, 20.0, 30.0, 10.0],
                    "ask_price": [10.2, 20.2, 30.2, 10.2], "bid_size": [1] * 4,
                    "ask_size": [1] * 4, "timestamp": [0, 1, 2, 1_500_000]})
    np.testing.assert_allclose(bars[0]["close"].values, [30.1, 10.1, 20.1])


def test_cli_deploy_symbols_with_spaces_after_commas_are_the_names(monkeypatch, capsys):
    from quantlab import cli, engine

    seen = {}

    def load(self, params, strategy=None, *, symbols=None, **kw):
        seen["symbols"] = symbols
        raise ValueError("stop here")

    monkeypatch.setattr(engine.TickEngine, "load_strategy_params", load)
    code = cli.main(["deploy", "volatility_regime", "--feed", "ws://127.0.0.1:1/x",
                     "--symbols", "IBM, MSFT ,AAPL"])
    assert code == 2 and seen["symbols"] == ["IBM", "MSFT", "AAPL"]
