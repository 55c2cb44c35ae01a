"""The tick engine's settings: the YAML shipped as ``quantlab/config/engine.yaml``
(``config/engine.yaml`` in the repo is a copy to edit), then a YAML path or dict given to
the engine, then environment variables ``QUANTLAB_<SECTION>_<KEY>`` (e.g.
``QUANTLAB_RISK_MAX_POSITION=500``) and the seed's ``MAX_DRAWDOWN`` (a fraction:
``risk.max_drawdown_pct``), ``LOG_LEVEL``, ``LOG_FILE`` (``quantlab.compat.ENVIRONMENT``).
Unknown sections or keys, an unknown ``QUANTLAB_*`` variable (other than ``OTHER_VARIABLES``),
or values of the wrong type, raise ``ValueError`` naming the key or variable; values out
of range raise through the shared checkers (``quantlab._validate``) naming the key, the
value and the range. ``configure_logging`` applies ``log.level`` and ``log.file``."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from quantlab import _validate as _v
from quantlab import _yaml, compat
from quantlab.data import user_path

__all__ = ["DEFAULT_CONFIG", "load_config", "configure_logging", "MAX_SYMBOLS", "MAX_SAMPLES",
           "MAX_RING", "LOG_LEVELS", "OTHER_VARIABLES"]

DEFAULT_CONFIG = Path(__file__).parent.parent / "config" / "engine.yaml"

# QUANTLAB_* variables that are not engine settings (read elsewhere in quantlab); any other
# QUANTLAB_* variable that names no engine setting is an error, never silently ignored
OTHER_VARIABLES = ("QUANTLAB_SIMD", "QUANTLAB_THREADS")

# settings whose default is null (unset): their type when set
_OPTIONAL = {("risk", "max_drawdown_pct"): float, ("log", "file"): str}


def load_config(config=None, environ=None) -> dict:
    """Defaults <- ``config`` (a YAML path or a dict of sections) <- environment variables
    (``QUANTLAB_<SECTION>_<KEY>``, the seed's ``MAX_DRAWDOWN``, ``LOG_LEVEL``,
    ``LOG_FILE``). Every value is checked: out of range, of the wrong type, or an unknown
    section, key or ``QUANTLAB_*`` variable is an error naming it.

    Parameters
    ----------
    config : str, Path, dict or None
        A YAML file or a dict of sections (``{"risk": {"max_position": 500}}``).
    environ : mapping or None
        The environment variables (default ``os.environ``).

    Returns
    -------
    dict
        The settings by section (engine, signal, risk, log).

    Examples
    --------
    >>> from quantlab.engine import load_config
    >>> cfg = load_config({"risk": {"max_position": 500}}, environ={})
    >>> cfg["risk"]["max_position"], cfg["engine"]["tick_size"]
    (500, 0.01)
    >>> load_config(environ={"QUANTLAB_SIGNAL_ORDER_SIZE": "50"})["signal"]["order_size"]
    50
    >>> load_config({"risk": {"max_position": -1}}, environ={})
    Traceback (most recent call last):
    ...
    ValueError: config: risk.max_position must be an integer in [0, 4611686018427387904], got -1
    """
    import yaml  # lazy: yaml.YAMLError, only when a config is read

    cfg = _yaml.load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    given: dict = {}     # (section, key) -> where it was set: named in range errors

    def merge(update, where):
        for section, values in update.items():
            if section in compat.CONFIG_SECTIONS:        # the seed's section names
                alias, section = section, compat.CONFIG_SECTIONS[section]
                if section in update:
                    raise ValueError(f"{where}: sections {section!r} and {alias!r} (the "
                                     f"seed's name of {section!r}) are one section; give one")
            if section not in cfg:
                raise ValueError(f"{where}: unknown config section {_v._show(section)}; "
                                 f"sections: {', '.join(cfg)}")
            if values is None:       # an empty section in a YAML file
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"{where}: section {section!r} must be a mapping, got "
                                 f"{values!r}")
            for key, value in values.items():
                if key not in cfg[section]:   # a 10,000-character key: shortened
                    raise ValueError(f"{where}: unknown config key {section}."
                                     f"{_v._show(key, str)}; keys: {', '.join(cfg[section])}")
                cfg[section][key] = _typed(section, key, value, cfg[section][key], where)
                given[section, key] = where

    if config is not None:
        if isinstance(config, (str, Path)):
            config = user_path("config", config)   # a NUL byte, a 300-byte name: named
            try:
                loaded = _yaml.load(_yaml.read_text(config, str(config)))  # 010: 10
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
    for name, key in compat.ENVIRONMENT.items():      # the seed's variables
        if name not in env:
            continue
        section, k = key.split(".")
        ours = f"QUANTLAB_{section}_{k}".upper()
        if ours in env and str(env[ours]).strip() != str(env[name]).strip():
            raise ValueError(f"environment {name}={env[name]!r} (the seed's name of {key}) "
                             f"and {ours}={env[ours]!r} disagree; set one")
        merge({section: {k: env[name]}}, f"environment {name} (the seed's name of {key})")
    sections = [*cfg, *compat.CONFIG_SECTIONS]
    for name, value in env.items():
        if not name.startswith("QUANTLAB_") or name in OTHER_VARIABLES:
            continue
        rest = name[len("QUANTLAB_"):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            known = [f"QUANTLAB_{s}_{k}".upper() for s in cfg for k in cfg[s]]
            raise ValueError(f"environment {name}: unknown quantlab variable; quantlab reads "
                             f"{', '.join(OTHER_VARIABLES)}, the engine settings "
                             f"{', '.join(known)} and the seed's "
                             f"{', '.join(f'{n} ({k})' for n, k in compat.ENVIRONMENT.items())}")
        merge({section: {rest[len(section) + 1:]: value}}, f"environment {name}")
    _check(cfg, given)
    return cfg


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _typed(section, key, value, default, where):
    """``value`` as the type of the default; a value that is not one (a fractional int,
    "maybe" for a bool, True or False for a number: YAML's ``yes`` too) is an error,
    never truncated or guessed."""
    kind = _OPTIONAL.get((section, key), type(default))
    if (section, key) in _OPTIONAL and (value is None or (isinstance(value, str)
                                                          and not value.strip())):
        return None                  # unset (YAML null, an empty variable)
    if kind in (int, float) and isinstance(value, (bool, np.bool_)):   # True is not 1.0
        raise ValueError(f"{where}: {section}.{key} must be "
                         f"{'an integer' if kind is int else 'a number'}, got {value!r}")
    try:
        if (section, key) == ("log", "file"):
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError
            return os.fspath(value)
        if kind is bool:
            return value if isinstance(value, bool) else _BOOLS[str(value).strip().lower()]
        if kind is int:
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


def _check(cfg, given=None):
    """Every setting through the shared checkers (quantlab._validate): the error names the
    key, the value and the accepted range (and the variable, for one set in the
    environment); nothing is clamped."""
    e, s, r = cfg["engine"], cfg["signal"], cfg["risk"]
    big = 2 ** 62
    given = given or {}

    def label(key):
        where = given.get(tuple(key.split(".")), "config")
        return f"{where if where.startswith('environment') else 'config'}: {key}"

    def integer(key, lo, hi=big):
        sec, k = key.split(".")
        cfg[sec][k] = _v.integer(label(key), cfg[sec][k], lo, hi)

    def number(key, lo, hi=None, **kw):
        sec, k = key.split(".")
        cfg[sec][k] = _v.number(label(key), cfg[sec][k], lo, hi, **kw)

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
    number("risk.initial_capital", 0, lo_open=True)
    _drawdown(cfg, given, label)
    level = str(cfg["log"]["level"]).strip().upper()
    if level.isdigit():              # logging.INFO (20) and the like
        level = logging.getLevelName(int(level))
    cfg["log"]["level"] = _v.choice(label("log.level"), level, LOG_LEVELS)
    if cfg["log"]["file"] is not None:
        cfg["log"]["file"] = _log_file(label("log.file"), cfg["log"]["file"])
    if s["fast_span"] >= s["slow_span"]:
        raise ValueError(f"config: signal.fast_span ({s['fast_span']}) must be below "
                         f"signal.slow_span ({s['slow_span']})")


def _log_file(label: str, name: str) -> str:
    """``log.file`` as an absolute path: a file in an existing directory. A NUL byte
    ("embedded null byte") or a name longer than a file system takes ("[Errno 36] File
    name too long", the whole name repeated) failed in ``pathlib`` without naming the
    key (``quantlab.data.user_path`` refuses both)."""
    path = user_path(label, name)
    try:
        ok = not path.is_dir() and path.parent.is_dir()
    except OSError as exc:   # a path the system refuses otherwise (ELOOP, EACCES)
        raise ValueError(f"{label} {_v._show(name)}: {exc.strerror}") from None
    if not ok:
        raise ValueError(f"{label} must be a file in an existing directory, got "
                         f"{_v._show(name)}")
    return str(path.resolve())


def _drawdown(cfg, given, label):
    """The kill switch's limit. ``risk.max_drawdown`` is currency below the equity peak;
    the seed's drawdown is a fraction, and 0.10 copied into the currency key stops all
    trading after the first order's costs, so a value in (0, 1) is refused as ambiguous.
    ``risk.max_drawdown_pct`` (a fraction in (0, 1]) sets ``max_drawdown`` to
    ``max_drawdown_pct * risk.initial_capital``: the engine's equity is P&L from 0, so
    the fraction is of the capital it trades, not of the running peak."""
    r = cfg["risk"]
    dd, pct = r["max_drawdown"], r["max_drawdown_pct"]
    if 0 < dd < 1:
        raise ValueError(f"{label('risk.max_drawdown')} = {dd!r} is ambiguous: it is currency "
                         f"below the equity peak (the seed's fraction would stop trading at "
                         f"the first order's costs); for a fraction of the capital use "
                         f"risk.max_drawdown_pct={dd!r} (of risk.initial_capital, "
                         f"{r['initial_capital']:g}), for currency give at least 1")
    if pct is None:
        return
    try:
        r["max_drawdown_pct"] = _v.number(label("risk.max_drawdown_pct"), pct, 0, 1,
                                          lo_open=True)
    except ValueError as exc:
        raise ValueError(f"{exc} (a fraction of risk.initial_capital; a limit in currency "
                         "is risk.max_drawdown)") from None
    limit = r["max_drawdown_pct"] * r["initial_capital"]
    if ("risk", "max_drawdown") in given and dd != limit:
        raise ValueError(f"config: risk.max_drawdown ({dd:g}, currency) and "
                         f"risk.max_drawdown_pct ({pct:g} of risk.initial_capital "
                         f"{r['initial_capital']:g} = {limit:g}) are both set; give one")
    r["max_drawdown"] = limit


def configure_logging(cfg) -> logging.Logger:
    """The ``quantlab.engine`` logger with ``cfg["log"]``'s level and file. Both are
    process-wide, as logging is: the last engine made sets the level; a ``log.file``
    adds a file handler (one per file: it replaces one this function added for another
    file); ``log.file`` unset leaves the handlers as they are.

    Parameters
    ----------
    cfg : dict
        Settings from ``load_config`` (its ``log`` section is read).

    Returns
    -------
    logging.Logger

    Examples
    --------
    >>> from quantlab.engine import load_config
    >>> from quantlab.engine.config import configure_logging
    >>> configure_logging(load_config(environ={})).name
    'quantlab.engine'
    """
    logger = logging.getLogger("quantlab.engine")
    logger.setLevel(cfg["log"]["level"])
    path = cfg["log"]["file"]
    if path is None:
        return logger
    for h in [h for h in logger.handlers if getattr(h, "_quantlab", False)]:
        if h.baseFilename == os.path.abspath(path):
            return logger
        logger.removeHandler(h)
        h.close()
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"config: log.file {path!r} cannot be opened: {exc}") from None
    handler._quantlab = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return logger


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
                max_skew=_skew_units(r["max_clock_skew_s"], per_us),
                unit_ns=1000 // per_us)     # ns per timestamp unit (datetimes in dicts)


def _skew_units(seconds: float, per_us: int) -> int:
    """risk.max_clock_skew_s in timestamp units; 2^62 (never reached: timestamps are
    below it) for inf or anything as large."""
    units = seconds * 1e6 * per_us
    return int(units) if units < 2 ** 62 else 2 ** 62

