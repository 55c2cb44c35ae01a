"""Session 60 review: plugins, registered metrics and pandas input, probed from outside."""
from __future__ import annotations

import sys
import threading
import time

import pytest

import quantlab as ql
from quantlab import _plugins

SLOW_PLUGIN = '''
import time
import numpy as np
import quantlab as ql

time.sleep(0.6)   # a slow import (a heavy dependency): other threads look up meanwhile


def {name}(r, periods):
    return np.nansum(r, axis=0)


ql.metrics.register("{name}", {name})
'''


@pytest.fixture
def plugins(monkeypatch, registry):
    monkeypatch.setattr(_plugins, "_done", set())
    monkeypatch.setattr(_plugins, "_loaded", set(), raising=False)
    return monkeypatch


def test_second_threads_first_lookup_waits_for_a_plugin_being_imported(tmp_path, plugins):
    # the entry was marked done before its import ran, and the lock-free check read that
    # mark: a second thread's look-up during the import returned at once, without the
    # plugin's metric (a sweep's or dask's worker thread: 'unknown objective')
    name = f"slow_{tmp_path.name.replace('-', '_')}"
    path = tmp_path / f"{name}.py"
    path.write_text(SLOW_PLUGIN.format(name=name))
    plugins.setenv("QUANTLAB_PLUGINS", str(path))
    seen = {}

    def look(i):
        time.sleep(0.2 * i)
        seen[i] = name in ql.metrics.registered()

    threads = [threading.Thread(target=look, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.modules.pop(name, None)
    assert seen == {0: True, 1: True}
