"""Session 45 hostile probe: asset names given to a deployment or the tick engine, paths
with "~", and write errors (disk full) while saving checkpoints and ingesting."""
import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab.engine import BarAggregator
from quantlab.errors import DataError


@pytest.fixture(scope="module")
def ibm():
    return ql.data.load().isel(time=slice(0, 120)).sel(asset=["IBM"])


# ---- asset names given as a list: a deployment's universe, the engine's symbols --------

TWINS = [(["IBM", "IBM"], "duplicate asset 'IBM'"),
         (["IBM", "IBM "], "differ only by surrounding spaces"),
         (["Nestl\u00e9", "Nestle\u0301"], "Unicode form"),
         (["IBM", ""], "empty asset name at position 1"),
         (["IBM", None], "missing asset name (None) at position 1"),
         ([], "universe is empty")]


@pytest.mark.parametrize("universe, message", TWINS)
def test_deploy_universe_of_twin_empty_or_missing_names_is_refused(universe, message):
    # ['IBM', 'IBM'] traded IBM twice: twice the equity of ['IBM'], no error
    with pytest.raises(DataError, match="universe") as e:
        ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe=universe)
    assert message in str(e.value)


def test_deploy_universe_given_as_one_string_is_refused_not_split_into_letters():
    with pytest.raises(TypeError, match="universe must be a list of asset names, got str 'IBM'"):
        ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe="IBM")


def test_deploy_universe_of_plain_names_trades_as_before(ibm):
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, universe=("IBM",))
    dep.replay(ibm)
    plain = ql.deploy("volatility_regime", {"window": 10, "lookback": 20})
    plain.replay(ibm)
    assert dep.universe == ["IBM"] and dep.equity_now() == plain.equity_now()


@pytest.mark.parametrize("symbols, message", [
    (["IBM", "MSFT", "IBM"], "symbol_ids 0 and 2 are both asset 'IBM'"),
    ({3: "IBM", 1: "IBM"}, "symbol_ids 1 and 3 are both asset 'IBM'"),
    (["IBM", "IBM "], "differ only by surrounding spaces"),
    (["Nestl\u00e9", "Nestle\u0301"], "Unicode form"),
])
def test_engine_symbols_naming_one_asset_twice_are_refused(symbols, message):
    # ['IBM', 'MSFT', 'IBM'] made symbol 2's ticks part of IBM's bars
    with pytest.raises((ValueError, DataError), match="symbols") as e:
        BarAggregator("1s", symbols)
    assert message in str(e.value)
    with pytest.raises((ValueError, DataError), match="symbols"):
        ql.engine.TickEngine().load_strategy_params(
            {"window": 10, "lookback": 20}, strategy="volatility_regime", symbols=symbols)


def test_engine_symbols_of_distinct_names_keep_their_order():
    agg = BarAggregator("1s", {2: "B", 0: "A", 1: "日本"})
    assert agg.assets == ["B", "A", "日本"]
    bars = agg.add({"symbol_id": [0, 1, 2, 0], "bid_price": [10.0, 20.0, 30.0, 10.0],
                    "ask_price": [10.2, 20.2, 30.2, 10.2], "bid_size": [1] * 4,
                    "ask_size": [1] * 4, "timestamp": [0, 1, 2, 1_500_000]})
    np.testing.assert_allclose(bars[0]["close"].values, [30.1, 10.1, 20.1])


def test_cli_deploy_symbols_with_spaces_after_commas_are_the_names(monkeypatch, capsys):
    from quantlab import cli, engine

    seen = {}

    def load(self, params, strategy=None, *, symbols=None, **kw):
        seen["symbols"] = symbols
        raise ValueError("stop here")

    monkeypatch.setattr(engine.TickEngine, "load_strategy_params", load)
    code = cli.main(["deploy", "volatility_regime", "--feed", "ws://127.0.0.1:1/x",
                     "--symbols", "IBM, MSFT ,AAPL"])
    assert code == 2 and seen["symbols"] == ["IBM", "MSFT", "AAPL"]


# ---- paths: "~" is the home folder, "" and None are not a path -------------------------

def _csv_folder(ds, folder):
    folder.mkdir(parents=True)
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[["open", "high", "low", "close", "volume"]]
        df.index.name = "Date"
        df.columns = ["Open", "High", "Low", "Close", "Volume"]
        df.dropna().to_csv(folder / f"{a}.csv")
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME is tmp_path/home, the working directory tmp_path/cwd (which must stay empty)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "home"


