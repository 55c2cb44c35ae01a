"""Watching a running ``TickEngine`` or ``ql.Deployment``: ``health_check`` (one status
of an engine) and ``AlertMonitor`` (rules on their statistics, each breach sent to log or
callables)."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from quantlab import _validate as _v
from quantlab import compat
from quantlab.engine.core import TickEngine

__all__ = ["AlertMonitor", "health_check"]

log = logging.getLogger("quantlab.engine")


def health_check(engine, p99_limit_us=10.0, reject_limit=0.05) -> dict:
    """``engine.health_check(...)``: critical: kill switch on; degraded: p99 latency above
    ``p99_limit_us`` or more than ``reject_limit`` of ticks rejected; healthy otherwise.

    Parameters
    ----------
    engine : TickEngine or ql.Deployment
        Anything with ``get_performance_stats()``.
    p99_limit_us : float
        Sampled p99 latency (µs) above which it is degraded (>= 0; inf: off).
    reject_limit : float
        Share of rejected ticks, in [0, 1], above which it is degraded.

    Returns
    -------
    dict
        ``{"status": "healthy" | "degraded" | "critical", "message": ...}``.

    Examples
    --------
    >>> from quantlab.engine import TickEngine
    >>> from quantlab.engine.alerts import health_check
    >>> health_check(TickEngine(), p99_limit_us=float("inf"))
    {'status': 'healthy', 'message': '0 ticks, 0 orders'}
    """
    p99_limit_us = _v.number("p99_limit_us", p99_limit_us, 0, finite=False)
    reject_limit = _v.number("reject_limit", reject_limit, 0, 1)
    s = engine.get_performance_stats()
    if s["kill_switch"]:
        return {"status": "critical", "message": "drawdown kill switch is on: no orders"}
    problems = []
    if s["p99_latency_us"] > p99_limit_us:
        problems.append(f"p99 latency {s['p99_latency_us']:.2f} µs > {p99_limit_us} µs")
    if s["ticks_processed"] and s["rejected_ticks"] / s["ticks_processed"] > reject_limit:
        problems.append(f"{s['rejected_ticks']} of {s['ticks_processed']} ticks rejected")
    if problems:
        return {"status": "degraded", "message": "; ".join(problems)}
    return {"status": "healthy", "message": f"{s['ticks_processed']} ticks, "
            f"{s['orders_submitted']} orders"}


class AlertMonitor:
    """Rules on the statistics of a ``TickEngine`` or a ``ql.Deployment``; each breach
    goes to every sink. Both expose ``get_performance_stats()`` and ``pnl()`` under the
    same names; on a deployment a "tick" is a bar (bad bars raise, so its error rate is
    0), a rejected order is a target changed by its risk limits, and the latency is the
    decision time per bar (signal + risk checks + kernel step).

    ``rules``: "max" rules fire when the value is above the limit: {"p99_latency_us": 10,
    "error_rate": 0.01 (rejected ticks / ticks), "rejection_rate": 0.5 (rejected orders /
    signals acted on), "drawdown": 1000 (currency)}; "min" rules when it is below:
    {"success_rate": 0.99 (1 - error_rate)}. The seed's names ``max_latency_us``,
    ``max_error_rate``, ``min_success_rate`` are accepted (``quantlab.compat.ALERT_RULES``);
    an alert's ``"rule"`` is the name given.
    ``sinks``: "log" (the ``quantlab.engine`` logger) or callables ``f(alert_dict)``.

    Parameters
    ----------
    engine : TickEngine or ql.Deployment
        What to watch.
    rules : dict
        Rule name -> limit (above); rates in [0, 1], inf never fires.
    sinks : sequence, str or callable
        "log" and/or callables taking the alert dict (one of them alone too).

    Examples
    --------
    >>> from quantlab.engine import AlertMonitor, TickEngine
    >>> from quantlab.testing import synthetic_ticks
    >>> eng = TickEngine()
    >>> _ = eng.process_ticks(synthetic_ticks(1000, n_symbols=5, seed=1, bad_fraction=0.1))
    >>> mon = AlertMonitor(eng, {"error_rate": 0.05}, sinks=[print])
    >>> alerts = mon.check()
    {'rule': 'error_rate', 'value': 0.1, 'limit': 0.05, 'message': 'error_rate = 0.1 above 0.05'}
    """

    MAX_RULES = ("p99_latency_us", "error_rate", "rejection_rate", "drawdown")
    MIN_RULES = ("success_rate",)
    KNOWN = MAX_RULES + MIN_RULES

    def __init__(self, engine, rules: dict, sinks=("log",)):
        if not isinstance(rules, Mapping):
            raise TypeError(f"alert rules are a dict of rule -> limit, got "
                            f"{type(rules).__name__}")
        unknown = set(rules) - set(self.KNOWN) - set(compat.ALERT_RULES)
        if unknown:
            raise ValueError(f"unknown alert rule(s) {sorted(map(str, unknown))}; rules: "
                             f"{', '.join(self.KNOWN)} (the seed's: "
                             f"{', '.join(f'{k} = {v}' for k, v in compat.ALERT_RULES.items())})")
        self._rule = {k: compat.ALERT_RULES.get(k, k) for k in rules}   # given -> quantlab
        twice = [k for k in rules if list(self._rule.values()).count(self._rule[k]) > 1]
        if twice:
            raise ValueError(f"alert rules {twice} are one rule ({self._rule[twice[0]]!r}); "
                             "give it once")
        if isinstance(sinks, str) or callable(sinks):
            sinks = [sinks]      # one sink: "log" was read as the sinks 'l', 'o', 'g'
        elif not isinstance(sinks, Iterable):
            raise TypeError(f"alert sinks are a list of 'log' and callables, got "
                            f"{type(sinks).__name__}")
        bad = [s for s in sinks if not (isinstance(s, str) and s == "log" or callable(s))]
        if bad:
            raise ValueError(f"alert sinks are 'log' or callables, got {bad!r}")
        from quantlab.live import Deployment  # lazy: live imports engine.feeds (a cycle)

        if not isinstance(engine, (TickEngine, Deployment)):
            raise TypeError(f"AlertMonitor watches a TickEngine or a ql.Deployment, got "
                            f"{type(engine).__name__}")
        rates = ("success_rate", "error_rate", "rejection_rate")       # in [0, 1]
        rules = {k: _v.number(f"alert rule {k!r}", v, 0, 1 if self._rule[k] in rates
                              else None, finite=False)                # inf: never fires
                 for k, v in rules.items()}
        self.engine, self.rules, self.sinks = engine, rules, list(sinks)
        self.history: list = []

    def check(self) -> list:
        """Evaluate every rule now; each breach goes to every sink, is kept in
        ``history`` and returned.

        Examples
        --------
        >>> from quantlab.engine import AlertMonitor, TickEngine
        >>> mon = AlertMonitor(TickEngine(), {"min_success_rate": 0.99})   # a seed name
        >>> mon.check()        # no ticks yet: nothing breached
        []
        """
        s = self.engine.get_performance_stats()
        tried = s["orders_submitted"] + s["orders_rejected"]
        error_rate = (s["rejected_ticks"] / s["ticks_processed"]
                      if s["ticks_processed"] else 0.0)
        values = {"p99_latency_us": s["p99_latency_us"], "error_rate": error_rate,
                  "rejection_rate": s["orders_rejected"] / tried if tried else 0.0,
                  # a deployment before its first bar may not know its accounts yet
                  "drawdown": self.engine.pnl()["drawdown"] if s["ticks_processed"] or
                  isinstance(self.engine, TickEngine) else 0.0,
                  "success_rate": 1.0 - error_rate}
        alerts = []
        for k, lim in self.rules.items():
            rule = self._rule[k]
            v = values[rule]
            low = rule in self.MIN_RULES
            if (v < lim) if low else (v > lim):
                name = k if k == rule else f"{k} ({rule})"
                alerts.append({"rule": k, "value": v, "limit": lim,
                               "message": f"{name} = {v:.4g} {'below' if low else 'above'} "
                                          f"{lim}"})
        for a in alerts:
            for sink in self.sinks:
                if sink == "log":
                    log.warning("alert: %s", a["message"])
                else:
                    sink(a)
        self.history += alerts
        return alerts
