"""Fault injection for the sweep store (ql.sweep(store=...)): damaged, copied, foreign or
half-written files and a real SIGKILL. Each case damages a store made by ``_make`` and
checks that the rerun is bit-identical to a clean sweep, recomputing only what it must
and saying so. To add a fault: write a function ``damage(store)`` and add it to CHUNK_FAULTS
(the chunk must be recomputed, with a warning) or QUIET_FAULTS (nothing recomputed)."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import quantlab as ql

STRAT = "volatility_regime"
GRID = {"window": [10, 21], "threshold": [0.6, 0.8, 0.95]}
KW = dict(chunks=2, progress=False, metrics=("sharpe_ratio", "total_return"), fees=0.001)


@pytest.fixture(scope="module")
def clean(equities):
    return ql.sweep(STRAT, equities, GRID, **KW)


def _make(equities, store):
    res = ql.sweep(STRAT, equities, GRID, store=store, **KW)
    return res, {p.name: p.stat().st_mtime_ns for p in store.glob("chunk_*.npz")}


def _rerun(equities, store):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ql.sweep(STRAT, equities, GRID, store=store, **KW)
    return res, [str(w.message) for w in caught if "sweep store" in str(w.message)]


class _Evil:   # unpickling this would leave a trace: the store must never unpickle
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["QL_TEST_EVIL"]),))


def _truncate(store):
    p = store / "chunk_1.npz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(store):
    (store / "chunk_1.npz").write_bytes(b"")


def _garbage(store):
    (store / "chunk_1.npz").write_bytes(os.urandom(600))


def _flip_a_byte(store):      # a bit flip inside the data: zip CRC and sha256 catch it
    p = store / "chunk_1.npz"
    b = bytearray(p.read_bytes())
    b[len(b) // 3] ^= 0xFF
    p.write_bytes(bytes(b))


def _pickled(store):
    with open(store / "chunk_1.npz", "wb") as f:
        np.savez(f, sharpe_ratio=np.array([_Evil()], dtype=object))


def _copied_over(store):      # a valid file of the same store, at the wrong place
    (store / "chunk_1.npz").write_bytes((store / "chunk_0.npz").read_bytes())


def _copied_over_no_manifest(store):   # ... and no checksum to catch it: identity does
    _copied_over(store)
    (store / "manifest.jsonl").unlink()


def _missing_metric(store):
    p = store / "chunk_1.npz"
    with np.load(p) as z:
        keep = {k: z[k] for k in z.files if k != "total_return"}
    np.savez(p, **keep)
    (store / "manifest.jsonl").unlink()


CHUNK_FAULTS = [_truncate, _empty, _garbage, _flip_a_byte, _pickled, _copied_over,
                _copied_over_no_manifest, _missing_metric]


@pytest.mark.parametrize("damage", CHUNK_FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_sweep_store_corrupt_chunk_is_recomputed_with_a_warning_naming_it(
        damage, equities, clean, tmp_path, monkeypatch):
    monkeypatch.setenv("QL_TEST_EVIL", str(tmp_path / "evil_ran"))
    store = tmp_path / "s"
    first, stamps = _make(equities, store)
    xr.testing.assert_identical(first, clean)
    damage(store)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)                 # bit-identical
    assert len(said) == 1 and str(store) in said[0] and "chunk 1 " in said[0]
    assert "chunk_1.npz" in said[0] and "recomputing" in said[0]
    assert not (tmp_path / "evil_ran").exists()               # never unpickled
    assert (store / "chunk_0.npz").stat().st_mtime_ns == stamps["chunk_0.npz"]
    third, said = _rerun(equities, store)                     # repaired: quiet now
    xr.testing.assert_identical(third, clean)
    assert said == []


def _foreign_chunk(store, equities, tmp_path):
    other = tmp_path / "other"
    ql.sweep(STRAT, equities, GRID, store=other, **{**KW, "fees": 0.002})
    (store / "chunk_1.npz").write_bytes((other / "chunk_1.npz").read_bytes())
    (store / "manifest.jsonl").write_bytes((other / "manifest.jsonl").read_bytes())


def test_sweep_store_chunk_and_manifest_from_another_sweep_are_detected(
        equities, clean, tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    _foreign_chunk(store, equities, tmp_path)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert len(said) == 1 and "another sweep" in said[0] and "chunk 1 " in said[0]


def _tmp_left_by_a_kill_during_a_chunk_write(store):
    (store / "chunk_2.npz").unlink()
    (store / "chunk_2.npz.tmp").write_bytes((store / "chunk_0.npz").read_bytes()[:100])


def _kill_before_the_manifest_line(store):     # chunk in place, its line never written
    lines = (store / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    (store / "manifest.jsonl").write_bytes(b"".join(lines[:-1]))


def _kill_during_the_manifest_append(store):
    p = store / "manifest.jsonl"
    p.write_bytes(p.read_bytes()[:-20])


def _manifest_garbage(store):
    (store / "manifest.jsonl").write_bytes(b"\x00\xff garbage\n{\"chunk\": 1}\n[]\n")


def _manifest_missing(store):
    (store / "manifest.jsonl").unlink()


def _sweep_json_lost_and_its_tmp_torn(store):   # chunks still identify themselves
    meta = store / "sweep.json"
    (store / "sweep.json.tmp").write_bytes(meta.read_bytes()[:50])
    meta.unlink()


QUIET_FAULTS = [_tmp_left_by_a_kill_during_a_chunk_write, _kill_before_the_manifest_line,
                _kill_during_the_manifest_append, _manifest_garbage, _manifest_missing,
                _sweep_json_lost_and_its_tmp_torn]


@pytest.mark.parametrize("damage", QUIET_FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_sweep_store_kill_during_a_write_resumes_bit_identical(damage, equities, clean,
                                                                tmp_path):
    store = tmp_path / "s"
    _, stamps = _make(equities, store)
    damage(store)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert said == []
    for name, ns in stamps.items():            # every intact chunk loaded, not recomputed
        if (store / name).exists() and name != "chunk_2.npz":
            assert (store / name).stat().st_mtime_ns == ns
    assert not list(store.glob("*.tmp"))
    # the manifest covers every chunk again: a later copy over a chunk is caught by sha
    shas = []
    for line in (store / "manifest.jsonl").read_bytes().splitlines():
        try:
            shas.append(json.loads(line))
        except ValueError:     # the torn line, left as it was
            pass
    assert {r["chunk"] for r in shas if isinstance(r, dict) and r.get("sha256")} == {0, 1, 2}


@pytest.mark.parametrize("text", [b"{not json", b"", b"\xff\xfe\x00", b"[]", b"{}",
                                  b'{"signature": 3}', b'{"chunks": 3}'])
def test_sweep_store_corrupt_sweep_json_names_the_file_and_what_to_do(text, equities,
                                                                      tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    (store / "sweep.json").write_bytes(text)
    with pytest.raises(ValueError) as e:
        ql.sweep(STRAT, equities, GRID, store=store, **KW)
    msg = str(e.value)
    assert str(store) in msg and "sweep.json" in msg
    assert "delete the store directory" in msg and "another store=" in msg


@pytest.mark.parametrize("change, named", [
    (dict(grid={"window": [10, 21], "threshold": [0.6, 0.8]}), "grid"),
    (dict(strategy="liquidity_timing"), "strategy"),
    (dict(fees=0.002), "backtest_kw"),
    (dict(metrics=("sharpe_ratio",)), "metrics"),
    (dict(chunks=3), "chunk_size"),
    (dict(data="one price changed"), "data"),
])
def test_sweep_store_of_another_sweep_is_refused_naming_what_differs(change, named,
                                                                     equities, tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir())
    change = dict(change)
    data = equities
    if change.pop("data", None):
        data = equities.copy(deep=True)
        v = float(data["open"][-5, 1])
        assert np.isfinite(v)
        data["open"][-5, 1] = np.nextafter(v, np.inf)   # one ulp, and not the close
    args = {**KW, **{k: v for k, v in change.items() if k not in ("grid", "strategy")}}
    with pytest.raises(ValueError, match="holds a different sweep") as e:
        ql.sweep(change.get("strategy", STRAT), data, change.get("grid", GRID), store=store,
                 **args)
    assert f"({named}: stored" in str(e.value) and "delete the store directory" in str(e.value)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir()) == before


def test_sweep_store_path_that_is_a_file_or_a_foreign_folder_is_refused(equities, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        ql.sweep(STRAT, equities, GRID, store=f, **KW)
    with pytest.raises(ValueError, match="is not a sweep store"):
        ql.sweep(STRAT, equities, GRID, store=tmp_path, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(TypeError, match="store must be a directory path"):
        ql.sweep(STRAT, equities, GRID, store=3, **KW)


def test_sweep_store_write_error_names_the_store_and_chunk(equities, tmp_path, monkeypatch):
    import quantlab.sweeps as S

    write, full_from = S._write_atomic, ["chunk_"]

    def full(path, blob):
        if any(path.name.startswith(f) for f in full_from):
            raise OSError(28, "No space left on device")
        write(path, blob)

    monkeypatch.setattr(S, "_write_atomic", full)
    with pytest.raises(OSError, match=r"chunk 0 \(chunk_0.npz.*No space left") as e:
        ql.sweep(STRAT, equities, GRID, store=tmp_path / "s", **{**KW, "workers": 1})
    assert str(tmp_path / "s") in str(e.value)
    full_from.append("sweep.json")
    with pytest.raises(OSError, match=r"/t': cannot write sweep.json.*No space left"):
        ql.sweep(STRAT, equities, GRID, store=tmp_path / "t", **KW)


_CHILD = """
import sys, time, quantlab as ql, quantlab.sweeps as S
run = S._run_chunk
def slow(*a, **k):   # chunks slow enough that the kill lands mid-run, whatever the load
    out = run(*a, **k)
    time.sleep(0.3)
    return out
