"""Session 50, helper "tidy": counts bounded by name, the engine config read as typed,
wide CSV loading per file, the kernel stubs, and total return through a x1e15 bar."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab import _validate


# ---- 1. count-like arguments are bounded ---------------------------------------------

def test_reality_check_refuses_huge_reps():
    pytest.importorskip("arch")
    x = np.random.default_rng(0).normal(0, 0.01, (200, 3))
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"^reps must be an integer in \[1, 1000000\]"):
        ql.integrity.reality_check(x, reps=10 ** 12)   # was a 65 TiB allocation in arch
    with pytest.raises(ValueError, match=r"^reps must be an integer"):
        ql.integrity.reality_check(x, reps=1e30)
    assert time.perf_counter() - t < 30


def test_risk_parity_max_iter_bounded():
    cov = pd.DataFrame(np.cov(np.random.default_rng(0).normal(size=(50, 4)).T))
    # tol=0 never converges: max_iter=10**12 looped for ever
    with pytest.raises(ValueError, match=r"^max_iter must be an integer in \[0, 1000000\]"):
        ql.risk.risk_parity_weights(cov, tol=0, max_iter=10 ** 12)
    assert ql.risk.risk_parity_weights(cov, max_iter=50).sum() == pytest.approx(1.0)


# ---- 4. the kernel stubs define each name once -----------------------------------------

def test_kernel_stubs_define_each_name_once():
    # returns_acc.pxi (FIELDS, F_*, A_*, acc_groups) is included by backtest.pyx and
    # metrics.pyx: both export its names; metrics.pyi stubs them, backtest.pyi re-exports
    import collections
    import importlib
    import re
    from pathlib import Path

    where = collections.defaultdict(list)
    stubs = Path(ql.__file__).parent / "_kernels"
    for stub in sorted(stubs.glob("*.pyi")):
        text = stub.read_text()
        for name in set(re.findall(r"^(?:def |class )?(\w+)[(:]", text, re.M)) - {"import"}:
            where[name].append(stub.name)
    twice = {n: w for n, w in where.items() if len(w) > 1}
    assert not twice, f"stubbed in more than one kernel stub: {twice}"
    bt = importlib.import_module("quantlab._kernels.backtest")
    text = (stubs / "backtest.pyi").read_text()
    for name in ("A_ALL", "A_WEALTH", "F_N", "FIELDS", "acc_groups"):
        assert hasattr(bt, name) and re.search(rf"\b{name} as {name}\b", text), name


# ---- 2. the engine config is read as typed (YAML 1.2 plain scalars) --------------------

def _engine_config(tmp_path, text):
    from quantlab.engine import load_config

    path = tmp_path / "engine.yaml"
    path.write_text(text)
    return load_config(path, environ={})


def test_engine_config_reads_values_as_typed(tmp_path):
    cfg = _engine_config(tmp_path, "risk:\n  max_position: 010\n  max_positions: 1_000\n"
                                   "  max_clock_skew_s: .inf\nengine:\n  tick_size: 1e-3\n"
                                   "log:\n  file: no\n")
    assert cfg["risk"]["max_position"] == 10          # YAML 1.1: octal 8
    assert cfg["risk"]["max_positions"] == 1000
    assert cfg["risk"]["max_clock_skew_s"] == float("inf")
    assert cfg["engine"]["tick_size"] == 0.001
    assert cfg["log"]["file"].endswith("no")           # YAML 1.1: False, refused as not str


@pytest.mark.parametrize("text, message", [
    ("risk:\n  max_clock_skew_s: 9:30\n", r"risk\.max_clock_skew_s must be float, got '9:30'"),
    ("signal:\n  order_size: 0x10\n", r"signal\.order_size must be int, got '0x10'"),
    ("engine:\n  timestamp_unit: yes\n", r"engine\.timestamp_unit must be one of .*got 'yes'"),
    ("log:\n  level: off\n", r"log\.level must be one of .*got 'OFF'"),
    ("on:\n  x: 1\n", r"unknown config section 'on'"),
])
def test_engine_config_refuses_yaml11_readings(tmp_path, text, message):
    # YAML 1.1 read 9:30 as 570, 0x10 as 16, yes/off as booleans, the key on as True
    with pytest.raises(ValueError, match=message):
        _engine_config(tmp_path, text)


def test_one_yaml_reader():
    from quantlab import _yaml, suite
    from quantlab.engine import config

    assert suite.plain_loader is _yaml.plain_loader and suite.plain_scalar is _yaml.plain_scalar
    assert config.load_config(environ={}) == _engine_config_defaults()


def _engine_config_defaults():
    # the shipped defaults read as typed are the values safe_load read (nothing there is
    # YAML 1.1-ambiguous)
    import yaml

    from quantlab.engine import config

    return config.load_config(yaml.safe_load(config.DEFAULT_CONFIG.read_text()), environ={})


# ---- 3. a wide CSV is parsed per file, with the per-column reader's floats and messages --

def _wide(tmp_path, cells, name="wide.csv"):
    days = pd.date_range("2024-01-02", periods=len(cells)).strftime("%Y-%m-%d")
    rows = [f"{d}," + ",".join(r) for d, r in zip(days, cells)]
    path = tmp_path / name
    path.write_text("Date," + ",".join(f"A{j}" for j in range(len(cells[0]))) + "\n"
                    + "\n".join(rows) + "\n")
    return path


TRICKY = ["0.1000000000000000055511151231257827", "123456789012345678901234567890",
          # (normal: a subnormal price is refused) the strings that hung Java and PHP,
          # rounding up to DBL_MIN, and DBL_MIN itself
          "2.2250738585072012e-308", "2.2250738585072014e-308", "1.7976931348623157e308", " 1.5", "7.25 ",
          "+2", "1E-3", ".5", "5.", "\"2.5\"", "NULL", "N/A", "None", "-", "", "nan"]


def test_wide_csv_parsed_per_file_same_floats(tmp_path, monkeypatch):
    from quantlab import data

    rng = np.random.default_rng(3)
    cells = [[repr(float(x)) for x in row] for row in np.exp(rng.normal(0, 30, (40, 60)))]
    for k, tok in enumerate(TRICKY):
        cells[k % 40][k] = tok
    path = _wide(tmp_path, cells)
    want = np.array([[float("nan") if c.strip().lower() in data.MISSING_TOKENS else
                      float(c.strip().strip('"')) for c in row] for row in cells])
    calls = []
    per_column = data._numeric_bars
    monkeypatch.setattr(data, "_numeric_bars", lambda *a: calls.append(a[2]) or per_column(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a short daily calendar: periods guessed
        got = ql.data.load_csv(path)["close"].values
    assert not calls, f"{len(calls)} per-column reads of a clean wide file"
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok].view(np.int64), want[ok].view(np.int64))   # same bits


@pytest.mark.parametrize("bad, message", [
    ({(2, 1): "1.5.3", (1, 2): "abc"},
     r"data row 3: column 'close' of asset 'A1': unparsable number '1\.5\.3'"),
    ({(1, 2): "-4", (3, 3): "x"},
     r"data row 2: 'close' of asset 'A2' at 2024-01-03: non-positive price"),
    ({(0, 0): "1,5"}, r"data row 1 has 6 fields, the header has 5"),
])
def test_wide_csv_errors_name_row_and_column(tmp_path, bad, message):
    cells = [["1.5", "2", "3", "4"] for _ in range(5)]
    for (i, j), tok in bad.items():
        cells[i][j] = tok
    with pytest.raises(ql.errors.DataError, match=message):
        ql.data.load_csv(_wide(tmp_path, cells))


def test_wide_csv_cells_the_parser_refuses_read_per_column(tmp_path):
    # a missing token written with spaces: the C parser refuses it, the per-column reader
    # (strip, then the token) reads it as a missing bar, as before
    cells = [["1.5", " null ", "3"], ["1.5", "2", " N/A "], ["1.75", "2", "3"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = ql.data.load_csv(_wide(tmp_path, cells))["close"].values
    assert np.isnan(got[0, 1]) and np.isnan(got[1, 2]) and np.isfinite(got).sum() == 7


# ---- 5. total return through a x1e15 bar ----------------------------------------------

def _spike():
    import xarray as xr

    p = np.array([100.0, 101, 102, 102e15, 103, 104])
    t = pd.date_range("2020-01-01", periods=p.size)
    return p, xr.Dataset({"close": (("time", "asset"), p[:, None])},
                         coords={"time": t, "asset": ["X"]})


def test_total_return_precision_as_documented():
    # the product of the returns as given is exact to ~n ulps; the error is the returns'
    # own: 1 + (g - 1) for g = 1.0098e-15 (the fall back) is 1.05% off g
    p, _ = _spike()
    g = p[1:] / p[:-1]
    r = g - 1.0
    got = float(ql.metrics.total_return(r))
    assert got == pytest.approx(np.prod(1.0 + r) - 1.0, rel=1e-14)
    assert abs((1.0 + r[3]) / g[3] - 1.0) <= 1.1e-16 / g[3]
    assert abs((1.0 + got) / (p[-1] / p[0]) - 1.0) < 0.012


@pytest.mark.xfail(strict=True, reason="backtest.pyx compounds 1 + (equity ratio - 1), not "
                   "the ratio: the metrics' wealth is 1% off the equity (backtest.pyx is not "
                   "this helper's file; reported)")
def test_buy_and_hold_total_return_matches_its_equity():
    p, ds = _spike()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ql.backtest(ds, xr_ones(ds))
    got = float(np.ravel(res.metrics()["total_return"].values)[0])
    assert got == pytest.approx(p[-1] / p[0] - 1.0, rel=1e-9)


def xr_ones(ds):
    import xarray as xr

    return xr.ones_like(ds["close"])


def test_long_csv_parsed_per_file(tmp_path, monkeypatch):
    from quantlab import data

    lines = ["date,symbol,close,volume"]
    for d in pd.date_range("2024-01-02", periods=30).strftime("%Y-%m-%d"):
        lines += [f"{d},S{k},{100 + k + 0.1:.17g},{k}" for k in (3, 1, 2, 0)]
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    calls = []
    per_asset = data._numeric_bars
    monkeypatch.setattr(data, "_numeric_bars", lambda *a: calls.append(a[2]) or per_asset(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ql.data.load_csv(path)
    assert not calls, f"{len(calls)} per-asset reads of a clean long file"
    assert ds["asset"].values.tolist() == ["S0", "S1", "S2", "S3"]
    assert ds["close"].values[0].tolist() == [float(f"{100 + k + 0.1:.17g}") for k in range(4)]
    # a bad cell: the per-asset reader's message (data row, column, asset)
    path.write_text("\n".join(lines[:6] + ["2024-01-03,S1,1O1,5"] + lines[7:]) + "\n")
    with pytest.raises(ql.errors.DataError,
                       match=r"data row 6: column 'close' of asset 'S1': unparsable number"):
        ql.data.load_csv(path)
