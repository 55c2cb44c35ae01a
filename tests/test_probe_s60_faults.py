"""Session 60, helper `faults`: faults a paper-trading run meets -- a feed restarted or
re-sending ticks, checkpoints interrupted at each write, batch runs losing their disk --
each ending in the fault-free run's numbers or a clear error, never other numbers."""
from pathlib import Path

import numpy as np
import pytest

import quantlab as ql
from quantlab.engine import BarAggregator, TickEngine
from quantlab.testing import ticks_from_bars

VR = {"window": 15}


@pytest.fixture(scope="module")
def two():
    return ql.data.load().isel(time=slice(0, 90), asset=[0, 2])


def _engine(ds, dep=None):
    eng = TickEngine({"engine": {"max_symbols": 8}})
    if dep is not None:
        return eng, eng.load_strategy_params(dep)
    return eng, eng.load_strategy_params(VR, strategy="volatility_regime", bar="1D",
                                         history=ds.isel(time=slice(0, 60)))


def _ticks(ticks, a, b):
    return {k: v[a:b] for k, v in ticks.items()}


# ---- a feed re-sending ticks of bars already traded ---------------------------------------
def test_a_resumed_feed_re_sending_traded_bars_drops_them_as_late(two, tmp_path):
    """A feed reconnecting after a restart re-sends its last ticks: the resumed engine's
    bars began empty, so the traded bars came again and the deployment refused them
    ("bar at 2000-06-13 is out of order"): `quantlab deploy --feed` stopped, exit 1. Now
    they are late ticks (dropped, counted, as without the restart) and the run ends as
    the uninterrupted one."""
    ticks = ticks_from_bars(two.isel(time=slice(60, 90)))
    eng, whole = _engine(two)
    eng.process_ticks(ticks)
    eng.flush_bars()
    eng, dep = _engine(two)
    cut = len(ticks["timestamp"]) // 2
    eng.process_ticks(_ticks(ticks, 0, cut))
    dep.checkpoint(tmp_path / "ck")
    eng, back = _engine(two, ql.Deployment.restore(tmp_path / "ck"))
    eng.process_ticks(_ticks(ticks, cut - 20, None))    # the open bar's ticks among them
    eng.flush_bars()
    assert len(back.equity) == len(whole.equity) == 30
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    late = eng.get_performance_stats()["late_ticks"]
    assert sum(late.values()) == 12, late      # the bars traded before the checkpoint


def test_ticks_of_the_history_s_bars_are_late_not_a_refused_bar(two):
    """The first ticks of a feed overlapping the history given to load_strategy_params
    made a bar the deployment refused as duplicated, which ended the run."""
    eng, dep = _engine(two)
    eng.process_ticks(ticks_from_bars(two.isel(time=slice(58, 62))))
    eng.flush_bars()
    assert [str(t)[:10] for t in dep.equity.time.values] == ["2000-05-25", "2000-05-26"]
    assert eng.get_performance_stats()["late_ticks"] == {"AAPL": 8, "IBM": 8}


def test_a_bar_aggregator_after_a_time_takes_only_later_bars():
    agg = BarAggregator("1min", ["A"], unit="s", after=np.datetime64("1970-01-01T00:01:30"))
    tick = {"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.0], "bid_size": [1],
            "ask_size": [1], "timestamp": [61]}
    assert agg.add(tick) == [] and agg.flush() == [] and agg.late_ticks == {"A": 1}
    agg.add(dict(tick, timestamp=[120]))
    assert [str(b.time.values)[:19] for b in agg.flush()] == ["1970-01-01T00:02:00"]


# ---- run-suite: a disk full while a report is written ---------------------------------------
@pytest.fixture
def fake_exec(monkeypatch):
    """Notebooks "executed" without a kernel: each records its parameters."""
    import nbformat

    from quantlab import suite

    def fake(nb_json, parameters, cwd=None, timeout=None):
        nb = nbformat.reads(nb_json, as_version=4)
        rec = {k: str(v) for k, v in parameters.items()}
        nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
            "display_data", data={suite.RECORD_MIME: rec, "text/plain": str(rec)})]))
        return {"status": "ok", "error": "", "duration": 0.0, "started": "2026-01-01T00:00:00",
                "ended": "2026-01-01T00:00:01", "notebook": nbformat.writes(nb)}

    monkeypatch.setattr(suite, "execute_notebook_json", fake)


