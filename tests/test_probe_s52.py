"""Session 52 outside probe: hostile input and faults in the optimiser, the risk manager and
the cross-market analyser. Each test is a fault the probe found."""
import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab import crossmarket, optimize, risk
from quantlab.errors import DataError


# ---- crossmarket: daily series stamped at other times of day or in other zones -------
@pytest.fixture(scope="module")
def two_closes(equities):
    def close(a):
        return equities["close"].sel(asset=a).to_series().dropna().iloc[:400]
    return close("IBM"), close("MSFT")


def _analyser(*series):
    cm = crossmarket.CrossMarketAnalyzer()
    for i, s in enumerate(series):
        cm.add_market_data("equity", f"S{i}", s)
    return cm


def _shifted(s, hours, tz=None):
    s = s.copy()
    s.index = s.index + pd.Timedelta(hours=hours)
    if tz is not None:
        s.index = s.index.tz_localize(tz)
    return s


@pytest.mark.parametrize("hours, tz", [(16, None), (16, "America/New_York"), (15, "Asia/Tokyo"),
                                       (0, "UTC")], ids=["16h", "new-york-16h", "tokyo-15h", "utc"])
def test_a_close_stamped_at_its_time_of_day_aligns_with_a_close_stamped_at_its_date(
        two_closes, hours, tz):
    # MSFT stamped 16:00 beside IBM stamped at midnight: 800 rows of the union, each
    # series forward filled onto the other's rows; the correlation was 0.0001, not 0.359
    a, b = two_closes
    want = _analyser(a, b).correlations().values[0, 1]
    assert want == pytest.approx(0.35898, abs=1e-5)
    cm = _analyser(a, _shifted(b, hours, tz))
    assert cm.prices().shape == (400, 2)
    assert cm.correlations().values[0, 1] == pytest.approx(want, rel=1e-12)
    assert cm.prices().indexes["time"].equals(_analyser(a, b).prices().indexes["time"])


def test_an_intraday_series_keeps_its_times(two_closes):
    a, _ = two_closes
    hourly = pd.concat([_shifted(a.iloc[:5], 10), _shifted(a.iloc[:5], 16)]).sort_index()
    got = _analyser(hourly).prices().indexes["time"]
    assert got.equals(pd.DatetimeIndex(hourly.index, name="time"))
