"""Every compiled entry point, fuzzed (hypothesis) in a child process: each call returns
or raises ValueError/TypeError; none crashes the interpreter, hangs, or accepts input it
would misread. The cases and the rules live in tests/property_worker.py; set
QL_PROPERTY_SCALE=10 to draw ten times the default examples."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
WORKER = Path(__file__).with_name("property_worker.py")
# examples per family: a backtest call costs ~0.1 s (xarray in and out), a kernel ~1 ms
EXAMPLES = {"rolling": 300, "measures": 300, "metrics": 300, "backtest": 80, "data": 200,
            "ticks": 300}
SCALE = float(os.environ.get("QL_PROPERTY_SCALE", 1))


@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_no_crash_no_hang_no_bare_error(family):
    n = max(1, int(EXAMPLES[family] * SCALE))
    try:
        p = subprocess.run([sys.executable, str(WORKER), family, str(n)],
                           capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as e:
        last = (e.stderr or b"")[-2000:]
        pytest.fail(f"{family}: a call hung (> 240 s); last calls:\n{last}")
    if p.returncode < 0:
        last = "\n".join(p.stderr.splitlines()[-3:])
        pytest.fail(f"{family}: the interpreter died with signal {-p.returncode} in:\n{last}")
    assert p.returncode == 0, p.stderr[-4000:]
