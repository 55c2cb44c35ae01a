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
    """The strategy and metric registries as they were: a test's (or a guide's)
    @register or ql.metrics.register does not outlive it (a later test in the same
    worker counted twelve strategies)."""
    from quantlab import fmt, metrics, strategies

    saved = [(d, dict(d)) for d in (strategies._REGISTRY, metrics._WHOLE, metrics.METRICS,
                                    fmt.KINDS)]
    yield
    for d, was in saved:
        d.clear()
        d.update(was)
