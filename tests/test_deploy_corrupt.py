"""Corrupt or hand-edited deployment checkpoints (issue #27 trust).

Before: restore raised raw JSONDecodeError / UnicodeDecodeError / AttributeError /
KeyError / EOFError / BadZipFile / reshape ValueError / TypeError / NotADirectoryError,
left npz handles open, or silently restored WRONG numbers ("killed": "false" acted
killed; "times": [] or "options": {} fell back to defaults). Now every failure is a
quantlab DataError naming the file and the key, and an intact checkpoint restores
exactly."""
import gc
import hashlib
import json
import shutil

import numpy as np
import pytest

import quantlab as ql
from quantlab.errors import DataError
from quantlab.live import Deployment, _manifest_digest, _read_segments

PARAMS = {"window": 10, "lookback": 20}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    ds = ql.data.load().isel(time=slice(0, 90))
    dep = ql.deploy("volatility_regime", PARAMS, history=ds.isel(time=slice(0, 60)),
                    fees=0.001)
    root = tmp_path_factory.mktemp("ck")
    dep.replay(ds.isel(time=slice(60, 75)))
    dep.checkpoint(root / "v2")
    dep.replay(ds.isel(time=slice(75, 90)))
    dep.checkpoint(root / "v2")                    # two segments: seg-1-0, seg-1-1
    meta, arrays = _read_segments(root / "v2", json.loads(
        (root / "v2" / "deployment.json").read_text()))
    (root / "v1").mkdir()
    np.savez(root / "v1" / "deployment.npz", **arrays)
    (root / "v1" / "deployment.json").write_text(json.dumps({**meta, "format": 1}))
    assert len(dep.orders) > 0
    return root, dep


def _edit(key, value):
    def f(d):
        meta = json.loads((d / "deployment.json").read_text())
        if value is _DROP:
            meta.pop(key[0]) if len(key) == 1 else meta[key[0]].pop(key[1])
        elif len(key) == 1:
            meta[key[0]] = value
        else:
            meta[key[0]][key[1]] = value
        (d / "deployment.json").write_text(json.dumps(meta))
    return f


_DROP = object()


def _write(name, data):
    return lambda d: (d / name).write_bytes(data)


def _json(text):
    return _write("deployment.json", text.encode() if isinstance(text, str) else text)


def _seg(k, fn):
    """Segment k's arrays edited, and the manifest's digest of it with them (so the
    checks of its arrays are what refuses it, as for a writer that wrote them so)."""
    def f(d):
        arrays = dict(np.load(d / f"seg-1-{k}.npz"))
        fn(arrays)
        np.savez(d / f"seg-1-{k}.npz", **arrays)
        meta = json.loads((d / "deployment.json").read_text())
        meta["digests"][k] = hashlib.sha256((d / f"seg-1-{k}.npz").read_bytes()).hexdigest()
        meta["digest"] = _manifest_digest(meta)
        (d / "deployment.json").write_text(json.dumps(meta))
    return f


def _swap_state(arrays):
    """The kernel state of a 2-asset deployment in a 4-asset checkpoint."""
    from quantlab.live import _pack
    ds = ql.data.load().isel(time=slice(0, 62), asset=slice(0, 2))
    other = ql.deploy("volatility_regime", PARAMS, history=ds.isel(time=slice(0, 60)))
    other.replay(ds.isel(time=slice(60, None)))
    for k in [k for k in arrays if k.startswith("state.")]:
        del arrays[k]
    arrays.update(_pack("state", other.state.to_dict()))


def _npy(file):
    with open(file, "wb") as f:
        np.save(f, np.zeros(3))