def test_tilde_paths_are_the_home_folder_for_checkpoints_csv_and_stores(ibm, home):
    # "~/ck" was a folder named "~" in the working directory; load_csv("~/...") "no such file"
    _csv_folder(ibm, home / "src")
    ds = ql.data.load_csv("~/src")
    np.testing.assert_array_equal(ds["close"].values, ql.data.load_csv(home / "src")["close"].values)
    ql.data.ingest("~/src", "~/store")
    np.testing.assert_array_equal(ql.data.open("~/store")["close"].values, ds["close"].values)
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ds.isel(time=slice(0, 60)))
    dep.replay(ds.isel(time=slice(60, None)))
    assert dep.checkpoint("~/ck") == home / "ck"
    assert (home / "ck" / "deployment.json").is_file()
    assert ql.Deployment.restore("~/ck").equity_now() == dep.equity_now()
    assert list(Path.cwd().iterdir()) == []


@pytest.mark.parametrize("path", ["", "  ", None, 3])
def test_an_empty_or_missing_path_is_refused_not_the_working_directory(ibm, home, path):
    # "" was the working directory: a checkpoint written among its files, load_csv and
    # ingest reading them; None was a bare "expected str, bytes or os.PathLike object"
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ibm.isel(time=slice(0, 60)))
    for call, named in [(lambda: dep.checkpoint(path), "checkpoint path"),
                        (lambda: ql.Deployment.restore(path), "checkpoint path"),
                        (lambda: ql.data.load_csv(path), "load_csv: path_or_dir"),
                        (lambda: ql.data.ingest(path, home / "store"), "ingest: source"),
                        (lambda: ql.engine.TickEngine().replay(path), "path_or_arrays")
                        ][:None if isinstance(path, str) else -1]:   # replay: its own message
        with pytest.raises(TypeError, match=f"{named} must be a file or folder path"):
            call()
    assert list(Path.cwd().iterdir()) == []


def test_cli_path_options_expand_tilde_and_refuse_empty(ibm, home, capsys):
    from quantlab import cli

    _csv_folder(ibm, home / "src")
    (home / "p.json").write_text('{"window": 10, "lookback": 20}')
    code = cli.main(["deploy", "volatility_regime", "--replay=~/src", "--params=~/p.json",
                     "--start", "2000-05-25", "--checkpoint=~/ck", "--every", "1000"])
    assert code == 0, capsys.readouterr().err
    assert (home / "ck" / "deployment.json").is_file() and list(Path.cwd().iterdir()) == []
    for argv in (["report", "--out", ""], ["run-suite", "--config="],
                 ["deploy", "volatility_regime", "--replay", "equities", "--checkpoint", ""]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
        assert "not a path: ''" in capsys.readouterr().err


# ---- write errors: a full disk while checkpointing or ingesting ------------------------

def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def deployed(ibm, tmp_path):
    """A deployment checkpointed after 70 bars at tmp_path/ck, then 20 bars further."""
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ibm.isel(time=slice(0, 60)))
    dep.replay(ibm.isel(time=slice(60, 70)))
    dep.checkpoint(tmp_path / "ck")
    saved = dep.equity_now()
    dep.replay(ibm.isel(time=slice(70, 90)))
    assert dep.equity_now() != saved
    return dep, tmp_path / "ck", saved


@pytest.mark.parametrize("where", ["segment", "manifest"])
def test_checkpoint_on_a_full_disk_names_it_and_keeps_the_previous_one(deployed, monkeypatch,
                                                                       where):
    # was "[Errno 28] No space left on device", naming nothing, and a seg-*.npz.tmp left
    import quantlab.live as live

    dep, ck, saved = deployed
    if where == "segment":
        def savez(f, **arrays):
            f.write(b"PK\x03\x04 half a zip")
            _enospc()
        monkeypatch.setattr(live.np, "savez", savez)
    else:
        real = live.os.replace
        monkeypatch.setattr(live.os, "replace", lambda a, b: _enospc() if
                            str(b).endswith(".json") else real(a, b))
    with pytest.raises(OSError) as e:
        dep.checkpoint(ck)
    assert e.value.errno == errno.ENOSPC
    assert f"checkpoint to {ck}: No space left on device" in str(e.value)
    assert "before this one is intact" in str(e.value)
    monkeypatch.undo()
    assert not [p.name for p in ck.iterdir() if p.name.endswith(".tmp")]
    assert ql.Deployment.restore(ck).equity_now() == saved
    dep.checkpoint(ck)               # space again: the next checkpoint has every bar
    assert ql.Deployment.restore(ck).equity_now() == dep.equity_now()


