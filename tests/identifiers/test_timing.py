"""Per-account timing features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from linkage.identifiers import account_timing
from linkage.identifiers.timing import model_releases


def _ts(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True))


def test_round_the_clock_account_has_max_hour_entropy() -> None:
    ts = pd.Series(pd.date_range("2024-03-01", periods=24, freq="h", tz="UTC"))
    out = account_timing(pd.Series(["a"] * 24), ts)
    assert math.isclose(out.loc["a", "hour_entropy"], math.log2(24))
    assert out.loc["a", "active_days"] == 1
    assert out.loc["a", "req_per_active_hour"] == 1


def test_diurnal_and_bursty_accounts() -> None:
    # b: 4 requests in one clock hour on 3 different days, always 09:xx UTC
    ts = [f"2024-03-0{d}T09:{m:02d}:00Z" for d in (1, 2, 3) for m in (0, 10, 20, 30)]
    # c: half at 09h, half at 21h
    ts += ["2024-03-01T09:00:00Z", "2024-03-01T21:00:00Z"]
    out = account_timing(pd.Series(["b"] * 12 + ["c"] * 2), _ts(ts))
    assert out.loc["b", "hour_entropy"] == 0.0
    assert out.loc["b", "active_days"] == 3
    assert out.loc["b", "req_per_active_hour"] == 4.0
    assert math.isclose(out.loc["c", "hour_entropy"], 1.0)
    assert out.loc["c", "first_ts"] == pd.Timestamp("2024-03-01T09:00:00Z").timestamp()
    assert out.loc["c", "last_ts"] == pd.Timestamp("2024-03-01T21:00:00Z").timestamp()


def test_pivot_lag_measured_from_release_of_newest_model_used() -> None:
    rows = [
        # the old model is there from the start: it has no release
        ("x", "2024-01-01T00:00:00Z", "old"),
        ("y", "2024-01-01T01:00:00Z", "old"),
        # "new" first appears on day 50 (after 5% of the 100-day span): released then
        ("x", "2024-02-20T00:00:00Z", "new"),
        ("y", "2024-02-20T06:00:00Z", "new"),  # y pivots 6 h after release
        ("y", "2024-02-25T00:00:00Z", "new"),
        ("z", "2024-04-10T00:00:00Z", "old"),  # z never used a released model
        ("x", "2024-04-10T00:00:00Z", "newer"),  # "newer" released 2024-04-10
    ]
    acc, ts, model = zip(*rows, strict=True)
    out = account_timing(pd.Series(acc), _ts(list(ts)), pd.Series(model))
    assert out.loc["x", "pivot_lag_hours"] == 0.0  # x's newest released model is "newer"
    assert out.loc["y", "pivot_lag_hours"] == 6.0
    assert np.isnan(out.loc["z", "pivot_lag_hours"])


def test_model_present_from_the_start_is_not_released() -> None:
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-30", "2024-02-01"], utc=True)
    ns = np.asarray(ts.as_unit("ns").asi8)
    release = model_releases(np.array([0, 1, 2, 0]), ns, 3)
    assert release[0] == np.iinfo(np.int64).min  # first seen at t0
    assert release[1] == np.iinfo(np.int64).min  # 1 day into 31: inside the first 5%
    assert release[2] == ns[2]


def test_accounts_without_requests_get_nan() -> None:
    out = account_timing(
        pd.Series(["a"]), _ts(["2024-01-01T00:00:00Z"]), accounts=pd.Index(["a", "idle"])
    )
    assert out.index.tolist() == ["a", "idle"]
    assert out.loc["idle"].isna().all()
    assert out.loc["a", "hour_entropy"] == 0.0
