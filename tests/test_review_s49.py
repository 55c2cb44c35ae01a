"""Outside review of session 49's streamed-backtest buffers (result._Graph._joined) and
metrics-only statistics groups (metrics.acc_need, acc_add's need bits)."""
import dask
import numpy as np
import pytest

import quantlab as ql
from quantlab import metrics
from quantlab._kernels import metrics as km
from quantlab.backtesting import result

from panels import ohlcv_panel
from test_outofcore import _assert_equal


def test_a_streamed_metrics_only_run_traces_its_formulas_once_not_per_chunk(monkeypatch):
    """acc_need ran every formula of the run's metrics on each kernel call: a streamed
    run of 400 chunks traced them 401 times (0.3-0.9 ms each, ~9 % of the run). Now once
    per set of formulas; a formula replaced in METRICS is traced anew."""
    ds, sig = ohlcv_panel(11, n=120, m=3)
    names = ("sharpe_ratio", "win_rate", "fees_paid")
    traces = []

    class Counted(metrics._Reads):
        def __init__(self, *a):
            traces.append(1)
            super().__init__(*a)

    monkeypatch.setattr(metrics, "_Reads", Counted)
    want = ql.backtest(ds, sig, group=True, fees=0.001).metrics()
    with dask.config.set(scheduler="sync"):
        got = ql.backtest(ds.chunk(time=4), sig, group=True, fees=0.001, metrics_only=names)
    assert len(traces) <= 1, f"{len(traces)} traces for 30 chunks"
    for k in names:
        np.testing.assert_allclose(got[k].values, want[k].values, rtol=1e-10, err_msg=k)

    def win_rate_of_wealth(a, **_):   # reads the wealth group, not the wins
        return a["wealth"] - 1.0

    assert not metrics.acc_need(["win_rate"]) & km.A_WEALTH
    monkeypatch.setitem(metrics.METRICS, "win_rate", (win_rate_of_wealth, False))
    assert metrics.acc_need(["win_rate"]) == km.A_WEALTH


def _accumulators():
    """Running statistics (NFIELDS x 7) of series in every state a formula may branch on:
    no value, one, a constant, gains only, a loss below -100 % (negative wealth), NaN
    holes, an ordinary walk."""
    rng = np.random.default_rng(49)
    r = np.full((60, 7), np.nan)
    r[:1, 1] = 0.01
    r[:, 2] = 0.002
    r[:, 3] = np.abs(rng.normal(0, 0.01, 60))
    r[:, 4] = rng.normal(0, 0.01, 60)
    r[30, 4] = -1.5
    r[::3, 5] = rng.normal(0, 0.02, 20)
    r[:, 6] = rng.normal(0.001, 0.02, 60)
    with np.errstate(invalid="ignore"):
        return km.accumulate(r, np.log1p(r), np.empty((0, 7)), 0.0)


def test_guard_each_metric_reads_only_what_acc_need_keeps_in_any_state():
    """A guard (found already fine): acc_need traces the formulas once, on ones; a formula
    reading a statistic only on some branch of its values would be missed, and the
    metric come out NaN (or, were it not masked, from the statistic's start value).
    For every streaming metric, alone and with others, on accumulators in every state:
    the formula reads only statistics acc_need keeps, and from_accumulator with that
    need has the bits of the all-statistics run."""
    acc = _accumulators()
    names = metrics.streaming_names()
    kept_always = {"n", "mean", "m2"}
    for name in names:
        need = metrics.acc_need([name])
        a = metrics._Reads({f: acc[i] for f, i in metrics._F.items()})
        with np.errstate(all="ignore"):
            metrics.METRICS[name][0](a, **metrics._params("daily", 252.0))
        skipped = {f for f in a.read - kept_always if not need & km.acc_groups([f])}
        assert not skipped, f"{name} reads {skipped}, which acc_need={need} does not keep"
    rng = np.random.default_rng(0)
    for sub in [[n] for n in names] + [list(rng.choice(names, k, replace=False))
                                       for k in (2, 3, 5, 8) for _ in range(4)]:
        got = metrics.from_accumulator(acc, sub, 252.0, need=metrics.acc_need(sub))
        want = metrics.from_accumulator(acc, sub, 252.0)
        for n in sub:
            np.testing.assert_array_equal(got[n], want[n], err_msg=f"{n} of {sub}")


