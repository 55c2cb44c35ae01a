"""Session 60, helper `faults`: faults a paper-trading run meets -- a feed restarted or
re-sending ticks, checkpoints interrupted at each write, batch runs losing their disk --
each ending in the fault-free run's numbers or a clear error, never other numbers."""
import numpy as np
import pytest

import quantlab as ql
from quantlab.engine import BarAggregator, TickEngine
from quantlab.testing import ticks_from_bars

VR = {"window": 15}


@pytest.fixture(scope="module")
def two():
    return ql.data.load().isel(time=slice(0, 90), asset=[0, 2])


def _engine(ds, dep=None):
    eng = TickEngine({"engine": {"max_symbols": 8}})
    if dep is not None:
        return eng, eng.load_strategy_params(dep)
    return eng, eng.load_strategy_params(VR, strategy="volatility_regime", bar="1D",
                                         history=ds.isel(time=slice(0, 60)))


def _ticks(ticks, a, b):
    return {k: v[a:b] for k, v in ticks.items()}


# ---- a feed re-sending ticks of bars already traded ---------------------------------------
def test_a_resumed_feed_re_sending_traded_bars_drops_them_as_late(two, tmp_path):
    """A feed reconnecting after a restart re-sends its last ticks: the resumed engine's
    bars began empty, so the traded bars came again and the deployment refused them
    ("bar at 2000-06-13 is out of order"): `quantlab deploy --feed` stopped, exit 1. Now
    they are late ticks (dropped, counted, as without the restart) and the run ends as
    the uninterrupted one."""
    ticks = ticks_from_bars(two.isel(time=slice(60, 90)))
    eng, whole = _engine(two)
    eng.process_ticks(ticks)
    eng.flush_bars()
    eng, dep = _engine(two)
    cut = len(ticks["timestamp"]) // 2
    eng.process_ticks(_ticks(ticks, 0, cut))
    dep.checkpoint(tmp_path / "ck")
    eng, back = _engine(two, ql.Deployment.restore(tmp_path / "ck"))
    eng.process_ticks(_ticks(ticks, cut - 20, None))    # the open bar's ticks among them
    eng.flush_bars()
    assert len(back.equity) == len(whole.equity) == 30
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    late = eng.get_performance_stats()["late_ticks"]
    assert sum(late.values()) == 12, late      # the bars traded before the checkpoint


def test_ticks_of_the_history_s_bars_are_late_not_a_refused_bar(two):
    """The first ticks of a feed overlapping the history given to load_strategy_params
    made a bar the deployment refused as duplicated, which ended the run."""
    eng, dep = _engine(two)
    eng.process_ticks(ticks_from_bars(two.isel(time=slice(58, 62))))
    eng.flush_bars()
    assert [str(t)[:10] for t in dep.equity.time.values] == ["2000-05-25", "2000-05-26"]
    assert eng.get_performance_stats()["late_ticks"] == {"AAPL": 8, "IBM": 8}


def test_a_bar_aggregator_after_a_time_takes_only_later_bars():
    agg = BarAggregator("1min", ["A"], unit="s", after=np.datetime64("1970-01-01T00:01:30"))
    tick = {"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.0], "bid_size": [1],
            "ask_size": [1], "timestamp": [61]}
    assert agg.add(tick) == [] and agg.flush() == [] and agg.late_ticks == {"A": 1}
    agg.add(dict(tick, timestamp=[120]))
    assert [str(b.time.values)[:19] for b in agg.flush()] == ["1970-01-01T00:02:00"]
