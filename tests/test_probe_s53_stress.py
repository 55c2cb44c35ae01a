"""Session 53 outside probe ("stress"): interrupts, concurrency, the environment and
resource faults around a correct call. Each test is a fault the probe found."""
import os
import subprocess
import sys

import numpy as np
import pytest

import quantlab as ql
from quantlab.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _csv_folder(folder, names, n=60):
    """One Yahoo-style CSV per name (``names``: file names as bytes, as a file system
    holds them) in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        lines = ["Date,Open,High,Low,Close,Volume"] + [
            f"{np.datetime64('2024-01-01') + i},{x:.4f},{x * 1.01:.4f},{x * 0.99:.4f},"
            f"{x:.4f},{1000 + k}" for i, x in enumerate(c)]
        with open(os.path.join(os.fsencode(folder), name), "w") as f:
            f.write("\n".join(lines) + "\n")


# ---- a file name the locale cannot decode -------------------------------------------
def test_a_file_name_that_is_not_utf8_is_a_data_error_naming_it(tmp_path):
    # a Latin-1 name (an old Windows zip): Python keeps its bytes as surrogates, and
    # load_csv/ingest raised pyarrow's bare "UnicodeEncodeError: surrogates not allowed"
    _csv_folder(tmp_path / "src", [b"M\xfcller.csv", b"ABC.csv"])
    for call in (lambda: ql.data.load_csv(tmp_path / "src"),
                 lambda: ql.data.ingest(tmp_path / "src", tmp_path / "store")):
        with pytest.raises(DataError, match=r"file name b'M\\xfcller.csv': not UTF-8 text"):
            call()


def test_utf8_file_names_in_an_ascii_locale_are_their_assets(tmp_path):
    # LC_ALL=C without UTF-8 mode: 'Ünï.csv' is listed as surrogates; load_csv and
    # ingest raised UnicodeEncodeError instead of reading the asset 'Ünï'
    _csv_folder(tmp_path / "src", ["Ünï.csv".encode(), "日本.csv".encode(), b"ABC.csv"])
    code = ("import sys, quantlab as ql\n"
            "src, st = sys.argv[1:]\n"
            "a = [str(x) for x in ql.data.load_csv(src).asset.values]\n"
            "ql.data.ingest(src, st)\n"
            "b = [str(x) for x in ql.data.open(st).asset.values]\n"
            "print(ascii(a), ascii(b))\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"),
           "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src"),
                          str(tmp_path / "store")], capture_output=True, text=True,
                         env=env, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    want = ascii(sorted(["ABC", "Ünï", "日本"]))
    assert out.stdout.strip() == f"{want} {want}"


# ---- an interrupted ingest -----------------------------------------------------------
def test_a_store_whose_ingest_was_interrupted_opens_with_a_warning_saying_so(tmp_path,
                                                                             monkeypatch):
    # Ctrl-C (or a kill) after the first chunk rows: open showed them, 20 of the 60
    # bars, as the whole store without a word; the rerun finishes it
    import warnings

    from quantlab import store as qstore
    _csv_folder(tmp_path / "src", [b"A.csv", b"B.csv"])
    real, calls = qstore._put, [0]

    def put(*a):
        calls[0] += 1
        if calls[0] == 3 * 5 + 1:          # 5 variables a row: the 4th row's first
            raise KeyboardInterrupt
        real(*a)
    monkeypatch.setattr(qstore, "_put", put)
    with pytest.raises(KeyboardInterrupt):
        ql.data.ingest(tmp_path / "src", tmp_path / "st", chunk_time=10, progress=False)
    monkeypatch.setattr(qstore, "_put", real)
    with pytest.warns(qstore.IncompleteStoreWarning,
                      match="its last ingest has not finished .* first 30 rows of 60; rerun"):
        part = ql.data.open(tmp_path / "st")
    assert part.sizes["time"] == 30
    ql.data.ingest(tmp_path / "src", tmp_path / "st", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", qstore.IncompleteStoreWarning)
        whole = ql.data.open(tmp_path / "st")
    np.testing.assert_array_equal(whole["close"].values,
                                  ql.data.load_csv(tmp_path / "src")["close"].values)


# ---- fork: a multiprocessing worker after the parent used the pools --------------------
def _streamed_in_child(args):
    ds, sig, group = args
    return ql.backtest(ds.chunk(time=10), sig, group=group, fees=0.001).equity.values


@pytest.mark.parametrize("group", [False, True])
def test_a_forked_child_runs_a_streamed_backtest_after_its_parent_did(group):
    # dask's threaded scheduler keeps a default pool whose threads a forked child does
    # not have: the child's streamed ql.backtest queued its chains on them and hung
    # for ever (a multiprocessing worker backtesting a store)
    import multiprocessing as mp

    from test_outofcore import _panel
    ds, sig = _panel(3, 60, 4)
    want = ql.backtest(ds.chunk(time=10), sig, group=group, fees=0.001).equity.values
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_streamed_in_child, ((ds, sig, group),)).get(timeout=60)
    np.testing.assert_array_equal(got, want)


def _stores_left_in_child(ds, sig, tmp):
    import gc
    import time
    for _ in range(2):
        ql.backtest(ds.chunk(time=10), sig).equity.sum().compute()   # kept nothing
    gc.collect()
    for _ in range(100):                     # the remover's thread deletes them
        if not os.listdir(tmp):
            break
        time.sleep(0.1)
    return sorted(os.listdir(tmp))


def test_a_forked_child_removes_the_results_stores_it_drops(tmp_path, monkeypatch):
    # the parent's remover thread does not exist in a forked child: the child's dropped
    # results stores were renamed .ql-removing-* and left in TMPDIR for good
    import gc
    import multiprocessing as mp

    from quantlab.backtesting import result
    from test_outofcore import _panel
    monkeypatch.setattr(result.tempfile, "tempdir", str(tmp_path))
    ds, sig = _panel(3, 60, 4)
    ql.backtest(ds.chunk(time=10), sig).equity.sum().compute()   # the parent's remover
    gc.collect()
    with mp.get_context("fork").Pool(1) as pool:
        left = pool.apply_async(_stores_left_in_child, (ds, sig, str(tmp_path))).get(60)
    assert left == []


_COLLECTED_INSIDE_SUBMIT = """
import gc, os, sys, tempfile
import concurrent.futures.thread as cft
import quantlab as ql
from quantlab.backtesting import result
from test_outofcore import _panel
result.tempfile.tempdir = tempfile.mkdtemp()
ds, sig = _panel(3, 40, 4)
res = ql.backtest(ds.chunk(time=10), sig)
with cft._global_shutdown_lock:    # as inside any executor's submit (dask's, a prefetch)
    del res
    gc.collect()                   # the store's finalizer runs here