def test_checkpoint_interrupted_leaves_no_temporary_file(deployed, monkeypatch):
    import quantlab.live as live

    dep, ck, saved = deployed
    monkeypatch.setattr(live.np, "savez", lambda f, **a: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        dep.checkpoint(ck)
    monkeypatch.undo()
    assert sorted(p.name for p in ck.iterdir()) == ["deployment.json", "seg-1-0.npz"]
    assert ql.Deployment.restore(ck).equity_now() == saved


def test_ingest_on_a_full_disk_names_the_store_and_resumes(ibm, tmp_path, monkeypatch):
    import quantlab.store as store

    src = _csv_folder(ql.data.load().isel(time=slice(0, 300)).sel(asset=["AAPL", "IBM"]),
                      tmp_path / "src")
    calls = []
    real = store._put

    def put(*a):
        calls.append(1)
        if len(calls) > 3:
            _enospc()
        real(*a)

    monkeypatch.setattr(store, "_put", put)
    monkeypatch.setattr(store, "CHUNK_TIME", 64)
    with pytest.raises(OSError) as e:
        ql.data.ingest(src, tmp_path / "st")
    assert e.value.errno == errno.ENOSPC
    assert f"ingest of {src} into {tmp_path / 'st'}: No space left on device" in str(e.value)
    assert "run the same ingest again to resume" in str(e.value)
    monkeypatch.undo()
    ql.data.ingest(src, tmp_path / "st")
    xr_equal = ql.data.open(tmp_path / "st").load()
    np.testing.assert_array_equal(xr_equal["close"].values, ql.data.load_csv(src)["close"].values)


def test_io_error_keeps_type_errno_and_file_name():
    from quantlab.data import io_error

    e = io_error(PermissionError(errno.EACCES, "Permission denied", "/x/seg.tmp"), "saving ck")
    assert type(e) is PermissionError and e.errno == errno.EACCES
    assert str(e) == "[Errno 13] saving ck: Permission denied: '/x/seg.tmp'"
    assert str(io_error(OSError("gone"), "saving ck", "retry")) == "saving ck: gone; retry"


@pytest.mark.parametrize("fault", ["disk full", "ctrl-c"])
def test_cli_deploy_checkpoint_fault_is_one_line_and_the_same_command_resumes(
        ibm, tmp_path, monkeypatch, capsys, fault):
    # a full disk at a checkpoint was a traceback (exit 1), Ctrl-C one too
    import quantlab.live as live
    from quantlab import cli

    _csv_folder(ibm, tmp_path / "src")
    (tmp_path / "p.json").write_text('{"window": 10, "lookback": 20}')
    argv = ["deploy", "volatility_regime", "--replay", str(tmp_path / "src"), "--params",
            str(tmp_path / "p.json"), "--start", "2000-05-25", "--every", "1000"]
    assert cli.main(argv) == 0
    whole = capsys.readouterr().out.strip().splitlines()[-1]
    argv += ["--checkpoint", str(tmp_path / "ck")]
    real, calls = live.np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 15:
            raise (OSError(errno.ENOSPC, "No space left on device") if fault == "disk full"
                   else KeyboardInterrupt())
        real(f, **arrays)

    monkeypatch.setattr(live.np, "savez", savez)
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if fault == "disk full":
        assert code == 1
        assert f"quantlab deploy: [Errno 28] checkpoint to {tmp_path / 'ck'}: No space" in err
    else:
        assert code == 130
        # the bar whose checkpoint was interrupted is not counted: 14, as the resume says
        assert (f"interrupted after 14 bars; run the same command to resume from "
                f"--checkpoint {tmp_path / 'ck'}") in err
    monkeypatch.undo()
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "14 bars traded" in out
    assert out.strip().splitlines()[-1] == whole


# ---- quantlab report / run-suite on a full disk ---------------------------------------

def _notebook(path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_report_shared_files_on_a_full_disk_are_one_line_and_leave_no_partial_file(
        tmp_path, monkeypatch, capsys):
    # was a traceback, and a partial _static/bokeh/.../.bokeh.min.js.tmp filling the disk
    import shutil

    from quantlab import cli, suite

    def copyfile(src, dst):
        Path(dst).write_bytes(b"half of bokeh")
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    nb = _notebook(tmp_path / "nb.ipynb")
    assert cli.main(["report", str(nb), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"quantlab report: error: [Errno 28] writing the reports' shared files in "
            f"{tmp_path / 'out' / suite.STATIC}: No space left on device") in err
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_atomic_write_on_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path,
                                                                            monkeypatch):
    from quantlab import suite

    (tmp_path / "index.json").write_text("[]")
    real = suite.os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, text):
            self.f.write(text[:10])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(suite.os, "fdopen", lambda fd, *a, **k: Full(real(fd, *a, **k)))
    with pytest.raises(OSError) as e:
        suite._atomic_write(tmp_path / "index.json", "[" + " " * 100 + "]")
    assert e.value.errno == errno.ENOSPC
    assert str(e.value) == (f"[Errno 28] writing {tmp_path / 'index.json'}: No space left "
                            "on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
    assert (tmp_path / "index.json").read_text() == "[]"


# ---- two deployments (or processes) checkpointing into one folder ----------------------

def _two(ibm, n=70):
    out = []
    for fees in (0.0, 0.01):
        d = ql.deploy("volatility_regime", {"window": 10, "lookback": 20}, fees=fees,
                      history=ibm.isel(time=slice(0, 60)))
        d.replay(ibm.isel(time=slice(60, n)))
        out.append(d)
    return out


def test_a_second_deployment_in_a_checkpoint_folder_stops_the_first_from_appending(
        ibm, tmp_path):
    # the first went on appending segments under the second's manifest: a restore mixed
    # the two deployments (or failed), no error at the checkpoint
    a, b = _two(ibm)
    a.checkpoint(tmp_path)
    b.checkpoint(tmp_path)          # a new deployment takes the folder over
    a.on_bar(ibm.isel(time=70))
    with pytest.raises(DataError, match=f"checkpoint {tmp_path} was written by another "
                                        "deployment since this one's last checkpoint"):
        a.checkpoint(tmp_path)
    back = ql.Deployment.restore(tmp_path)
    assert back.options.fees == 0.01 and back.equity_now() == b.equity_now()


def test_two_restores_of_one_checkpoint_cannot_both_append_to_it(ibm, tmp_path):
    # two `quantlab deploy --checkpoint DIR` at once: both resumed and appended alike
    a, _ = _two(ibm)
    a.checkpoint(tmp_path)
    r1, r2 = ql.Deployment.restore(tmp_path), ql.Deployment.restore(tmp_path)
    for r in (r1, r2):
        r.on_bar(ibm.isel(time=70))
    r1.checkpoint(tmp_path)
    with pytest.raises(DataError, match="written by another deployment"):
        r2.checkpoint(tmp_path)
    r1.on_bar(ibm.isel(time=71))
    r1.checkpoint(tmp_path)          # the one that wrote it goes on
    assert ql.Deployment.restore(tmp_path).equity_now() == r1.equity_now()


def test_a_checkpoint_folder_emptied_under_a_deployment_is_written_whole_again(ibm,
                                                                              tmp_path):
    # its next checkpoint appended one segment to a manifest that was gone: unrestorable
    a, _ = _two(ibm)
    a.checkpoint(tmp_path)
    for p in tmp_path.iterdir():
        p.unlink()
    a.on_bar(ibm.isel(time=70))
    a.checkpoint(tmp_path)
    back = ql.Deployment.restore(tmp_path)
    assert back.equity_now() == a.equity_now() and len(back.equity) == len(a.equity)


# ---- a FIFO or a device where a checkpoint's or store's metadata belongs ---------------

def _raised_within(fn, fifo, seconds=60):
    """The exception ``fn`` raises (None if none); a read blocked on ``fifo`` (the old
    code) is unblocked, then the test fails."""
    import os
    import threading

    got = []

    def run():
        try:
            fn()
            got.append(None)
        except Exception as e:  # noqa: BLE001 - the test looks at it
            got.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        th.join()
        pytest.fail(f"{fifo} hung")
    return got[0]


def test_a_fifo_or_device_in_a_checkpoint_is_named_not_a_hang(ibm, tmp_path):
    # a FIFO as deployment.json hung restore (and would hang the next checkpoint there);
    # a segment linked to /dev/zero was read until memory ran out
    import os

    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ibm.isel(time=slice(0, 60)))
    man = tmp_path / "a" / "deployment.json"
    man.parent.mkdir()
    os.mkfifo(man)
    e = _raised_within(lambda: ql.Deployment.restore(man.parent), man)
    assert isinstance(e, DataError) and f"{man}: not a regular file" in str(e), e
    assert _raised_within(lambda: dep.checkpoint(man.parent), man) is None
    assert ql.Deployment.restore(man.parent).equity_now() == dep.equity_now()
    dep.checkpoint(tmp_path / "b")
    [seg] = (tmp_path / "b").glob("seg-*.npz")
    seg.unlink()
    os.mkfifo(seg)
    e = _raised_within(lambda: ql.Deployment.restore(tmp_path / "b"), seg)
    assert isinstance(e, DataError) and f"{seg}: not a regular file" in str(e), e
    seg.unlink()
    seg.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="not a regular file"):
        ql.Deployment.restore(tmp_path / "b")