def _notebook(path):
    import nbformat

    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("full", [".html", ".ipynb"])
def test_a_rerun_whose_output_cannot_be_written_links_no_earlier_report(tmp_path, fake_exec,
                                                                        monkeypatch, full):
    """A rerun into the same --out whose report hit a full disk was marked failed, but
    the index linked NAME.html -- the earlier batch's report, another run's results --
    as its report; a notebook that could not be written left the earlier one's files.
    Now none of them is left under the name: the index says failed, with no link, and
    the other runs' reports are this batch's."""
    import errno
    import io
    import json

    from quantlab import suite

    nb = _notebook(tmp_path / "nb.ipynb")
    out = tmp_path / "o"
    def batch():
        runs = [suite.Run(str(nb), name, {"x": 5}) for name in ("a", "b", "c")]
        suite.run_suite(runs, out, render=True, index=True, log=io.StringIO())
        return runs

    batch()
    assert (out / "b.html").is_file()            # an earlier batch's report under "b"
    real = suite._atomic_write

    def disk_full(path, text):
        if Path(path).name == f"b{full}":     # the second run of the batch
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(suite, "_atomic_write", disk_full)
    runs = batch()
    assert [r.status for r in runs] == ["ok", "failed", "ok"], [r.error for r in runs]
    assert "No space left on device" in runs[1].error and runs[1].html == ""
    assert not (out / "b.html").exists()
    assert (out / "b.ipynb").exists() == (full == ".html")     # this run's, if written
    index = {r["name"]: r for r in json.loads((out / "index.json").read_text())}
    assert index["b"]["status"] == "failed" and index["b"]["html"] == ""
    assert index["a"]["html"] and index["c"]["html"]
    assert 'href="b.html"' not in (out / "index.html").read_text()


# ---- a live bar stamped in a time zone --------------------------------------------------------
def test_a_bar_stamped_with_a_zone_trades_at_its_utc_time():
    """A live bar built with a zoned stamp (pd.Timestamp.now(tz=...), a feed's aware
    datetime) is held by xarray as an object: on_bar refused it as "must be a datetime64
    date", though replay reads a zoned index in UTC and the tick engine converts zones.
    Now it is that instant in UTC, whatever the zone: the run is the replay's."""
    import pandas as pd

    ds = ql.data.load().isel(time=slice(0, 40))

    def dep():
        return ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                         history=ds.isel(time=slice(0, 30)), fees=0.001)

    whole, zoned = dep().replay(ds.isel(time=slice(30, 40)), echo=None), dep()
    for i in range(30, 40):
        bar = ds.isel(time=i)
        t = pd.Timestamp(bar.time.values).tz_localize("UTC").tz_convert(
            ("Asia/Tokyo", "America/New_York", "UTC")[i % 3])
        zoned.on_bar(bar.drop_vars("time").assign_coords(time=t if i % 2 else
                                                         t.to_pydatetime()))
    np.testing.assert_array_equal(zoned.equity.time.values, whole.equity.time.values)
    np.testing.assert_array_equal(zoned.equity.values, whole.equity.values)
    for bad in ("2000-01-01", None):   # text and None are still no date
        with pytest.raises(ql.DataError, match="must be a datetime64 date"):
            dep().on_bar(ds.isel(time=30).drop_vars("time").assign_coords(time=bad))


# ---- SIGKILL at each step of a checkpoint's write ---------------------------------------------
KILLED = """
import os, signal, sys
from pathlib import Path
import quantlab as ql
ck, point, whole = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
ds = ql.data.load().isel(time=slice(0, 40))
dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                history=ds.isel(time=slice(0, 30)), fees=0.001)
if whole:   # the sixth checkpoint writes a new generation, then deletes the old one
    ql.Deployment.COMPACT = 5
for i in range(30, 35):
    dep.on_bar(ds.isel(time=i))
    dep.checkpoint(ck)
dep.on_bar(ds.isel(time=35))
calls = []
def killing(name, real):
    def call(*a, **k):
        calls.append(name)
        if f"{name}{calls.count(name)}" == point:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    return call
os.fsync, os.replace = killing("fsync", os.fsync), killing("replace", os.replace)
Path.unlink = killing("unlink", Path.unlink)
dep.checkpoint(ck)
print(calls)
"""


