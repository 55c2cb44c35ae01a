"""The Lyapunov stream of live signals (``measures._LyapStream``, kernel ``lyap_push``):
one new value per series at a time, each window's nearest neighbours kept instead of
recomputed. At every bar its value must be ``roll_lyap``'s for the same window, bit for
bit: the rolling path's (the backtest's ``rolling_lyapunov_r``) and the one-window
path's over the rescaled window (what fractal_chaos's live signal computed before), on
random walks, real data, NaN holes, ties, constant and extreme series, and restarts."""
import copy

import numpy as np
import pytest

import quantlab as ql

m = ql.measures
k = m._k


def _stream(x, window, args, start=0):
    """The stream's value at every bar of x (time, series) from bar ``start`` (NaN before)."""
    s = m._LyapStream(window, *args)
    out = np.full(x.shape, np.nan)
    for t in range(start, x.shape[0]):
        out[t] = s.push(x[t])
    return out


def _window_last(x, t, window, args):
    """The value of the window ending at t as fractal_chaos's live signal computed it
    before the stream: the one-window roll_lyap over the rescaled window."""
    if t < window - 1:
        return np.full(x.shape[1], np.nan)
    w = np.ascontiguousarray(m._rescale(np.ascontiguousarray(x[t - window + 1:t + 1].T)))
    return k.roll_lyap(w, window, *args)[:, -1]


def _same(a, b):
    """Bit for bit, NaN where NaN (-inf and 0.0 are values)."""
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a),
                                                                   np.signbit(b))


def _walks(seed, T=420, n=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, n)) * 0.01
    x[:, 1] = np.round(np.cumsum(rng.standard_normal(T)) * 3) * 0.1   # a tick grid: ties
    x[:, 2] = np.round(rng.standard_normal(T))                         # exact ties
    x[:, 3] = np.diff(np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, T + 1)))
                              / 0.05) * 0.05) / 100                    # price ticks
    return x


ARGS = [(60, (5, 1, 5, 10)), (48, (3, 2, 3, 5)), (40, (1, 1, 4, 4)), (80, (10, 1, 10, 20)),
        (25, (5, 1, 5, 10))]


@pytest.mark.parametrize("window, args", ARGS, ids=[f"w{w}-{a}" for w, a in ARGS])
@pytest.mark.parametrize("seed", [0, 1])
def test_stream_equals_roll_lyap_at_every_bar(window, args, seed):
    x = _walks(seed)
    got = _stream(x, window, args)
    rolled = k.roll_lyap(np.ascontiguousarray(x.T), window, *args).T
    assert _same(got, rolled)
    assert np.isfinite(got[window - 1:]).all()
    for t in range(0, x.shape[0], 7):
        assert _same(got[t], _window_last(x, t, window, args)), t


def test_stream_nan_holes_inf_short_history_and_constant_series():
    x = _walks(2, T=300, n=8)
    x[100:103, 0] = np.nan            # a hole: NaN for the windows holding it, then rebuilt
    x[150, 1] = np.inf
    x[200, 2] = -np.inf
    x[:40, 3] = np.nan                # listed late
    x[:, 4] = 0.001                   # constant: every distance 0, -inf as roll_lyap
    x[120:260, 5] = 0.0               # a stretch of zero returns (ties at distance 0)
    x[::2, 6] = np.nan                # never a full window
    window, args = 60, (5, 1, 5, 10)
    got = _stream(x, window, args)
    want = np.array([_window_last(x, t, window, args) for t in range(x.shape[0])])
    assert _same(got, want)
    assert np.isnan(got[:window - 1]).all() and np.isnan(got[:, 6]).all()
    assert np.isnan(got[100:159, 0]).all() and np.isfinite(got[162:, 0]).all()
    assert (got[window - 1:, 4] == -np.inf).all()
    assert np.isnan(got[:39 + window, 3]).all() and np.isfinite(got[39 + window:, 3]).all()


def test_stream_extreme_values_are_rescaled_as_the_window_is():
    # beyond 2**±400 the window is rescaled by a power of two before roll_lyap (squares
    # of 1e150 overflow): those series are recomputed, the others keep the stream's bits
    x = _walks(3, T=260, n=5)
    x[100:, 0] *= 1e150
    x[:, 1] *= 1e-130                 # the whole series tiny
    x[150, 2] = 1e130                 # one huge value: rescaled while in the window
    window, args = 50, (5, 1, 5, 10)
    got = _stream(x, window, args)
    want = np.array([_window_last(x, t, window, args) for t in range(x.shape[0])])
    assert _same(got, want)
    assert np.isfinite(got[window - 1:, :4]).all()