@pytest.mark.parametrize("name", ["quantlab_store.json", "zarr.json", "close/zarr.json",
                                  "time/zarr.json"])
def test_a_fifo_as_a_store_s_metadata_file_is_named_not_a_hang(ibm, tmp_path, name):
    import os
    import shutil

    src = _csv_folder(ibm, tmp_path / "src")
    ql.data.ingest(src, tmp_path / "st")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "st", bad)
    (bad / name).unlink()
    os.mkfifo(bad / name)
    for call in (lambda: ql.data.open(bad), lambda: ql.data.ingest(src, bad)):
        e = _raised_within(call, bad / name)
        assert isinstance(e, DataError), e
        assert f"{bad / name}: not a regular file" in str(e), e


def test_run_suite_out_dir_with_a_tilde_is_the_home_folder(home, tmp_path):
    # the CLI's --out expanded "~" but suite.run_suite(out_dir="~/r") made a folder "~"
    import io

    import nbformat

    from quantlab import suite
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].execution_count = 1
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    [run] = suite.run_suite([suite.Run(str(tmp_path / "tiny.ipynb"))], "~/r",
                            from_stored=True, log=io.StringIO())
    assert run.status == "ok" and Path(run.output) == home / "r" / "tiny.ipynb"
    assert list(Path.cwd().iterdir()) == []