# (the call killed before: the segment synced, renamed; the manifest synced, renamed; the
# folder synced; an old generation's file deleted), the whole write?, bars in the checkpoint
@pytest.mark.parametrize("point, whole, bars", [
    ("fsync1", "0", 5), ("replace1", "0", 5), ("fsync2", "0", 5), ("replace2", "0", 5),
    ("fsync3", "0", 6), ("replace2", "1", 5), ("unlink1", "1", 6)])
def test_sigkill_at_each_step_of_a_checkpoint_resumes_bar_for_bar(tmp_path, point, whole,
                                                                  bars):
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    ck = tmp_path / "ck"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(ck), point, whole], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    ds = ql.data.load().isel(time=slice(0, 40))
    back = ql.Deployment.restore(ck)
    assert len(back.equity) == bars        # the checkpoint before, or the one written
    back.listeners.append(lambda status: back.checkpoint(ck))   # over the stray files
    back.replay(ds.isel(time=slice(30 + bars, 40)), echo=None)
    again = ql.Deployment.restore(ck)
    whole_run = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                          history=ds.isel(time=slice(0, 30)), fees=0.001)
    whole_run.replay(ds.isel(time=slice(30, 40)), echo=None)
    np.testing.assert_array_equal(again.equity.values, whole_run.equity.values)
    assert again.orders.equals(whole_run.orders)


# ---- a corrupt quote the engine refuses --------------------------------------------------------
@pytest.mark.parametrize("price", [1e20, 1e300, 0.001])
def test_a_quote_the_engine_refuses_as_bad_price_is_not_in_the_bars(two, price):
    """A corrupt quote (1e20 for a $100 stock: beyond the engine's 2^62 ticks; 0.001:
    no whole tick) was rejected by the engine as bad_price, but its bar took it: the
    deployment traded a close of 1e20 (1e300: an infinite mid, a bar refused and the run
    stopped). Now the bars skip it as the engine does: the run is the clean one's."""
    ticks = ticks_from_bars(two.isel(time=slice(60, 70)))
    eng, clean = _engine(two)
    eng.process_ticks(ticks)
    eng.flush_bars()
    ts = ticks["timestamp"]
    day = ts[ts // 86_400_000_000 == ts[40] // 86_400_000_000]
    at = int(np.searchsorted(ts, day.max(), side="right"))   # after the bar's last quote
    bad = {k: np.insert(v, at, v[at - 1]) for k, v in ticks.items()}
    bad["timestamp"][at] += 1
    bad["bid_price"][at], bad["ask_price"][at] = price, price * 1.5   # its close
    eng, dep = _engine(two)
    eng.process_ticks(bad)
    eng.flush_bars()
    assert eng.get_performance_stats()["tick_rejects"]["bad_price"] == 1
    np.testing.assert_array_equal(dep.equity.values, clean.equity.values)
    assert dep.orders.equals(clean.orders)


# ---- a restore while another process checkpoints ------------------------------------------------
def test_a_restore_during_a_whole_checkpoint_write_reads_one_checkpoint(tmp_path, monkeypatch):
    """A monitor restoring a live run's checkpoint read the manifest just before the
    run's whole (compacting) write deleted the segments it names: "corrupt deployment
    checkpoint seg-1-0.npz: the file is missing" (and `quantlab deploy` refused to resume,
    exit 2). Now a restore holds a shared lock on the folder: the write waits for it."""
    import threading

    from quantlab import live

    ds = ql.data.load().isel(time=slice(0, 40))
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                    history=ds.isel(time=slice(0, 30)), fees=0.001)
    dep.COMPACT = 3
    for i in range(30, 34):
        dep.on_bar(ds.isel(time=i))
        if i < 33:
            dep.checkpoint(tmp_path)      # the fourth is whole: gen 1's files go
    real, writer = live._read_regular, []

    def manifest_read_then_the_write(file):
        raw = real(file)
        if file.name == "deployment.json" and not writer:  # another process would not wait
            writer.append(threading.Thread(target=dep.checkpoint, args=(tmp_path,)))
            writer[0].start()
            writer[0].join(1.0)
        return raw

    monkeypatch.setattr(live, "_read_regular", manifest_read_then_the_write)
    back = ql.Deployment.restore(tmp_path)
    writer[0].join(30)
    monkeypatch.undo()
    assert len(back.equity) == 3 and len(ql.Deployment.restore(tmp_path).equity) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deployment.json", "seg-2-0.npz"]