result._REMOVER.submit(int).result()
print(os.listdir(result.tempfile.tempdir))
"""


def test_a_results_store_collected_inside_an_executor_s_submit_does_not_deadlock():
    # a streamed run's store dropped in a loop hung test_outofcore_stream: the garbage
    # collector ran its finalizer inside the prefetch executor's submit, which holds
    # concurrent.futures' global lock, and the finalizer's own submit to the remover
    # waited for that lock for ever
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    try:
        out = subprocess.run([sys.executable, "-c", _COLLECTED_INSIDE_SUBMIT],
                             capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail("the store's finalizer deadlocked inside an executor's submit")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# ---- a working directory deleted under the session --------------------------------------
def test_a_relative_path_in_a_deleted_working_directory_is_named(tmp_path, monkeypatch,
                                                                  equities):
    # ingest said only "[Errno 2] No such file or directory" (not which path, nor why);
    # the others named the name, not that the working directory was gone
    _csv_folder(tmp_path / "src", [b"A.csv"])
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=equities.isel(time=slice(0, 60)))
    for call, what in ((lambda: ql.data.ingest(tmp_path / "src", "st"), "ingest: store 'st'"),
                       (lambda: ql.data.open("st"), "open: store 'st'"),
                       (lambda: ql.data.load_csv("A.csv"), "load_csv: path_or_dir 'A.csv'"),
                       (lambda: dep.checkpoint("ck"), "checkpoint path 'ck'")):
        with pytest.raises(FileNotFoundError, match=f"{what} is relative to the working "
                                                    "directory, which was deleted"):
            call()
    ql.data.ingest(tmp_path / "src", tmp_path / "st", progress=False)   # absolute: fine
    assert ql.data.open(tmp_path / "st").sizes["asset"] == 1


# ---- a deployment's checkpoint ---------------------------------------------------------
def test_an_old_segment_that_will_not_go_does_not_fail_a_written_checkpoint(tmp_path,
                                                                           monkeypatch,
                                                                           equities):
    # a whole rewrite (every COMPACT segments) removes the older generation's files
    # after its manifest is written: an unlink error there (EPERM) was raised as if the
    # checkpoint had failed; the CLI stopped with exit 1 after a good checkpoint
    import pathlib
    ds = equities.isel(time=slice(0, 90))
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ds.isel(time=slice(0, 80)))
    dep.COMPACT = 2
    real = pathlib.Path.unlink

    def stuck(self, missing_ok=False):
        if self.name.startswith("seg-1-"):
            raise PermissionError(1, "Operation not permitted", str(self))
        return real(self, missing_ok=missing_ok)
    for i in range(80, 84):
        dep.on_bar(ds.isel(time=i))
        with monkeypatch.context() as m:
            if i == 82:                     # the 3rd checkpoint starts generation 2
                m.setattr(pathlib.Path, "unlink", stuck)
            dep.checkpoint(tmp_path)
    assert list(tmp_path.glob("seg-1-*"))           # stuck, and the checkpoint went on
    back = ql.Deployment.restore(tmp_path)
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)
    back.COMPACT = 2
    for i in range(84, 90):
        back.on_bar(ds.isel(time=i))
        back.checkpoint(tmp_path)
    assert not list(tmp_path.glob("seg-1-*"))     # gone at a later whole write
