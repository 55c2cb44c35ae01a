"""Session 59 (review): max_order_value values the order a target places, whole."""
import numpy as np
import pytest

from panels import deploy_targets as _deploy, flat_market as _market


def _values(dep, reason="signal"):
    o = dep.orders
    o = o[o["reason"] == reason]
    return (o["size"].abs() * o["price"]).round(6).tolist()


def test_a_drawdown_reentry_is_no_order_of_a_target_that_does_not_change_it():
    # a 10% fall halts the account (dd 3%); its re-entry two bars on re-establishes the
    # target held through the halt (0.4: 38,400 at 9), whatever this bar's target.
    # Before: with nothing pending the re-entry was counted as the target's order, so
    # a target equal to the one in force, or NaN, was "rejected" (the re-entry went
    # through all the same: it is the held target's, not this one's)
    ds = _market([10.0, 10, 10, 10, 9, 9, 9, 9, 9, 9])
    for held in (0.4, np.nan):
        dep = _deploy(ds, [0, 0, 0.2, 0.4, 0.4] + [held] * 5, 30_000, dd_limit=0.03,
                      dd_cooldown=2)
        assert _values(dep, "drawdown") == [36_000.0]
        assert _values(dep)[-1] == pytest.approx(38_400.0)      # the re-entry
        assert len(dep.rejections) == 0


def test_an_order_the_target_makes_of_a_waiting_one_is_valued_whole():
    # B has no bar for two bars: its 0.1 order (10,000) waits, then the target 0.5
    # replaces it, a 50,000 order. Before: valued as its change to the one waiting,
    # 40,000, under the 45,000 limit, and 50,000 went through at B's next bar
    ds = _market([10.0] * 7, ("A", "B"))
    for k in (3, 4):
        ds["close"][k, 1] = ds["open"][k, 1] = np.nan
    dep = _deploy(ds, [[0, 0], [0, 0], [0, 0], [0, 0.1], [0, 0.5], [0, 0.5], [0, 0.5]],
                  45_000)
    assert _values(dep) == [10_000.0, 40_000.0]   # 0.1 kept, then 0.5 from it
    assert dep.rejections["wanted"].tolist() == [0.5, 0.5]


def test_a_limit_order_resting_at_the_close_is_counted_once():
    # limit_offset=0 rests the order at the close; the dry run's step at the last
    # closes then fills it: one 30,000 order was counted as 60,000 and rejected
    ds = _market([10.0] * 5)
    dep = _deploy(ds, [0, 0, 0.3, 0.3, 0.3], 45_000, order_type="limit", limit_offset=0.0)
    assert _values(dep) == [30_000.0] and len(dep.rejections) == 0


def test_the_dry_run_takes_one_kernel_step_when_nothing_waits():
    # the step at the last closes values orders left waiting (next_open, an asset
    # without a bar); with none it places nothing: a bar costs the dry run's step and
    # the real one (3 before, ~0.1 ms of the limit's ~0.25 ms a bar)
    ds = _market([10.0] * 6)
    dep = _deploy(ds, [0, 0, 0.2, 0.3, 0.3, 0.3], 1e9, upto=5)
    calls, step = [], dep._stepper.step
    dep._stepper.step = lambda *a, **k: calls.append(1) or step(*a, **k)
    dep.on_bar(ds.isel(time=5))
    assert len(calls) == 2 and _values(dep) == [20_000.0, 10_000.0]