def test_a_report_that_cannot_be_written_is_not_linked_from_the_index(tmp_path, monkeypatch):
    # a full disk at render time marked the run failed but left run.html (and the
    # index's link) naming a report that did not exist
    import errno
    import io

    import nbformat

    from quantlab import suite

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].execution_count = 1
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    monkeypatch.setattr(suite, "render_html", full)
    runs = [suite.Run(str(tmp_path / "tiny.ipynb"))]
    suite.run_suite(runs, tmp_path / "out", from_stored=True, render=True,
                    self_contained=True, log=io.StringIO())
    assert runs[0].status == "failed" and "No space left" in runs[0].error
    assert runs[0].html == ""
    suite.write_index(runs, tmp_path / "out")
    assert "tiny.html" not in (tmp_path / "out" / "index.html").read_text()


def test_review_names_and_paths_edge_values():
    # an outside review: pd.NA was the asset name "<NA>", "~nosuchuser" a bare
    # RuntimeError, an array one name, an unknown asset= of period() xarray's KeyError
    from quantlab import suite
    from quantlab.data import asset_names, user_path
    with pytest.raises(ql.errors.DataError, match="missing asset name"):
        asset_names("universe", ["A", pd.NA])
    with pytest.raises(ValueError, match="checkpoint path '~nosuchuser_ql/ck'"):
        user_path("checkpoint path", "~nosuchuser_ql/ck")
    ds = ql.data.load()
    with pytest.raises(TypeError, match="symbol must be one name"):
        suite.one_of("symbol", np.array(["MSFT"]), ds)
    with pytest.raises(ValueError, match="asset 'XYZ' is not in data set"):
        suite.period("p", ("2005", "2006"), ds, asset="XYZ")
