"""The tick engine's settings: the YAML shipped as ``quantlab/config/engine.yaml``
(``config/engine.yaml`` in the repo is a copy to edit), then a YAML path or dict given to
the engine, then environment variables ``QUANTLAB_<SECTION>_<KEY>`` (e.g.
``QUANTLAB_RISK_MAX_POSITION=500``). Unknown sections or keys, or values of the wrong
type, raise ``ValueError`` naming the key; values out of range raise through the shared
checkers (``quantlab._validate``) naming the key, the value and the range."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from quantlab import _validate as _v

__all__ = ["DEFAULT_CONFIG", "load_config", "MAX_SYMBOLS", "MAX_SAMPLES", "MAX_RING",
           "LOG_LEVELS"]

DEFAULT_CONFIG = Path(__file__).parent.parent / "config" / "engine.yaml"


def load_config(config=None, environ=None) -> dict:
    """Defaults <- ``config`` (a YAML path or a dict of sections) <- QUANTLAB_* variables."""
    import yaml

    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())

    def merge(update, where):
        for section, values in update.items():
            if section not in cfg:
                raise ValueError(f"{where}: unknown config section {section!r}; sections: "
                                 f"{', '.join(cfg)}")
            if values is None:       # an empty section in a YAML file
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"{where}: section {section!r} must be a mapping, got "
                                 f"{values!r}")
            for key, value in values.items():
                if key not in cfg[section]:
                    raise ValueError(f"{where}: unknown config key {section}.{key}; keys: "
                                     f"{', '.join(cfg[section])}")
                cfg[section][key] = _typed(section, key, value, cfg[section][key], where)

    if config is not None:
        if isinstance(config, (str, Path)):
            try:
                loaded = yaml.safe_load(Path(config).read_text())
            except yaml.YAMLError as exc:
                raise ValueError(f"{config}: not a valid YAML file: {exc}") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{config}: a config file is a mapping of sections "
                                 f"({', '.join(cfg)}), got a {type(loaded).__name__} at the "
                                 "top level")
            merge(loaded or {}, str(config))
        elif isinstance(config, Mapping):
            merge(config, "config")
        else:
            raise TypeError(f"config must be a YAML path, a dict or None, got "
                            f"{type(config).__name__}")
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith("QUANTLAB_"):
            continue
        rest = name[len("QUANTLAB_"):].lower()
        section = next((s for s in cfg if rest.startswith(s + "_")), None)
        if section is None:
            continue   # other quantlab variables are not engine settings
        merge({section: {rest[len(section) + 1:]: value}}, f"environment {name}")
    _check(cfg)
    return cfg


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _typed(section, key, value, default, where):
    """``value`` as the type of the default; a value that is not one (a fractional int,
    "maybe" for a bool) is an error, never truncated or guessed."""
    kind = type(default)
    try:
        if kind is bool:
            return value if isinstance(value, bool) else _BOOLS[str(value).strip().lower()]
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        return kind(value)
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError(f"{where}: {section}.{key} must be {kind.__name__}, got "
                         f"{value!r}") from None


# Upper bounds: arrays sized by a setting are bounded before they are allocated
# (max_symbols: 6 per-symbol arrays; max_latency_samples; max_orders_per_second: the rate
# ring), and integers fit the core's int64 state (order_size below its 2^60 state bound).
MAX_SYMBOLS = 2 ** 22
MAX_SAMPLES = 2 ** 26
MAX_RING = 2 ** 24
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check(cfg):
    """Every setting through the shared checkers (quantlab._validate): the error names the
    key, the value and the accepted range; nothing is clamped."""
    e, s, r = cfg["engine"], cfg["signal"], cfg["risk"]
    big = 2 ** 62

    def integer(key, lo, hi=big):
        sec, k = key.split(".")
        cfg[sec][k] = _v.integer(f"config: {key}", cfg[sec][k], lo, hi)

    def number(key, lo, hi=None, **kw):
        sec, k = key.split(".")
        cfg[sec][k] = _v.number(f"config: {key}", cfg[sec][k], lo, hi, **kw)

    integer("engine.max_symbols", 1, MAX_SYMBOLS)
    number("engine.tick_size", 0, lo_open=True)
    _v.choice("config: engine.timestamp_unit", e["timestamp_unit"], ("us", "ns"))
    integer("engine.latency_sample_every", 0)            # 0: no latency samples
    integer("engine.max_latency_samples", 1, MAX_SAMPLES)
    integer("signal.fast_span", 1)
    integer("signal.slow_span", 1)
    for k in ("imbalance_threshold", "min_confidence"):   # |imbalance| <= 1
        number(f"signal.{k}", 0, 1)
    integer("signal.max_signal_age_us", 0, 2 ** 52)      # x 1000 for ns stays below 2^62
    integer("signal.order_size", 1, 2 ** 60 - 1)
    integer("risk.max_position", 0)
    integer("risk.max_orders_per_second", 0, MAX_RING)
    integer("risk.max_positions", 0)
    for k in ("max_order_notional", "max_drawdown", "max_concentration",
              "concentration_base", "max_clock_skew_s"):  # inf: no limit; NaN refused
        number(f"risk.{k}", 0, finite=False)
    level = str(cfg["log"]["level"]).upper()
    cfg["log"]["level"] = _v.choice("config: log.level", level, LOG_LEVELS)
    if s["fast_span"] >= s["slow_span"]:
        raise ValueError(f"config: signal.fast_span ({s['fast_span']}) must be below "
                         f"signal.slow_span ({s['slow_span']})")


def _core_params(cfg) -> dict:
    e, s, r = cfg["engine"], cfg["signal"], cfg["risk"]
    per_us = 1000 if e["timestamp_unit"] == "ns" else 1
    return dict(capacity=e["max_symbols"], tick_size=e["tick_size"],
                fast_span=s["fast_span"], slow_span=s["slow_span"],
                threshold=s["imbalance_threshold"], min_confidence=s["min_confidence"],
                max_age=s["max_signal_age_us"] * per_us, order_size=s["order_size"],
                max_position=r["max_position"], max_order_notional=r["max_order_notional"],
                max_orders_per_second=r["max_orders_per_second"],
                max_drawdown=r["max_drawdown"], max_positions=r["max_positions"],
                max_concentration=r["max_concentration"],
                concentration_base=r["concentration_base"], second=1_000_000 * per_us,
                sample_every=e["latency_sample_every"],
                max_skew=_skew_units(r["max_clock_skew_s"], per_us))


def _skew_units(seconds: float, per_us: int) -> int:
    """risk.max_clock_skew_s in timestamp units; 2^62 (never reached: timestamps are
    below it) for inf or anything as large."""
    units = seconds * 1e6 * per_us
    return int(units) if units < 2 ** 62 else 2 ** 62

