"""Session 46's trust leftovers (helper "odds", session 47): a bool taken as a number,
checkpoints whose identity could not be checked on resume, SIGTERM during a
deployment's setup, the feed path's late ticks, a thread-unsafe warning filter, a
private cross-module import."""
from __future__ import annotations

import re

import numpy as np
import pytest

from quantlab.engine import load_config

# ---------------------------------------------------------------- a bool is not a number

_DEFAULTS = load_config(environ={})
NUMERIC_KEYS = [(s, k) for s, keys in _DEFAULTS.items() for k, v in keys.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)] + \
    [("risk", "max_drawdown_pct")]   # null by default: a float when set


@pytest.mark.parametrize("section, key", NUMERIC_KEYS, ids=[f"{s}.{k}" for s, k in NUMERIC_KEYS])
@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_])
def test_engine_config_refuses_a_bool_for_a_number_naming_the_key(section, key, flag):
    """risk.max_drawdown=True (notebook 09's parameter) was float(True) = 1.0, a limit of
    one currency unit; tick_size, initial_capital, max_drawdown_pct ... likewise, and
    np.True_ passed the integer keys as 1."""
    kind = "an integer" if isinstance(_DEFAULTS[section][key], int) else "a number"
    with pytest.raises(ValueError, match=rf"^config: {section}\.{key} must be {kind}, "
                                         rf"got {re.escape(repr(flag))}$"):
        load_config({section: {key: flag}}, environ={})


def test_engine_config_keeps_numpy_and_yaml_numbers_and_refuses_yaml_yes(tmp_path):
    cfg = load_config({"risk": {"max_drawdown": np.float64(5000.0), "max_position": np.int64(7),
                                "max_drawdown_pct": None},
                       "engine": {"tick_size": np.float32(0.5)}}, environ={})
    assert (cfg["risk"]["max_drawdown"], cfg["risk"]["max_position"],
            cfg["engine"]["tick_size"]) == (5000.0, 7, 0.5)
    assert type(cfg["risk"]["max_position"]) is int
    path = tmp_path / "engine.yaml"
    path.write_text("risk:\n  max_drawdown: yes\n")      # YAML 1.1: True
    with pytest.raises(ValueError, match=r"risk\.max_drawdown must be a number, got True"):
        load_config(path, environ={})