@pytest.mark.parametrize("name", ["equities", "sp500_20"])
def test_stream_on_real_returns_equals_rolling_lyapunov_r(name):
    close = ql.data.load(name)["close"].transpose("time", "asset")
    r = ql.data.returns(close).values[-700:, :8]        # listings and gaps: NaN
    for window in (60, 252):
        want = m.rolling_lyapunov_r(r, window, emb_dim=5, lag=1, min_tsep=5,
                                    trajectory_len=10)
        got = _stream(r, window, (5, 1, 5, 10))
        assert _same(got, want), (name, window)
        assert np.isfinite(got).sum() > 1000


def test_stream_started_later_or_copied_gives_the_same_bits():
    # the state depends only on the last window: a stream started at any bar agrees
    # from its first full window on; a copy continues as the original
    x = _walks(4, T=400)
    window, args = 60, (5, 1, 5, 10)
    whole = _stream(x, window, args)
    for start in (1, 37, 200):
        later = _stream(x, window, args, start)
        assert _same(later[start + window - 1:], whole[start + window - 1:])
        assert np.isnan(later[:start + window - 1]).all()
    s = m._LyapStream(window, *args)
    for t in range(150):
        s.push(x[t])
    c = copy.deepcopy(s)
    a = np.array([s.push(x[t]) for t in range(150, 400)])
    b = np.array([c.push(x[t]) for t in range(150, 400)])
    assert _same(a, whole[150:]) and _same(b, whole[150:])


def test_lyapunov_r_equals_the_rolling_last_value_on_a_tick_grid():
    # the one-window path summed coordinates in pairs first: on a tick grid (near ties
    # of distance) it picked other neighbours than the rolling path in ~1 window in 5
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal((30, 300)) * 4) * 0.1
    rolled = k.roll_lyap(x, 100, 5, 1, 5, 10)
    for t in range(99, 300, 10):
        one = k.roll_lyap(np.ascontiguousarray(x[:, t - 99:t + 1]), 100, 5, 1, 5, 10)
        assert _same(one[:, -1], rolled[:, t]), t
    assert m.lyapunov_r(x[0, :100], emb_dim=5, min_tsep=5, trajectory_len=10) == \
        rolled[0, 99]


def test_stream_refuses_a_short_window_and_another_number_of_series():
    with pytest.raises(ValueError, match="needs at least"):
        m._LyapStream(24, 5, 1, 5, 10)
    x = _walks(3, T=80)[:, :3]
    ref = m._LyapStream(25, 5, 1, 5, 10)
    s = m._LyapStream(25, 5, 1, 5, 10)
    for t in range(40):
        ref.push(x[t]), s.push(x[t])
    for bad in (np.zeros(4), np.zeros(2), np.zeros((3, 1))):   # longer, shorter, 2-D
        with pytest.raises(ValueError, match=r"the stream has 3 series"):
            s.push(bad)
    for t in range(40, 80):       # a refused row left every window as it was
        assert _same(s.push(x[t]), ref.push(x[t]))


def test_stream_on_threads_over_blocks_of_series_gives_the_same_bits(monkeypatch):
    # series are independent: blocks of them on the pool (small blocks forced here)
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    monkeypatch.setattr(m._threads, "MIN_WORK", 1000)
    monkeypatch.setattr(m._threads, "MIN_BLOCK", 1000)
    blocks, run = [], m._threads.run
    monkeypatch.setattr(m._threads, "run",
                        lambda fn, parts, n: blocks.append((n, len(parts))) or run(fn, parts, n))
    x = np.hstack([_walks(5, T=200, n=6)] * 4)
    x[50:53, 7] = np.nan
    window, args = 60, (5, 1, 5, 10)
    got = _stream(x, window, args)
    assert all(n == 2 and p == 4 for n, p in blocks) and len(blocks) == 200
    rolled = k.roll_lyap(np.ascontiguousarray(x.T), window, *args).T
    assert _same(got, rolled) and _same(got[:, 18:], got[:, :6])
