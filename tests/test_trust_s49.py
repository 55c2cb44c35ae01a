"""Session 49: argument checks the "tidy" helper listed but did not own."""
import numpy as np
import pytest

import quantlab as ql
from quantlab import risk


def test_sweep_data_without_close_is_refused_before_any_signal(equities):
    # sweeps._check_data was a near-twin of _validate.dataset without its 'close' check:
    # each chunk's backtest then failed deep in the run
    with pytest.raises(ql.DataError, match=r"sweep data has no 'close' variable .*'open'"):
        ql.sweep("volatility_regime", equities[["open", "volume"]], {"window": [10]},
                 chunks=1, workers=1)


@pytest.mark.parametrize("n_sims", [1e30, 10 ** 9, 2.5])
def test_monte_carlo_draws_are_refused_by_name_beyond_what_can_run(n_sims):
    # 1e30 failed as NumPy's "Maximum allowed dimension exceeded", 10**12 allocated TBs
    r = np.random.default_rng(0).normal(0, 0.01, 500)
    rm = risk.RiskManager()
    for f in (rm.calculate_var, rm.calculate_cvar):
        with pytest.raises((TypeError, ValueError), match="n_sims"):
            f(r, method="monte_carlo", n_sims=n_sims)
    assert np.isfinite(rm.calculate_var(r, method="monte_carlo", n_sims=1000)["var_95"])


def test_suite_config_values_are_read_as_typed_not_yaml_1_1(tmp_path):
    # the CLI's -p values were fixed (probe, session 49); config/suite.yaml was still
    # YAML 1.1: symbol ON (ON Semiconductor) ran as True, NO (Norway) as False, 010 as 8
    from quantlab.suite import load_config
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "suite.yaml").write_text(
        "timeout: 60\nruns:\n"
        "  - {notebook: a.ipynb, name: a-ON, parameters: {symbol: ON, market: NO, "
        "window: 010, start: 9:30, fees: 1e-3, tag: 'true', on: true}}\n")
    (run,) = load_config(tmp_path / "suite.yaml", tmp_path)
    assert run.parameters == {"symbol": "ON", "market": "NO", "window": 10,
                              "start": "9:30", "fees": 0.001, "tag": "true", "on": True}
    assert run.timeout == 60.0