S._run_chunk = slow
ql.sweep({strat!r}, ql.data.load(), {grid!r}, store=sys.argv[1], workers=1,
         **{kw!r})
"""


def test_sweep_store_sigkill_mid_run_resumes_bit_identical(equities, tmp_path):
    grid = {"window": [10, 21, 42], "threshold": [0.6, 0.8, 0.95]}
    kw = {**KW, "chunks": 1}
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(Path(ql.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(strat=STRAT, grid=grid,
                                                                   kw=kw), str(store)],
                             env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(list(store.glob("chunk_*.npz"))) >= 3:     # renamed into place: complete
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    n_stored = len(list(store.glob("chunk_*.npz")))
    assert 3 <= n_stored < 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # nothing to recompute
        resumed = ql.sweep(STRAT, equities, grid, store=store, **kw)
    xr.testing.assert_identical(resumed, ql.sweep(STRAT, equities, grid, **kw))


def test_sweep_store_never_unpickles_even_with_a_valid_identity(equities, clean, tmp_path,
                                                               monkeypatch):
    """A chunk with the right identity arrays but an object array: refused, not loaded."""
    monkeypatch.setenv("QL_TEST_EVIL", str(tmp_path / "evil_ran"))
    store = tmp_path / "s"
    _make(equities, store)
    p = store / "chunk_1.npz"
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    parts["sharpe_ratio"] = np.array([_Evil()] * 2, dtype=object)
    np.savez(p, **parts)
    (store / "manifest.jsonl").unlink()
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert len(said) == 1 and "pickle" in said[0].lower()
    assert not (tmp_path / "evil_ran").exists()
    assert pickle.dumps(_Evil())     # the trap is armed: it would have fired on unpickling