def _kinds(kind):
    """(in-memory args, streamed args, options) of one input kind; the streamed signal
    chunked across the data's chunks, so most time chunks join several blocks."""
    ds, sig = ohlcv_panel(3, n=57, m=5)
    kw = dict(fees=0.001)
    lazy = dict(time=4, asset=2)
    if kind == "float32":
        ds = ds.astype(np.float32)
    if kind == "int":
        sig = sig.fillna(0).round().astype(np.int64)
    if kind == "coord2d":
        ds = ds.assign_coords(mask=(("time", "asset"), np.arange(57 * 5).reshape(57, 5) % 3))
    if kind == "window":   # the slippage window spans several time blocks
        kw = dict(slippage=ql.backtesting.Slippage("volume_based", window=11),
                  execution="next_open")
    if kind == "bool":
        mem = dict(entries=sig > 0.3, exits=sig < -0.3)
        return mem, {k: v.chunk(time=3, asset=3) for k, v in mem.items()}, ds, kw
    lds = ds.chunk(lazy)
    if kind == "coord2d":
        lds = lds.assign_coords(mask=ds["mask"].chunk(time=3, asset=3))
    ls = sig.transpose("asset", "time").chunk(time=1 if kind == "rows1" else 5, asset=3)
    return dict(signal=sig), dict(signal=ls, data=lds), ds, kw


@pytest.mark.parametrize("kind", ["float32", "int", "bool", "coord2d", "window", "rows1"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("group", [False, True])
def test_guard_joined_buffers_equal_in_memory_for_every_input_kind(kind, workers, group,
                                                                     monkeypatch):
    """A guard (found already fine): the chain's reused join buffers (result._Graph,
    depth + 2 per variable) hold each chunk's blocks as np.block joined them, for
    float32 data, int signals, bool entries/exits, a 2-D coordinate along time, a
    transposed signal, a slippage window over several time blocks and 1-row signal
    blocks, with one or two chunks loading ahead; metrics_only too."""
    mem, lazy, ds, kw = _kinds(kind)
    data = lazy.pop("data", ds.chunk(time=4, asset=2))
    joins = []
    real = result._Graph._joined
    monkeypatch.setattr(result._Graph, "_joined",
                        lambda self, *a: joins.append(1) or real(self, *a))
    ref = ql.backtest(ds, **mem, group=group, **kw)
    with dask.config.set(scheduler="threads", num_workers=workers):
        _assert_equal(ql.backtest(data, **lazy, group=group, **kw), ref)
        got = ql.backtest(data, **lazy, group=group, metrics_only=True, **kw).compute()
    assert joins, "the run joined no blocks into a buffer"
    want = ql.backtest(ds, **mem, group=group, metrics_only=True, **kw)
    for k in want.data_vars:
        np.testing.assert_allclose(got[k].values, want[k].values, rtol=1e-10, atol=1e-12,
                                   err_msg=k)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_time_chunk_of_length_zero_streams_as_in_memory(group, workers):
    """Dask keeps chunks of length 0 (``chunk(time=(10, 0, 30))``, a concatenated empty
    piece): the chain ran a span of no rows, which failed as "DataError: empty data set
    (time=0, asset=4)" (dask.compute loads) or numpy's "negative dimensions are not
    allowed" (the chain's task graph). Now such a chunk is no chunk: the same numbers,
    also with a signal's chunk of length 0 and in metrics-only runs."""
    ds, sig = ohlcv_panel(3, n=40, m=4)
    ref = ql.backtest(ds, sig, group=group, fees=0.001)
    lazy = ds.chunk(time=(10, 0, 15, 0, 15), asset=(2, 0, 2))
    with dask.config.set(scheduler="threads", num_workers=workers):
        for s in (sig, sig.chunk(time=(3, 0, 37), asset=2)):
            _assert_equal(ql.backtest(lazy, s, group=group, fees=0.001), ref)
        got = ql.backtest(lazy, sig, group=group, fees=0.001, metrics_only=True).compute()
    want = ql.backtest(ds, sig, group=group, fees=0.001, metrics_only=True)
    for k in want.data_vars:
        np.testing.assert_allclose(got[k].values, want[k].values, rtol=1e-10, atol=1e-12,
                                   err_msg=k)
