import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py


@pytest.fixture(scope="session")
def equities():
    import quantlab as ql

    return ql.data.load()


def pytest_sessionfinish(session, exitstatus):
    """Kill the child processes a test left alive (a dask cluster's Nanny workers): in a
    `make test` worker process (pytest-xdist) they kept the run from ending after its
    last test had reported (seen once in five runs)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)


@pytest.fixture
def registry():
    """The strategy registry as it was: a test's (or a guide's) @register does not outlive
    it (a later test in the same worker counted twelve strategies)."""
    from quantlab import strategies

    saved = dict(strategies._REGISTRY)
    yield
    strategies._REGISTRY.clear()
    strategies._REGISTRY.update(saved)
