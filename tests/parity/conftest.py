"""The peer libraries the parity tests compare with: each fixture skips only the tests
that ask for it when its library is missing (the core tests in tests/ never skip)."""
import warnings

import pytest


@pytest.fixture(scope="session")
def vbt():
    return pytest.importorskip("vectorbt")


@pytest.fixture(scope="session")
def nolds():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # nolds 0.6.2 imports the deprecated pkg_resources
        return pytest.importorskip("nolds")


@pytest.fixture(scope="session")
def antropy():
    return pytest.importorskip("antropy")


@pytest.fixture(scope="session")
def pyinform():
    return pytest.importorskip("pyinform")
