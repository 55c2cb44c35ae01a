"""Session 57 peer-suite probe: ql.rolling, ql.measures and ql.metrics on the edge inputs
of bottleneck's, pandas', nolds'/antropy's and empyrical's own suites (dtypes, NaN/±inf,
lengths 0-2, windows beyond the series, huge and tiny magnitudes, layouts), where a
value differed from the peer's or from the same computation on reordered input."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import quantlab as ql

M = ql.metrics

sys.path.insert(0, str(Path(__file__).parent))
from test_peers_measures import _exact_dfa_logs  # noqa: E402  (the rational DFA reference)


def _base(n=60):
    return np.random.default_rng(11).normal(0.001, 0.02, n)


# ---- ql.metrics: the spread of a column holding ±inf or overflowing ---------------------

@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("n", [5, 17, 60])
def test_annual_volatility_of_an_infinite_return_is_nan_wherever_it_stands(value, n):
    """Welford's M2 came out inf when the infinity was one of the last two returns and
    NaN elsewhere: annual_volatility was inf or NaN for the same returns reordered
    (empyrical, numpy: NaN). Every position, every path (alone, summary, DataFrame)."""
    ep = pytest.importorskip("empyrical")
    base = _base(n)
    for i in range(n):
        r = base.copy()
        r[i] = value
        with np.errstate(all="ignore"):
            want = ep.annual_volatility(r)
        assert np.isnan(want)
        assert np.isnan(M.annual_volatility(r)), i
        assert np.isnan(float(M.summary(r)["annual_volatility"])), i
        assert np.isnan(M.sharpe_ratio(r)), i


@pytest.mark.parametrize("position", [0, 1, 30, 58, 59])
def test_volatility_and_sharpe_of_returns_whose_squares_overflow_are_empyricals(position):
    """Returns of ~1e200 (squares beyond the largest double): the spread overflows to
    inf, as empyrical's std (Sharpe mean / inf = 0, as empyrical's); an overflow in the
    first row gave NaN (Welford's inf * 0), in the others inf."""
    ep = pytest.importorskip("empyrical")
    r = _base()
    r[position] = 1e200
    with np.errstate(all="ignore"):
        vol, sharpe = ep.annual_volatility(r), ep.sharpe_ratio(r)
    assert vol == np.inf and sharpe == 0.0
    assert M.annual_volatility(r) == vol
    assert M.sharpe_ratio(r) == sharpe
    s = M.summary(r)
    assert float(s["annual_volatility"]) == vol and float(s["sharpe_ratio"]) == sharpe


def test_parametric_var_of_a_minus_inf_return_does_not_depend_on_its_position():
    """mean -inf plus an M2 of NaN or inf by position: parametric VaR was -inf or NaN."""
    base = _base(40)
    got = set()
    for i in range(40):
        r = base.copy()
        r[i] = -np.inf
        v = float(M.value_at_risk(r, method="parametric"))
        got.add("nan" if math.isnan(v) else v)
    assert got == {"nan"}


# ---- ql.measures: DFA of exactly linear profiles ---------------------------------------

# 0/1 series whose every box of some sizes holds one value (a straight profile: F(n) = 0
# exactly); the mean 1/6, 6/11 ... is no binary fraction, so the kernel's residual
# variance is rounding noise (~1e-31), not 0, and log F ~ -35 dominates the fit
_LINEAR_BOXES = [
    [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1],
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0],
]


@pytest.mark.parametrize("x", _LINEAR_BOXES)
def test_dfa_leaves_out_box_sizes_of_straight_profiles_whatever_the_mean(x):
    """The rule test_peers_measures pins for a step of mean 1/2 (F(n) = 0: that size is
    left out, antropy's rule) must not depend on the mean being a binary fraction: here
    dfa gave 9.34, 18.7, 23.3 against 0.262, 2.11, 2.08 from the exact logs."""
    nvals = [4, 5, 6, 7, 8, 9]
    logs = _exact_dfa_logs(np.asarray(x, float), nvals)
    ok = np.isfinite(logs)
    want = np.polyfit(np.log(nvals)[ok], logs[ok], 1)[0]
    assert ql.measures.dfa(np.asarray(x, float), nvals=nvals) == pytest.approx(want, rel=1e-9)
