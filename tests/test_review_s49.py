"""Outside review of session 49's streamed-backtest buffers (result._Graph._joined) and
metrics-only statistics groups (metrics.acc_need, acc_add's need bits)."""
import dask
import numpy as np

import quantlab as ql
from quantlab import metrics
from quantlab._kernels import metrics as km
from panels import ohlcv_panel


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
