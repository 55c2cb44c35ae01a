"""The ``quantlab`` command line (also ``python -m quantlab``)::

    quantlab run-suite [NOTEBOOK ...] [-p NAME VALUE ...] [--params-file grid.yaml]
                       [--out DIR] [--clean] [--timeout S] [--jobs N]
                       [--scheduler ADDRESS] [--in-place]
    quantlab report    (the same options, no --in-place) [--no-input] [--self-contained]
                       [--keep-notebooks] [--from-stored]
                       # HTML reports + index; prints the folder size
    quantlab lab       [--port N] [jupyter lab options]  # JupyterLab on notebooks/
    quantlab engine-bench [--ticks N]
    quantlab deploy STRATEGY [--params best.json] (--replay PATH_OR_SET | --feed ws://...)
                    [--start DATE] [--block N]                 # --replay only
                    [--bar FREQ] [--symbols A,B,...]           # --feed only
                    [--checkpoint DIR] [--every N] [--set KEY VALUE ...]

``run-suite`` and ``report`` are :mod:`quantlab.suite` (batch rules are there).
``report --from-stored`` renders the committed notebooks' STORED outputs (kept current
by ``make notebooks``) instead of executing them: seconds instead of minutes, the same
pages as long as the stored outputs are current; a run with parameters has no stored
outputs and is executed.
``deploy --checkpoint DIR`` resumes a deployment saved there (by this command or by the
API): what the command line gives of its identity (--params, --set, --symbols in their
order, --bar or the replay's bar size, --start, --replay or --feed) must be the saved
values (exit 2 naming each that differs); the bar size is in the checkpoint itself (one
without it resumes with a warning); --checkpoint, --every, --block, the feed's address
and the replay's file (of bars of that size) may change. Ctrl-C (exit 130) and SIGTERM
(exit 143) stop it after saying how many bars it traded, the checkpoint that of the last
whole bar; during the setup, saying that nothing was traded.
``lab`` binds 127.0.0.1 only, keeps token authentication (a fresh random token, given
to jupyter through ``JUPYTER_TOKEN`` so it is not on the process list) and prints the
URL with the token; as root it adds ``--allow-root``. Options that would change the
address or the authentication are refused: run ``jupyter lab`` yourself for that.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time as _time
from pathlib import Path

import numpy as np

from quantlab import _yaml, suite
from quantlab._validate import integer
from quantlab.data import user_path
from quantlab.errors import DataError

__all__ = ["lab_command", "main", "parser"]

LAB_HOST = "127.0.0.1"
BENCH_TICKS_MAX = 10 ** 8   # quantlab.engine.bench's n_columnar bound (a test ties them)
CLI_STATE = "cli.json"   # beside a deploy checkpoint: what else its run was started with
LAB_PORT = 8888
# jupyter options `quantlab lab` refuses (lower-cased name contains one): they would
# change the address it binds or its authentication
_LAB_FIXED = ("token", "password", "allow-remote", "allow_remote", "disable_check_xsrf")


def _changes_access(key: str) -> bool:
    return key == "--ip" or key.endswith(".ip") or any(f in key for f in _LAB_FIXED)


def _yaml_value(option: str, key: str, text: str):
    """``text`` as a value: a number, ``true``/``false``, ``null``/``~``/empty -> None,
    else the text exactly as given; a value starting with ``[``, ``{`` or a quote is
    YAML (``[1, 2]`` -> list, ``'010'`` -> str), its plain scalars read the same way.
    A ValueError naming the option when that is not YAML (a traceback and exit 1 before).

    Not YAML 1.1 for a plain value, whose rules changed what was typed: ``010`` -> 8,
    ``1:30`` -> 90, ``ON``/``NO`` -> True/False, ``Run #2`` -> 'Run', ``a: b`` -> a dict,
    a newline -> a space."""
    import yaml  # lazy: only a command line with values reads YAML

    if text.strip()[:1] not in ("[", "{", "'", '"'):
        return suite.plain_scalar(text)
    try:
        return yaml.load(text, Loader=suite.plain_loader())   # noqa: S506 -- a SafeLoader
    except yaml.YAMLError as e:
        raise ValueError(f"{option} {key} {text!r}: not YAML ({e})") from None


def _path(text: str) -> str:
    """A path option's value with ``~`` expanded (``--out=~/reports`` made a folder
    named ``~``); an empty one is refused (it was the working directory)."""
    try:
        return str(user_path("path", text))
    except TypeError:
        raise argparse.ArgumentTypeError(f"not a path: {text!r}") from None


def _parse_p(pairs) -> dict:
    """``-p NAME VALUE`` pairs, values read by :func:`_yaml_value` (1 -> int, ``true``
    -> True, ``[1, 2]`` -> list, other text as given); a date stays its text."""
    return suite.check_parameters({k: _yaml_value("-p", k, v) for k, v in pairs or []}, "-p")


def _batch_options(s) -> None:
    s.add_argument("notebooks", nargs="*", type=_path, help="notebooks to run (default: the suite "
                   "config, or every notebook in notebooks/)")
    s.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a parameter for every run whose notebook takes it (repeatable)")
    s.add_argument("--params-file", type=_path, help="YAML grid {name: [values]}: one run per combination")
    s.add_argument("--config", type=_path, help="suite YAML (default: config/suite.yaml if present)")
    s.add_argument("--out", type=_path, help="output directory (default reports/); earlier runs "
                   "there stay in its index")
    s.add_argument("--clean", action="store_true", help="first delete the notebooks and "
                   "reports --out's index lists, and the index")
    s.add_argument("--timeout", type=float, help="seconds a notebook may run (default: "
                   f"the config's timeout:, else {suite.DEFAULT_TIMEOUT:g}); past it, failed")
    s.add_argument("--jobs", type=int, default=1, help="local dask workers (default 1: in process)")
    s.add_argument("--scheduler", help="address of an existing dask scheduler, tcp://host:8786")
    s.add_argument("--no-input", action="store_true", help="hide code cells in HTML reports")


def parser() -> argparse.ArgumentParser:
    """The ``quantlab`` argument parser: ``run-suite``, ``report``, ``lab``,
    ``engine-bench`` and ``deploy`` (see the module docstring).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from quantlab import cli
    >>> a = cli.parser().parse_args(["report", "--from-stored", "--out", "reports",
    ...                              "-p", "symbol", "MSFT"])
    >>> a.cmd, a.from_stored, a.out, a.parameter
    ('report', True, 'reports', [['symbol', 'MSFT']])
    """
    p = argparse.ArgumentParser(prog="quantlab", description="quantlab: notebook suite, "
                                "reports, JupyterLab and the tick-engine benchmark")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("run-suite", "execute notebooks with papermill (batch, grids, dask)"),
                        ("report", "execute and render HTML reports (sharing _static/) "
                         "+ index")):
        s = sub.add_parser(name, help=help_)
        _batch_options(s)
        if name == "run-suite":
            s.add_argument("--in-place", action="store_true",
                           help="re-execute notebooks/ in place (refresh stored outputs; "
                           "default parameters only; a failed notebook is left as it was)")
        else:
            s.add_argument("--self-contained", action="store_true",
                           help="one file per report carrying BokehJS and the widget "
                           "renderer (4-15 MB each; for e-mailing one report); default: "
                           "light reports linking the shared OUT/_static/ by relative path")
            s.add_argument("--keep-notebooks", action="store_true",
                           help="keep each executed .ipynb beside its report")
            s.add_argument("--from-stored", action="store_true",
                           help="render the notebooks' stored outputs (the committed, "
                           "executed notebooks/: `make notebooks`) without executing; "
                           "runs with parameters have none and are executed")
    sub.add_parser("lab", help=f"open JupyterLab on the notebooks ({LAB_HOST}, token auth; "
                   "prints the URL with the token); further options go to jupyter lab")
    eb = sub.add_parser("engine-bench", help="the tick engine vs its pure-Python reference")
    eb.add_argument("--ticks", type=int, default=2_000_000, help="columnar ticks (2M)")
    _deploy_options(sub.add_parser("deploy", help="paper-trade a strategy bar by bar on a "
                                   "replay or a live feed (ql.deploy)"))
    return p


def _deploy_options(d) -> None:
    d.add_argument("strategy", help="a registry name (quantlab strategies: ql.strategies.names())")
    d.add_argument("--params", type=_path, help="JSON file of parameters (e.g. an optimisation's "
                   "best_params), or of {\"params\": {...}, \"backtest\": {...}}")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", type=_path, help="bars to replay: a bundled data set name "
                     "(ql.data.available()) or a CSV file/folder (ql.data.load_csv)")
    src.add_argument("--feed", help="a websocket of engine ticks, ws://HOST:PORT/PATH "
                     "(aggregated into --bar bars)")
    d.add_argument("--bar", help="bar frequency for --feed (pandas, default 1min)")
    d.add_argument("--symbols", help="for --feed: asset names by symbol_id, comma-separated")
    d.add_argument("--start", help="first traded bar of the replay; earlier bars only warm "
                   "up the signal")
    d.add_argument("--checkpoint", type=_path, help="folder: resume from its checkpoint if there is one, "
                   "and save after every bar")
    d.add_argument("--every", type=int, default=1, help="a status line every N bars (1)")
    d.add_argument("--report", type=_path, help="an HTML file: the deployment's dashboard and "
                   "tear sheet (opens offline), rewritten at most every "
                   f"{REPORT_SECONDS:g} s as bars come, and when the run ends")
    d.add_argument("--block", type=int,
                   help="replay: the signals of N bars from one strategy call (faster; "
                        "the same decisions up to rounding, 1e-12; default 1)")
    d.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="a ql.backtest option, e.g. --set fees 0.001 (YAML scalar)")
    d.add_argument("--risk", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="a risk limit (ql.live.RiskLimits), e.g. --risk max_drawdown_pct 0.1 "
                        "(the kill switch) or --risk max_position 0.5")


def lab_command(extra=(), token: str | None = None, uid: int | None = None):
    """``(argv, env, url)`` for ``jupyter lab`` on notebooks/.

    Bound to LAB_HOST, port ``--port`` of ``extra`` (default LAB_PORT, no silent move to
    another port), token auth with ``token`` passed in the environment (not on the
    process list), and ``--allow-root`` when ``uid`` is 0. ``extra`` options that set
    the address or the authentication are refused.

    Parameters
    ----------
    extra : sequence of str
        Further jupyter lab options.
    token : str, optional
        The access token (default: a fresh random one).
    uid : int, optional
        The user id (default ``os.getuid()``).

    Returns
    -------
    tuple
        (argv list, environment dict, URL with the token).

    Raises
    ------
    ValueError
        For ``--ip``, token/password options or a port outside [1, 65535].

    Examples
    --------
    >>> from quantlab.cli import lab_command
    >>> argv, env, url = lab_command(["--port", "8890"], token="t0k", uid=1000)
    >>> url, env["JUPYTER_TOKEN"], "--allow-root" in argv
    ('http://127.0.0.1:8890/lab?token=t0k', 't0k', False)
    >>> lab_command(["--ip=0.0.0.0"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: quantlab lab binds 127.0.0.1 with token auth; '--ip=0.0.0.0' would change ...
    """
    rest, port, args = [], LAB_PORT, list(extra)
    while args:
        arg = args.pop(0)
        key = arg.split("=", 1)[0].lower()
        if _changes_access(key):
            raise ValueError(f"quantlab lab binds {LAB_HOST} with token auth; {arg!r} would "
                             "change that (run jupyter lab yourself to do so)")
        if key not in ("--port", "--serverapp.port"):
            rest.append(arg)
            continue
        value = arg.split("=", 1)[1] if "=" in arg else (args.pop(0) if args else "")
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise ValueError(f"--port must be an integer in [1, 65535], got {value!r}")
        port = int(value)
    token = token or secrets.token_urlsafe(32)
    argv = [str(Path(sys.executable).parent / "jupyter-lab"), str(suite.REPO / "notebooks"),
            f"--ServerApp.ip={LAB_HOST}", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", "--ServerApp.open_browser=False"]
    if (os.getuid() if uid is None else uid) == 0:
        argv.append("--allow-root")
    env = {**os.environ, "JUPYTER_TOKEN": token}
    return argv + rest, env, f"http://{LAB_HOST}:{port}/lab?token={token}"


def _lab(extra) -> int:
    try:
        argv, env, url = lab_command(extra)
    except ValueError as e:
        print(f"quantlab lab: error: {e}", file=sys.stderr)
        return 2
    print(f"JupyterLab on {suite.REPO / 'notebooks'}: open {url}", file=sys.stderr, flush=True)
    return subprocess.call(argv, env=env)


def _check_in_place(p, a) -> bool:
    in_place = getattr(a, "in_place", False)
    if in_place:
        clash = [opt for opt, given in (("-p", a.parameter), ("--params-file", a.params_file),
                                        ("--out", a.out is not None), ("--clean", a.clean))
                 if given]
        if clash:  # stored outputs are of the defaults, and in place there is no --out
            p.error(f"--in-place re-executes notebooks with their default parameters and "
                    f"writes them back; it cannot be combined with {', '.join(clash)}")
    return in_place


def _check_scheduler(address: str) -> None:
    """--scheduler read by dask's own parser before any run ('banana' was a traceback
    from inside the client, exit 1)."""
    from distributed.comm import get_address_host_port

    try:
        _, port = get_address_host_port(address)
    except ValueError as e:
        raise ValueError(f"--scheduler {address!r}: {e} (an address such as "
                         "tcp://host:8786)") from None
    integer(f"--scheduler {address!r}: the port", port, 1, 65535)


def _plan(a, config, out, in_place):
    """The runs and the timeout of a batch; refuses bad input before anything runs."""
    import yaml

    integer("--jobs", a.jobs, 1, 1024)
    timeout = (suite.DEFAULT_TIMEOUT if a.timeout is None
               else suite.check_timeout(a.timeout, "--timeout"))
    if a.notebooks:
        runs = [suite.Run(str(Path(nb).resolve())) for nb in a.notebooks]
        missing = [r.notebook for r in runs if not Path(r.notebook).is_file()]
        if missing:
            raise ValueError(f"notebook not found: {missing[0]}")
        if a.timeout is None:
            timeout = suite.config_timeout(config) or timeout
    else:
        runs = suite.load_config(config if Path(config).exists() else None)
    if a.timeout is not None:  # the command line wins over the config
        for r in runs:
            r.timeout = None
    suite.give_parameters(runs, _parse_p(a.parameter))
    if a.scheduler is not None:
        _check_scheduler(a.scheduler)
    if a.params_file:
        try:
            grid = yaml.load(_yaml.read_text(a.params_file, f"--params-file {a.params_file}"),
                             Loader=suite.plain_loader())  # noqa: S506 -- a SafeLoader
        except yaml.YAMLError as e:   # a traceback and exit 1 before
            raise ValueError(f"--params-file {a.params_file}: not YAML ({e})") from None
        except OSError as e:   # "[Errno 2] No such file ..." named not the option
            raise ValueError(f"--params-file {a.params_file}: {e.strerror or e}") from None
        runs = suite.expand_grid(runs, grid)
    if in_place:  # stored outputs are of the defaults: one run per notebook
        runs = [r for r in runs if not r.parameters]
        runs = list({str(Path(r.notebook).resolve()): r for r in runs}.values())
    if not runs:
        raise ValueError("nothing to run (no notebooks, or none with default parameters "
                         "for --in-place)")
    if not in_place:
        if a.clean:
            suite.clean_index(out)
        suite.plan_outputs(runs, out)  # refuse bad names before anything runs
    return runs, timeout


def _batch(p, a) -> int:
    in_place = _check_in_place(p, a)
    out = a.out if a.out is not None else "reports"
    config = a.config or (suite.REPO / "config" / "suite.yaml")
    if a.config and not Path(a.config).exists():
        p.error(f"config not found: {a.config}")
    # another batch writing --out: refused before --clean or the names are planned
    held = contextlib.ExitStack()
    try:
        if not in_place:
            held.enter_context(suite.batch_lock(out))
        runs, timeout = _plan(a, config, out, in_place)
    except (OSError, TypeError, ValueError) as e:   # BlockingIOError: --out is in use
        held.close()
        print(f"quantlab {a.cmd}: error: {e}", file=sys.stderr)
        return 2
    with held:
        try:
            suite.run_suite(runs, None if in_place else out, in_place=in_place,
                            render=a.cmd == "report", jobs=a.jobs, scheduler=a.scheduler,
                            no_input=a.no_input, timeout=timeout, index=not in_place,
                            **({"self_contained": a.self_contained,
                                "keep_notebooks": a.keep_notebooks,
                                "from_stored": a.from_stored} if a.cmd == "report" else {}))
            if not in_place:
                index = suite.write_index(runs, out)
                print(f"wrote {index}", file=sys.stderr)
        except OSError as e:   # a full disk under --out: said in a line (a traceback before)
            print(f"quantlab {a.cmd}: error: {e}", file=sys.stderr)
            return 1
    if a.cmd == "report":
        total, static = suite.folder_size(out)
        shared = (f"{static / 1e6:.1f} MB shared in {suite.STATIC}/" if static else
                  "each page self-contained")   # "0.0 MB shared in _static/" of no folder
        print(f"report size: {total / 1e6:.1f} MB in {out} ({shared})", file=sys.stderr)
    failed = [r.name for r in runs if r.status != "ok"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _deploy_setup(a):
    """(params, backtest options, risk limits) from --params, --set and --risk."""
    from quantlab import strategies   # lazy: loads the kernels
    from quantlab.backtesting.options import BacktestOptions  # lazy: the research stack

    params, options = {}, {}
    if a.params:
        try:
            obj = json.loads(_yaml.read_text(a.params, f"--params {a.params}"))
        except json.JSONDecodeError as e:
            raise ValueError(f"--params {a.params}: not JSON ({e})") from None
        except OSError as e:   # "[Errno 2] No such file ..." named neither the option
            raise ValueError(f"--params {a.params}: {e.strerror or e}") from None
        saved_keys = sorted({"strategy", "backtest"} & set(obj)) if isinstance(obj, dict) \
            else []
        if saved_keys and "params" not in obj:   # read as parameters named so before
            raise ValueError(f"--params {a.params} has {saved_keys} but no \"params\": "
                             "{\"strategy\": ..., \"params\": {...}, \"backtest\": {...}} "
                             "as OptimizationResult.save writes it")
        params, options = (obj.get("params"), obj.get("backtest", {})) \
            if isinstance(obj, dict) and "params" in obj else (obj, {})
        if not (isinstance(params, dict) and isinstance(options, dict)):
            raise ValueError(f"--params {a.params}: a JSON object of parameters expected, "
                             "or {\"params\": {...}, \"backtest\": {...}}")
        saved = obj.get("strategy") if isinstance(obj, dict) and "params" in obj else None
        known = isinstance(saved, str) and (saved in strategies.names()
                                             or saved in strategies.ALIASES)
        if saved is not None and (not known or strategies.resolve(saved).name
                                  != strategies.resolve(a.strategy).name):
            raise ValueError(f"--params {a.params} holds the parameters of {saved!r}, not "
                             f"of {a.strategy!r} (OptimizationResult.save names its "
                             "strategy)")
    # was "BacktestOptions.__init__() got an unexpected keyword argument"
    for where, keys in ((f"--params {a.params} \"backtest\"", options), ("--set", dict(a.set))):
        _refuse_unknown(where, keys, BacktestOptions, "a ql.backtest option", "options")
    options.update({k: _set_value(k, v) for k, v in a.set})
    return params, options, _risk_limits(a.risk)


def _risk_limits(pairs):
    """``RiskLimits`` of --risk KEY VALUE pairs (their checks name a bad value)."""
    from quantlab.live import RiskLimits  # lazy: the research stack

    _refuse_unknown("--risk", [k for k, _ in pairs], RiskLimits, "a risk limit", "limits")
    return RiskLimits(**{k: _set_value(k, v, "--risk") for k, v in pairs})


def _refuse_unknown(where: str, keys, cls, what: str, these: str) -> None:
    """A ValueError for the first of ``keys`` that is no field of the dataclass ``cls``,
    naming every field."""
    from dataclasses import fields  # lazy: only the deploy command

    known = [f.name for f in fields(cls)]
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"{where} {unknown[0]}: not {what}; the {these}: {', '.join(known)}")


def _set_value(key: str, text: str, option: str = "--set"):
    """A --set (--risk) value: YAML, but a number in exponent notation is the number
    (YAML 1.1 reads 1e-3 as the text '1e-3', which the option then refused as not a
    number), and ``inf`` is infinity (YAML's is ``.inf``: a limit switched off)."""
    if text.strip().lower() in ("inf", "+inf", "infinity"):
        return np.inf
    value = _yaml_value(option, key, text)
    if isinstance(value, str):
        try:
            return float(value) if _EXPONENT.fullmatch(value.strip()) else value
        except OverflowError:
            return value
    return value


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _deploy_usage(a) -> None:
    """Options that do not apply to the source given (silently ignored before), a feed
    address websockets would refuse only once the deployment was built, a --replay that
    is neither a data set nor a path: ValueError naming the option."""
    from quantlab import data  # lazy: the research stack, only this command

    given = {"--replay": a.replay, "--feed": a.feed}
    for option, value, source in (("--bar", a.bar, "--feed"), ("--symbols", a.symbols, "--feed"),
                                  ("--start", a.start, "--replay"),
                                  ("--block", a.block, "--replay")):
        if value is not None and given[source] is None:
            raise ValueError(f"{option} applies to {source} only, not to "
                             f"{'--feed' if source == '--replay' else '--replay'}")
    if a.feed is not None:
        from websockets.uri import parse_uri  # lazy: websockets, only a feed

        try:
            parse_uri(a.feed)
        except Exception as e:   # websockets' InvalidURI: its own reason
            raise ValueError(f"--feed {a.feed!r} is not a websocket address "
                             f"(ws://HOST:PORT/PATH or wss://...): {e}") from None
    elif a.replay not in data.available().index and not Path(a.replay).exists():
        raise ValueError(f"--replay {a.replay}: no such file or directory, nor a bundled "
                         f"data set ({', '.join(data.available().index)})")


def _run_identity(a) -> dict:
    """What a deploy run is beyond its deployment's own identity (the strategy, its
    parameters and options, and the bar size: in the checkpoint, whoever wrote it): the
    source of its bars and the first traded bar (--start), saved beside the checkpoint
    (CLI_STATE) and compared on resume; the bar size too, for checkpoints older than
    their own record of it."""
    return {"source": "--feed" if a.feed else "--replay",
            "bar": (a.bar or "1min") if a.feed else None,
            "start": None if a.start is None else str(_start(a.start))}


def _saved_run(ck: Path) -> dict:
    """CLI_STATE beside the checkpoint at ``ck`` ({} when there is none: a checkpoint
    written by ql.Deployment.checkpoint, or by the API's engine)."""
    try:
        saved = json.loads((ck / CLI_STATE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{ck / CLI_STATE}: unreadable ({e})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{ck / CLI_STATE}: a JSON object expected")
    return saved


def _check_identity(saved: dict, a) -> list:
    """The differences (option, saved, given) between this run's source and --start and
    those of the run that wrote CLI_STATE (``saved``; {}: nothing to compare)."""
    if not saved:
        return []
    now = _run_identity(a)
    differ = []
    if saved.get("source") != now["source"]:
        differ.append(f"{saved.get('source')} (given {now['source']})")
    if now["start"] is not None and saved.get("start") != now["start"]:
        differ.append(f"--start {saved.get('start')!r} (given {a.start!r})")
    return differ


def _check_bar(dep, saved: dict, a, bar) -> tuple:
    """(difference, warning), each a text or None. The bar size: the checkpoint's own
    record (any writer), else CLI_STATE's (an older CLI's checkpoint). Neither (or a
    replay whose bar size cannot be read): a warning that it could not be checked, and
    ``bar`` recorded from now on. ``bar``: this run's (--bar, or the replay's bars')."""
    saved_bar = dep.bar if dep.bar is not None else (
        saved.get("bar") if saved.get("source") == "--feed" else None)
    if saved_bar is not None and bar is not None:
        dep.bar = saved_bar
        if dep.same_bar(bar):
            return None, None
        return (f"--bar {saved_bar!r} (given {bar!r})" if a.feed else
                f"bars of {saved_bar!r} (given --replay {a.replay} of {bar!r} bars)"), None
    unknown = ("records no bar size (saved by an older quantlab, or a deployment without "
               "bar= or history=)" if saved_bar is None else f"has {saved_bar!r} bars")
    ours = repr(bar) if bar is not None else "bar size cannot be read (irregular times)"
    if saved_bar is None and bar is not None:
        dep.bar = bar
    return None, (f"quantlab deploy: warning: --checkpoint {a.checkpoint} {unknown}, and "
                  f"{'--bar' if a.feed else 'the replay'}'s {ours}: the bar size could "
                  "not be checked; resuming")


def _check_resumed(dep, ck, params: dict, options: dict, a, bar, risk) -> None:
    """A deployment resumed from ``ck`` continues with the checkpoint's parameters,
    options and risk limits: those the command line gives (``--params``, ``--set``,
    ``--risk``, ``--symbols`` in the saved order, ``--bar`` or the replay's bar size,
    ``--start``, the source ``--replay``/``--feed``) must be the saved ones (ValueError
    naming each that differs); those it leaves out
    come from the checkpoint. ``--checkpoint``, ``--every``, ``--block`` and the feed's
    address or the replay's file (of bars of the same size) may change."""
    from quantlab import strategies  # lazy: the research stack, only this command
    from quantlab.backtesting.options import BacktestOptions  # lazy: as above

    had = dep.strategy.params
    given = strategies.get(dep.strategy.name, **{**had, **params}).params
    differ = [f"{k}={had.get(k)!r} (given {v!r})" for k, v in given.items()
              if had.get(k) != v]
    saved = dep.options.to_dict()
    given = BacktestOptions.from_dict({**saved, **options}).to_dict()
    differ += [f"{k}={saved[k]!r} (given {given[k]!r})" for k in saved
               if saved[k] != given[k]]
    differ += [f"--risk {k} {getattr(dep.risk, k)!r} (given {getattr(risk, k)!r})"
               for k, _ in a.risk if getattr(dep.risk, k) != getattr(risk, k)]
    symbols = a.symbols if a.feed else None
    # in order: --symbols maps symbol_id to asset, a reordered list swaps their prices
    if symbols is not None and [s.strip() for s in symbols.split(",")] != (dep.universe or []):
        differ.append(f"universe={dep.universe!r}, symbol_id 0, 1, ... in this order "
                      f"(given --symbols {symbols!r})")
    run = _saved_run(Path(ck))
    differ += _check_identity(run, a)
    bar_differs, warning = _check_bar(dep, run, a, bar)
    differ += [bar_differs] if bar_differs else []
    if differ:
        raise ValueError(f"cannot resume from --checkpoint {ck}: it was saved with "
                         f"{'; '.join(differ)}; resume with the saved values (or leave "
                         "them out), or deploy afresh into another folder")
    if warning:
        print(warning, file=sys.stderr)


def _start(text) -> np.datetime64:
    try:
        return np.datetime64(text)
    except ValueError:
        raise ValueError(f"--start {text!r} is not a date (e.g. 2012-01-03)") from None


class _Terminated(KeyboardInterrupt):
    """SIGTERM (kill, systemd, docker stop) raised where the process is, as Ctrl-C is."""


def _on_sigterm(signum, frame):
    raise _Terminated


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM held until the block ends, then raised (main thread only): a
    bar's checkpoint and its count are done together. Raised inside the checkpoint, the
    run said "interrupted after 31 bars" with 30 in the checkpoint."""
    got = []
    old = [(s, signal.signal(s, lambda signum, frame: got.append(signum)))
           for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for s, handler in old:   # None: a handler not set from Python (default then)
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
    if got:   # after a block that failed, its error (a full disk) says more: not raised
        signal.raise_signal(got[0])


def _deploy_build(a, ck: Path | None, dep):
    """(deployment, engine or None, replay data or None, first bar): built, or resumed
    (``dep``) and checked against the command line; the run's identity saved beside a
    new checkpoint. Raises OSError/TypeError/ValueError for the user's input."""
    from quantlab import calendar, data, engine, live  # lazy: the research stack

    _deploy_usage(a)
    params, options, risk = _deploy_setup(a)
    integer("--every", a.every, 1)
    integer("--block", 1 if a.block is None else a.block, 1)
    eng = ds = start = None
    if a.replay:
        ds = data.load(a.replay) if a.replay in data.available().index else \
            data.load_csv(a.replay)
        start = ds.time.values[0] if a.start is None else _start(a.start)
        if start > ds.time.values[-1]:   # no bar to trade: it ran 0 bars and exit 0
            raise ValueError(f"--start {a.start} is after the replay's last bar, "
                             f"{str(ds.time.values[-1])[:10]}")
        bar = calendar.bar_size(ds)      # the replay's bars (None: irregular)
    else:
        if not a.symbols:
            raise ValueError("--feed needs --symbols: the asset name of each symbol_id")
        left_out = (dep.bar or _saved_run(ck).get("bar")) if dep is not None else None
        bar = a.bar or left_out or "1min"   # left out on a resume: the saved size
    resumed = dep is not None
    if resumed:
        _check_resumed(dep, ck, params, options, a, bar, risk)
    if a.replay:
        if dep is None:
            dep = live.deploy(a.strategy, params, history=ds.sel(time=ds.time < start),
                              bar=bar, risk=risk, **options)
    else:
        eng = engine.TickEngine()
        symbols = [s.strip() for s in a.symbols.split(",")]   # "A, B": B
        try:
            if dep is None:
                dep = eng.load_strategy_params(params, strategy=a.strategy, symbols=symbols,
                                               bar=bar, risk=risk, **options)
            else:
                eng.load_strategy_params(dep, symbols=symbols, bar=bar)
        except ValueError as e:     # the bars' "freq must be ...": name the option
            raise (ValueError(f"--bar {bar!r}: {e}") if str(e).startswith("freq") else e) \
                from None
    if ck is not None and not (resumed and (ck / CLI_STATE).exists()):   # before a bar
        ck.mkdir(parents=True, exist_ok=True)
        suite._atomic_write(ck / CLI_STATE, json.dumps(_run_identity(a)))
    return dep, eng, ds, start


def _deploy(a) -> int:
    """``quantlab deploy``: a replay (bars) or a websocket of ticks through ql.deploy, a
    status line every --every bars, a checkpoint after every bar. SIGTERM is Ctrl-C's
    path from the start: during the setup (restoring, loading the bars, warming up the
    signal) it says that nothing was traded (it killed the process without a word)."""
    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        try:
            ready = _deploy_ready(a)
        except KeyboardInterrupt as e:   # Ctrl-C or SIGTERM before the first bar
            ck = a.checkpoint and (Path(a.checkpoint) / "deployment.json").exists()
            print("quantlab deploy: interrupted during its setup, before the first bar: "
                  "nothing traded" + (f" since --checkpoint {a.checkpoint}; run the same "
                                      "command to resume" if ck else ""), file=sys.stderr)
            return 143 if isinstance(e, _Terminated) else 130
        return ready if isinstance(ready, int) else _deploy_run(a, *ready)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old)


REPORT_SECONDS = 60.0   # quantlab deploy --report: the page takes ~1 s per 1,000 bars


def _write_report(dep, path) -> None:
    """``quantlab deploy --report``: the deployment's page (``plots.deployment_html``),
    replaced atomically (a browser reloading it never reads half a page)."""
    from quantlab import plots   # lazy: drawing is the face's, only with --report

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suite._atomic_write(path, plots.deployment_html(dep))


def _report_refused(report: Path, ck: Path | None) -> str | None:
    """Why ``--report`` cannot be written, found before the first bar (None: it can): a
    page in the checkpoint's folder overwrote its files (``deployment.json`` with HTML:
    a checkpoint that no longer resumes), one containing it could not be written, and a
    folder that cannot be made was found only at the first write, a minute or a whole
    run later; a directory is no page."""
    if report.is_dir():
        return "is a directory, not a file"
    if ck is not None:
        page, folder = report.resolve(), ck.resolve()
        if page == folder or folder in page.parents or page in folder.parents:
            return f"is in or holds --checkpoint {ck}: give a file outside its folder"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot make its folder: {e.strerror or e}"
    return None


def _deploy_ready(a):
    """``(checkpoint, deployment, engine, replay data, first bar, bars traded)`` ready
    to trade, or an exit code (2: refused, with its message)."""
    from quantlab import live  # lazy: the research stack, only this command

    ck = Path(a.checkpoint) if a.checkpoint else None
    dep = None
    if ck is not None and ck.exists() and not ck.is_dir():
        print(f"quantlab deploy: --checkpoint {ck} is a file, not a directory",
              file=sys.stderr)
        return 2
    if a.report and (refused := _report_refused(Path(a.report), ck)):
        print(f"quantlab deploy: --report {a.report}: {refused}", file=sys.stderr)
        return 2
    if ck is not None and (ck / "deployment.json").exists():
        try:       # refused before any bar: a damaged checkpoint is not started over
            dep = live.Deployment.restore(ck, strategy=a.strategy)
        except ValueError as e:            # DataError included
            print(f"quantlab deploy: cannot resume from --checkpoint {ck}: {e}",
                  file=sys.stderr)
            return 2
        print(f"resumed from {ck}: {len(dep.equity)} bars traded", flush=True)
    try:   # the user's input, refused before any bar with its message, not a traceback
        dep, eng, ds, start = _deploy_build(a, ck, dep)
    except (ImportError, OSError, TypeError, ValueError) as e:   # DataError included;
        print(f"quantlab deploy: error: {e}", file=sys.stderr)   # a $QUANTLAB_PLUGINS module
        return 2
    if a.feed and ck is not None and (ck / OPEN_BAR).exists() and \
            (ck / "deployment.json").exists():
        try:
            n = eng.reopen_bar(json.loads((ck / OPEN_BAR).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"quantlab deploy: cannot resume the open bar from {ck / OPEN_BAR}: {e} "
                  "(delete the file to start that bar from the ticks to come)",
                  file=sys.stderr)
            return 2
        print(f"resumed the open bar: {n} ticks", flush=True)
    return ck, dep, eng, ds, start, len(dep.equity)   # bars traded (resumed: so far)


async def _run_feed(eng, url: str) -> bool:
    """``eng.run_feed`` on the websocket at ``url``; True if SIGTERM stopped it. The loop
    cancels the feed between messages (never inside a bar): raising from the signal
    handler landed inside the websocket's transport callbacks, which broke the connection
    and left the process hanging."""
    from quantlab import engine  # lazy: the research stack, only this command

    loop, task, stopped = asyncio.get_running_loop(), asyncio.current_task(), []

    def stop():
        stopped.append(True)
        task.cancel()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        await eng.run_feed(engine.websocket_feed(url))
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        if in_main:   # back to raising _Terminated (remove_signal_handler sets SIG_DFL)
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
    return bool(stopped)


# --feed: the open bar's ticks when the run stopped (TickEngine.open_bar), taken back on
# resume; a bar built from the ticks after a restart alone had another open, high, low
# and volume. Removed once that bar is traded (its ticks would then be late).
OPEN_BAR = "open_bar.json"


def _save_open_bar(eng, ck: Path) -> None:
    """The feed's open bar beside the checkpoint ``ck`` (none open: no file)."""
    ticks = eng.open_bar()
    if ticks is None:
        (ck / OPEN_BAR).unlink(missing_ok=True)
        return
    suite._atomic_write(ck / OPEN_BAR, json.dumps(
        {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in ticks.items()}))


def _deploy_run(a, ck, dep, eng, ds, start, traded) -> int:
    """Trade the bars; exit 0, 1 (a refused bar, a failed feed, a full disk), 130 (Ctrl-C)
    or 143 (SIGTERM), the checkpoint as of the last whole bar either way."""
    from quantlab import engine  # lazy: the research stack, only this command

    every = a.every
    # a replay runs in this thread, where a signal raises anywhere; a feed's SIGTERM
    # cancels it between messages and asyncio's Ctrl-C at its next await, never inside
    held = _signals_held if a.replay and threading.current_thread() is \
        threading.main_thread() else contextlib.nullcontext

    written = [_time.monotonic()]   # the report's last write (the first after a while)
    # a resumed feed's saved open bar: removed with the first bar traded, which held it
    reopened = [bool(a.feed) and ck is not None and (ck / OPEN_BAR).exists()]

    def bar_done(status):   # after each bar: save, and say where we are
        nonlocal traded     # a counter: len(dep.equity) builds a DataArray (~2 ms a bar)
        with held():
            if ck is not None:
                dep.checkpoint(ck)
                if reopened[0]:
                    (ck / OPEN_BAR).unlink(missing_ok=True)
                    reopened[0] = False
            traded += 1
        if traded % every == 0:
            print(dep.status_line(status), flush=True)
        if a.report and _time.monotonic() - written[0] >= REPORT_SECONDS:
            try:   # the page is a view, not the state: a full disk stops the checkpoint
                _write_report(dep, a.report)
            except OSError as e:   # (was: the trading stopped, the page not named)
                print(f"quantlab deploy: cannot write --report {a.report}: {e}; trading "
                      "on, tried again in a while", file=sys.stderr)
            written[0] = _time.monotonic()

    try:   # from here a signal is "interrupted after N bars"
        dep.listeners.append(bar_done)
        if a.replay:   # from --start, after the last bar the deployment has seen (a
            last = dep.last_bar     # resume: traded, or its history when none was)
            bars = ds.sel(time=(ds.time >= start) & (ds.time > (start if last is None
                                                               else last)))
            dep.replay(bars, block=a.block or 1)
        elif asyncio.run(_run_feed(eng, a.feed)):
            raise _Terminated
    except (DataError, engine.FeedError, OSError) as e:   # a refused bar, a failed feed,
        print(f"quantlab deploy: {e}", file=sys.stderr)   # a checkpoint on a full disk:
        _summary(dep, eng, a.report)                      # said in a line, exit 1
        return 1
    except KeyboardInterrupt as e:   # Ctrl-C or SIGTERM: where it stopped, how to go on
        print(f"quantlab deploy: interrupted after {traded} bars"
              + (f"; run the same command to resume from --checkpoint {ck}" if ck else ""),
              file=sys.stderr)
        _summary(dep, eng, a.report)
        return 143 if isinstance(e, _Terminated) else 130
    finally:   # a checkpoint to resume: the open bar's ticks beside it
        if a.feed and ck is not None and (ck / "deployment.json").exists():
            try:
                _save_open_bar(eng, ck)
            except OSError as e:   # a full disk: the bar restarts from the ticks to come
                print(f"quantlab deploy: cannot save the open bar in {ck / OPEN_BAR}: {e}",
                      file=sys.stderr)
    return 1 if _summary(dep, eng, a.report) else 0


def _summary(dep, eng, report=None) -> bool:
    """The run's last lines, however it ended: the deployment, and for a feed the ticks
    its bars dropped as late (their bar already handed on), per asset with their volume,
    as ``TickEngine.flush_bars`` logs them (a feed's open bar is not flushed: the run
    may be resumed); the ``--report`` page written last. True if that write failed
    (said on stderr)."""
    print(repr(dep), flush=True)
    try:      # the whole book's headline, as the dashboard's summary has it
        m = dep.result().as_portfolio().metrics()
    except ValueError as e:   # no bar traded; closes not recorded (an older checkpoint)
        print(f"metrics: none ({str(e).split(':')[0]})", flush=True)
    else:
        from quantlab import fmt   # lazy: the face formats numbers

        print("metrics: " + ", ".join(
            f"{fmt.label(k).lower()} {fmt.metric(k, float(m[k]))}" for k in
            ("total_return", "sharpe_ratio", "max_drawdown", "exposure", "turnover",
             "n_trades", "fees_paid")), flush=True)
    if eng is not None:
        stats = eng.get_performance_stats()
        late, volume = stats["late_ticks"], stats["late_volume"]
        print(f"late ticks: {sum(late.values())} dropped (their bar already handed on)"
              + (": " + ", ".join(f"{a} {n} ({volume[a]:g} volume)" for a, n in late.items())
                 if late else ""), flush=True)
    if not report:
        return False
    try:
        _write_report(dep, report)
    except OSError as e:   # a full disk: said; a clean run then exits 1
        print(f"quantlab deploy: cannot write --report {report}: {e}", file=sys.stderr)
        return True
    print(f"report: {report}", flush=True)
    return False


def main(argv=None) -> int:
    """Run the ``quantlab`` command line; returns the exit code.

    0: every run succeeded; 1: a run failed (the others still ran); 2: bad input,
    refused before anything ran.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int

    Examples
    --------
    >>> import contextlib, io
    >>> from quantlab import cli
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     code = cli.main(["run-suite", "--timeout", "-1", "--out", "unused"])
    >>> code, err.getvalue().split(":")[1].strip()
    (2, 'error')
    """
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["engine-bench"]:
        from quantlab.engine import bench  # lazy: loads the tick kernels, only this command

        a = p.parse_args(argv)
        try:   # the bench's own bound, checked here to name the option (exit 2, no traceback)
            integer("--ticks", a.ticks, 1, BENCH_TICKS_MAX)
        except ValueError as e:
            p.error(str(e))
        print(bench(a.ticks))
        return 0
    if argv[:1] == ["lab"]:  # everything after `lab` belongs to jupyter lab
        return _lab(argv[1:])
    if argv[:1] == ["deploy"]:
        return _deploy(p.parse_args(argv))
    return _batch(p, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
