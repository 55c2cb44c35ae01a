"""Session 49 outside probe: broken files, hostile names and faults through the file
and name paths (load_csv, ingest/open, deployments, reports). Each test is a fault the
probe found; fixtures are written to tmp_path."""
import numpy as np
import pandas as pd
import pytest

import quantlab as ql

BARS = pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
                     "open": [10, 10.5, 11.], "high": [11, 11.2, 11.5],
                     "low": [9.5, 10.1, 10.8], "close": [10.5, 11, 11.2],
                     "volume": [1000, 1200, 900.]})


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "Asia/Tokyo"])
@pytest.mark.parametrize("extra", [False, True], ids=["bars", "with_text_column"])
def test_ingest_parquet_with_tz_aware_midnight_dates_reads_them_as_naive_utc(tmp_path, zone,
                                                                             extra):
    # a tz-aware date column whose times are all midnight (daily bars stamped in UTC) was
    # written as "2024-01-02Z" on the text path and refused as an unparsable date
    df = BARS.assign(date=BARS["date"].dt.tz_localize(zone))
    if extra:
        df = df.assign(note=["a", "b", "c"])
    df.to_parquet(tmp_path / "ACME.parquet")
    ds = ql.data.open(ql.store.ingest(tmp_path / "ACME.parquet", tmp_path / "store"))
    want = BARS["date"].dt.tz_localize(zone).dt.tz_convert("UTC").dt.tz_localize(None)
    np.testing.assert_array_equal(ds["time"].values, want.to_numpy("datetime64[ns]"))
    np.testing.assert_array_equal(ds["close"].values.ravel(), BARS["close"].to_numpy())


def test_ingest_long_parquet_with_tz_aware_utc_dates_reads_every_asset(tmp_path):
    df = pd.concat([BARS.assign(symbol="X"), BARS.assign(symbol="Y", close=BARS["close"] * 1.01,
                                                         high=BARS["high"] * 1.01)])
    df.assign(date=df["date"].dt.tz_localize("UTC")).to_parquet(tmp_path / "long.parquet")
    ds = ql.data.open(ql.store.ingest(tmp_path / "long.parquet", tmp_path / "store"))
    assert sorted(ds["asset"].values.tolist()) == ["X", "Y"]
    np.testing.assert_array_equal(ds["time"].values, BARS["date"].to_numpy("datetime64[ns]"))