def _truncate(name):
    def f(d):
        b = (d / name).read_bytes()
        (d / name).write_bytes(b[:len(b) // 2])
    return f


CORRUPT = {   # name -> (edit, the message DataError must match)
    "empty manifest": (_json(""), r"deployment.json: cannot read it \(JSONDecodeError"),
    "truncated manifest": (_truncate("deployment.json"), "deployment.json: cannot read"),
    "NUL manifest": (_json(b"\0" * 40), "deployment.json: cannot read"),
    "BOM manifest": (lambda d: (d / "deployment.json").write_bytes(
        b"\xef\xbb\xbf" + (d / "deployment.json").read_bytes()),
        "deployment.json: cannot read"),
    "latin-1 manifest": (_json(b'{"strategy": "\xe9"}'), "UnicodeDecodeError"),
    "list manifest": (_json("[1, 2]"), "expected a JSON object, found list"),
    "no universe": (_edit(("universe",), _DROP), "key 'universe' is missing"),
    "killed 'false'": (_edit(("killed",), "false"), "'killed' must be bool, found 'false'"),
    "seen 'many'": (_edit(("seen",), "many"), "'seen' must be int, found 'many'"),
    "seen -1": (_edit(("seen",), -1), "'seen' must be >= 0"),
    "seen null": (_edit(("seen",), None), "'seen' must be int"),
    "seen +1": (lambda d: _edit(("seen",), json.loads(
        (d / "deployment.json").read_text())["seen"] + 1)(d),
        r"66 buffered bar times, but 'seen' - 'first' = 67"),   # 61 before session 51's lead
    "peak 'abc'": (_edit(("peak",), "abc"), "'peak' must be float or int or null"),
    "options {}": (_edit(("options",), {}), r"'options' must hold every key the writer "
                                            r"writes; missing \['borrow_rate'"),
    "options group 'yes'": (_edit(("options", "group"), "yes"), "'group' must be bool"),
    "options no fees": (_edit(("options", "fees"), _DROP), r"missing \['fees'\]"),
    "risk unknown key": (_edit(("risk", "max_leverage"), 2.0), r"unknown \['max_leverage'\]"),
    "risk bad value": (_edit(("risk", "max_drawdown_pct"), 5),
                       "cannot be restored: ValueError: risk max_drawdown_pct"),
    "universe of ints": (_edit(("universe",), [1, 2, 3, 4]), "list of str"),
    "universe shorter": (_edit(("universe",), ["AAPL", "GOOG"]), "must have the shape"),
    "unknown variable": (_edit(("variables",), ["close", "vwap"]), r"unknown \['vwap'\]"),
    "segments beyond": (_edit(("segments",), 3), "seg-1-2.npz: the file is missing"),
    "segment missing": (lambda d: (d / "seg-1-0.npz").unlink(),
                        "seg-1-0.npz: the file is missing"),
    "segment empty": (_write("seg-1-1.npz", b""), r"seg-1-1.npz: cannot read it"),
    "segment truncated": (_truncate("seg-1-1.npz"), r"seg-1-1.npz: cannot read it"),
    "segment a .npy": (lambda d: _npy(d / "seg-1-1.npz"),
                       "seg-1-1.npz: not an npz archive"),
    "segment lacks rec.time": (_seg(1, lambda a: a.pop("rec.time")),
                               "seg-1-1.npz: array 'rec.time' is missing"),
    "segment short bars": (_seg(1, lambda a: a.update(bars=a["bars"][:, :-1])),
                           "seg-1-1.npz: array 'bars' must have the shape"),
    "segment short records": (_seg(0, lambda a: a.update(
        {"rec.accounts": a["rec.accounts"][:, :-1]})), "array 'rec.accounts'"),
    "state layout garbage": (_seg(1, lambda a: a.update({"state.layout": np.array("{")})),
                             r"seg-1-1.npz: cannot unpack it \(JSONDecodeError"),
    "state of 2 assets": (_seg(1, lambda a: _swap_state(a)),
                          "kernel state has 2 columns, the universe 4 assets"),
    "last_close short": (_seg(1, lambda a: a.update(last_close=a["last_close"][:2])),
                         "'last_close' must be 4 numbers"),
    "bars text": (_seg(1, lambda a: a.update(bars=a["bars"].astype(str))),
                  "array 'buf.open' must be numeric"),
    "path is a file": (None, "cannot read it"),
    "strategy unknown": (_edit(("strategy",), "nope"), "cannot be restored"),
}


@pytest.mark.parametrize("case", CORRUPT, ids=list(CORRUPT))
def test_corrupt_format_2_checkpoint_raises_a_data_error_naming_it(case, saved, tmp_path):
    root, _ = saved
    edit, match = CORRUPT[case]
    d = tmp_path / "ck"
    shutil.copytree(root / "v2", d)
    if edit is None:                               # the path given is a file
        d = d / "seg-1-0.npz"
        match = "deployment.json: cannot read it"
    else:
        edit(d)
    with pytest.raises(DataError, match=match):
        Deployment.restore(d)


V1 = {
    "times []": (_edit(("times",), []), r"0 buffered bar times, but 'seen' - 'first'"),
    "no record_times": (_edit(("record_times",), _DROP), "key 'record_times' is missing"),
    "killed 'false'": (_edit(("killed",), "false"), "'killed' must be bool"),
    "short records": (_edit(("record_times",), ["2020-01-01"]), "array 'rec.positions'"),
    "npz truncated": (_truncate("deployment.npz"), "deployment.npz: cannot read it"),
    "bad order": (_edit(("orders",), [{"time": "2020-01-01"}]), "each of 'orders'"),
    "bad time": (_edit(("times",), None), "'times' must be list"),
    "times reversed": (lambda d: _edit(("times",), json.loads(
        (d / "deployment.json").read_text())["times"][::-1])(d), "strictly increasing"),
    "time not a date": (lambda d: _edit(("record_times",), ["x"] * len(json.loads(
        (d / "deployment.json").read_text())["record_times"]))(d), "not a timestamp"),
    "peak inf": (_edit(("peak",), float("inf")), "'peak' must be finite, found inf"),
}


@pytest.mark.parametrize("case", V1, ids=list(V1))
def test_corrupt_format_1_checkpoint_raises_a_data_error_naming_it(case, saved, tmp_path):
    root, _ = saved
    edit, match = V1[case]
    shutil.copytree(root / "v1", tmp_path / "ck")
    edit(tmp_path / "ck")
    with pytest.raises(DataError, match=match):
        Deployment.restore(tmp_path / "ck")


def test_intact_checkpoints_of_both_formats_restore_exactly(saved):
    root, dep = saved
    for fmt in ("v1", "v2"):
        back = Deployment.restore(root / fmt)
        np.testing.assert_array_equal(back.equity.values, dep.equity.values)
        assert back.killed is False and back._peak == dep._peak


def test_checkpoint_onto_an_existing_file_raises_a_value_error_naming_it(saved, tmp_path):
    _, dep = saved
    f = tmp_path / "afile"
    f.write_text("x")
    for p in (f, f / "sub"):
        with pytest.raises(ValueError, match="is a file, not a directory"):
            dep.checkpoint(p)


def test_restore_closes_the_npz_files(saved, tmp_path):
    """np.load's handle was left open (a ResourceWarning; on Windows the folder could not
    be removed): every segment is read whole inside a ``with``."""
    import warnings
    root, _ = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        Deployment.restore(root / "v2")
        for k, bad in enumerate((_truncate("seg-1-1.npz"), _write("seg-1-1.npz", b""),
                                 _write("seg-1-1.npz", b"PK\x03\x04junk"))):
            shutil.copytree(root / "v2", tmp_path / f"ck{k}")
            bad(tmp_path / f"ck{k}")
            with pytest.raises(DataError, match="seg-1-1.npz: cannot read it"):
                Deployment.restore(tmp_path / f"ck{k}")
        gc.collect()          # an unreferenced open file warns when collected


def test_a_group_deployment_restores_as_a_group(saved, tmp_path):
    """BacktestOptions.to_dict leaves out ``group``: the checkpoint restored a group
    deployment as per-asset accounts (wrong equity shape). The manifest now writes it."""
    ds = ql.data.load().isel(time=slice(0, 70))
    dep = ql.deploy("volatility_regime", PARAMS, history=ds.isel(time=slice(0, 60)),
                    group=True).replay(ds.isel(time=slice(60, None)))
    back = Deployment.restore(dep.checkpoint(tmp_path / "g"))
    assert back.options.group is True
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)


def test_cli_deploy_counts_bars_instead_of_building_the_equity_each_bar(tmp_path,
                                                                         monkeypatch, capsys):
    """`quantlab deploy` printed a status line when len(dep.equity) % every == 0: the
    equity DataArray was built after every bar (~2 ms). Now a bar counter, continued
    from the bars a resumed checkpoint has traded."""
    from quantlab import cli
    ds = ql.data.load("equities")
    start = ds.time.values[-30]
    hist = ds.sel(time=ds.time < start)
    dep = ql.deploy("volatility_regime", history=hist, fees=0.001)
    dep.replay(ds.sel(time=ds.time >= start).isel(time=slice(0, 7)))   # 7 bars traded
    dep.checkpoint(tmp_path / "ck")
    calls = []
    equity = Deployment.equity
    monkeypatch.setattr(Deployment, "equity",
                        property(lambda self: calls.append(1) or equity.fget(self)))
    assert cli.main(["deploy", "volatility_regime", "--replay", "equities", "--start",
                     str(start)[:10], "--checkpoint", str(tmp_path / "ck"),
                     "--every", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    status = [line[:10] for line in out if line.startswith("20")]
    times = [str(t)[:10] for t in ds.time.values[-30:]]
    assert status == [times[i - 1] for i in range(10, 31, 5)]   # bars 10, 15, ..., 30
    assert "resumed from" in out[0] and "7 bars traded" in out[0]
    assert len(calls) <= 3          # resume message, the bars left; not one per bar


def test_cli_deploy_refuses_a_corrupt_checkpoint_with_exit_2(saved, tmp_path, capsys):
    """`quantlab deploy --checkpoint DIR` raised a raw traceback on a damaged checkpoint
    (and a FileExistsError onto a file): now a message naming it and exit code 2, before
    any bar (the folder is left as it was)."""
    from quantlab import cli
    root, _ = saved
    shutil.copytree(root / "v2", tmp_path / "ck")
    _edit(("killed",), "false")(tmp_path / "ck")
    before = sorted(p.name for p in (tmp_path / "ck").iterdir())
    args = ["deploy", "volatility_regime", "--replay", "equities", "--checkpoint"]
    assert cli.main([*args, str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "cannot resume from --checkpoint" in err and "'killed' must be bool" in err
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == before
    (tmp_path / "afile").write_text("x")
    assert cli.main([*args, str(tmp_path / "afile")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("args, match", [
    (["nope", "--replay", "equities"], "unknown strategy 'nope'"),
    (["volatility_regime", "--replay", "/no/such dir"], "/no/such dir: no such file"),
    (["volatility_regime", "--replay", "equities", "--params", "bad.json"], "not JSON"),
    (["volatility_regime", "--replay", "equities", "--params", "list.json"],
     "a JSON object of parameters"),
    (["volatility_regime", "--replay", "equities", "--params", "nested.json"],
     "a JSON object of parameters"),
    (["volatility_regime", "--replay", "equities", "--params", "wrong.json"],
     "'window' must be an integer, got 'abc'"),
    (["volatility_regime", "--replay", "equities", "--set", "fees", "-1"], "fees must be"),
    (["volatility_regime", "--replay", "equities", "--set", "fees", "[1"], "--set fees"),
    (["volatility_regime", "--replay", "equities", "--start", "notadate"], "--start"),
    (["volatility_regime", "--replay", "equities", "--start", "2099-01-01"],
     "after the replay's last bar"),     # ran 0 bars and exited 0
    (["volatility_regime", "--replay", "equities", "--every", "0"], "--every"),
    (["volatility_regime", "--feed", "ws://127.0.0.1:1/x"], "--feed needs --symbols"),
    (["volatility_regime", "--feed", "ws://127.0.0.1:1/x", "--symbols", "A", "--bar", "x"],
     "freq"),
])
def test_cli_deploy_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args,
                                                         match):
    """`quantlab deploy` let every user error out as a traceback with exit 1 (an unknown
    strategy, a missing file, bad JSON, a bad --set or --start): now the message and exit
    code 2, before any bar."""
    from quantlab import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "nested.json").write_text('{"params": 5}')
    (tmp_path / "wrong.json").write_text('{"window": "abc"}')
    assert cli.main(["deploy", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quantlab deploy: error: ") and match in err
    assert "Traceback" not in err
