"""Session 50: streamed reads and backtests (lead engineer's changes)."""
import threading

import numpy as np

from quantlab import store


def test_chunk_file_reads_into_a_per_thread_scratch_buffer(tmp_path, monkeypatch):
    files = []
    for i, n in enumerate((100, 50, 300)):
        p = tmp_path / f"c{i}"
        p.write_bytes(bytes((i + k) % 251 for k in range(n)))
        files.append(p)
    a = store._local_bytes(files[0], 1000)
    assert bytes(a) == files[0].read_bytes()
    b = store._local_bytes(files[1], 1000)          # the same buffer, overwritten
    assert bytes(b) == files[1].read_bytes()
    c = store._local_bytes(files[2], 2000)          # a larger limit: a new buffer
    assert bytes(c) == files[2].read_bytes() and bytes(b) == files[1].read_bytes()
    assert bytes(store._local_bytes(files[2], 10)) == files[2].read_bytes()[:10]
    assert bytes(store._local_bytes(files[2], -4)) == files[2].read_bytes()[-4:]
    assert store._local_bytes(tmp_path / "none", 10) is None
    monkeypatch.setattr(store, "_SCRATCH_MAX", 10)   # above it: the file's own bytes
    assert store._local_bytes(files[0], 1000) == files[0].read_bytes()

    got, errors = {}, []

    def read(i):   # threads read at once: each its own buffer
        try:
            for _ in range(200):
                if bytes(store._local_bytes(files[i], 1000)) != files[i].read_bytes():
                    errors.append(i)
        finally:
            got[i] = True
    monkeypatch.setattr(store, "_SCRATCH_MAX", 1 << 26)
    ts = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(got) == 3 and not errors


def test_a_store_read_twice_in_one_thread_keeps_each_chunk(tmp_path):
    import quantlab as ql
    rng = np.random.default_rng(0)
    n, m = 300, 5
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), 0))
    idx = __import__("pandas").date_range("2020-01-01", periods=n, freq="D")
    for j in range(m):
        (tmp_path / "in").mkdir(exist_ok=True)
        __import__("pandas").DataFrame({"time": idx, "close": close[:, j]}).to_csv(
            tmp_path / "in" / f"S{j}.csv", index=False)
    ql.data.ingest(tmp_path / "in", store=tmp_path / "st", chunk_time=64, chunk_asset=2)
    ds = ql.data.open(tmp_path / "st")
    np.testing.assert_array_equal(ds["close"].transpose("time", "asset").values, close)
