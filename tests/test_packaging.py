"""Packaging: environment.yml == pyproject, stubs for compiled modules, a light import."""
import importlib
import re
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    py = {_name(r) for r in project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        if extra != "bench":   # make bench installs it (numbagg: see pyproject)
            py |= {_name(r) for r in reqs if not r.startswith("quantlab")}
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = set()
    for d in env:
        if isinstance(d, dict):
            conda |= {_name(r) for r in d["pip"]}
        elif _name(d) not in ("python", "pip"):
            conda.add(_name(d))
    assert conda == py, f"only in environment.yml: {conda - py}; only in pyproject: {py - conda}"


def test_every_kernel_has_a_stub():
    for pyx in (REPO / "cython_kernels").glob("*.pyx"):
        stub = REPO / "quantlab" / "_kernels" / f"{pyx.stem}.pyi"
        assert stub.exists(), f"missing stub {stub}"
        mod = importlib.import_module(f"quantlab._kernels.{pyx.stem}")
        public = {n for n in dir(mod) if not n.startswith("_") and n not in ("np",)}
        text = stub.read_text()
        stubbed = (set(re.findall(r"^(?:def |class )?(\w+)[(:]", text, re.M)) - {"import"}
                   | set(re.findall(r"\b(\w+) as \1\b", text)))   # re-exported names
        assert public <= stubbed, f"{stub.name} lacks {public - stubbed}"


HEAVY = ("numpy", "pandas", "xarray", "bokeh", "ipywidgets", "dask", "optuna", "papermill")


def test_import_is_light_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import quantlab; "
            "d = time.perf_counter() - t; "
            f"print(d, [m for m in {HEAVY!r} if m in sys.modules])")
    times = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split(" ", 1)
        times.append(float(out[0]))
        assert out[1].strip() == "[]", f"import quantlab pulled in {out[1]}"
    assert statistics.median(times[1:]) < 0.5


def test_sdist_and_its_wheel_carry_kernels_stubs_and_data(tmp_path):
    """`python -m build` makes the sdist, then the wheel from the sdist: the sdist carries
    the Cython sources, headers and bundled data; the wheel the compiled kernels, stubs,
    data and config, so `pip install quantlab-*.tar.gz` works too."""
    import tarfile
    import zipfile

    subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, text=True)
    (sdist,) = tmp_path.glob("quantlab-*.tar.gz")
    in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    sources = [p for pat in ("*.pyx", "*.pxi", "*.h", "simd/*.pyx")
               for p in (REPO / "cython_kernels").glob(pat)] + list(REPO.glob("data/*.gz"))
    missing = {str(p.relative_to(REPO)) for p in sources} - in_sdist
    assert len(sources) > 10 and not missing, f"missing from the sdist: {missing}"
    (wheel,) = tmp_path.glob("quantlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pyx in (REPO / "cython_kernels").glob("*.pyx"):
        assert any(n.startswith(f"quantlab/_kernels/{pyx.stem}.") and n.endswith(".so")
                   for n in names), f"{pyx.stem} kernel missing from the wheel"
        assert f"quantlab/_kernels/{pyx.stem}.pyi" in names
    assert "quantlab/_data/equities.csv.gz" in names
    assert "quantlab/config/engine.yaml" in names   # the engine default config
    assert not any(n.startswith(("tests/", "notebooks/", "data/")) for n in names)


def test_forward_fills_and_reductions_run_without_numbagg():
    """numbagg is not a dependency (its numba kernels compile in every new process): the
    paths that forward-fill through xarray (strategies, tear sheets, risk) run on
    bottleneck, a runtime dependency, with the values numbagg gives."""
    code = r"""
import sys
sys.modules["numbagg"] = None          # as if not installed: xarray falls back
import numpy as np, quantlab as ql, xarray as xr
ds = ql.data.load().isel(time=slice(0, 400))
ds["close"][50:60, 1] = np.nan          # a halt: forward-filled
out = []
for name in ("cross_sectional_momentum", "attention", "volatility_regime"):
    out.append(np.nan_to_num(ql.strategies.get(name).signal(ds).values, nan=9.0).sum())
res = ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds), fees=0.001)
res.tearsheet("buy_and_hold")
out.append(float(ds["close"].ffill("time").sum()))
import json; print(json.dumps([float(v) for v in out]))
"""
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    import json
    values = json.loads(got.stdout.strip().splitlines()[-1])
    import numpy as np
    import quantlab as ql
    ds = ql.data.load().isel(time=slice(0, 400))
    ds["close"][50:60, 1] = np.nan
    want = [np.nan_to_num(ql.strategies.get(n).signal(ds).values, nan=9.0).sum()
            for n in ("cross_sectional_momentum", "attention", "volatility_regime")]
    want.append(float(ds["close"].ffill("time").sum()))
    np.testing.assert_allclose(values, want, rtol=1e-12)
