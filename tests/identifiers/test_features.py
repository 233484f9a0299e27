"""Per-account features of extract() on a hand-built dataset with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from linkage.dataset import Dataset
from linkage.identifiers import FEATURE_COLUMNS, Identifiers, extract
from linkage.settings import IdentifierSettings


def _s(values: list[str | None]) -> pd.Series:
    return pd.Series(values, dtype="string")


def hand_dataset() -> Dataset:
    """Three accounts: a scripted farm account, a diurnal person, an idle sign-up."""
    accounts = pd.DataFrame(
        {
            "account_id": _s(["farm", "person", "idle"]),
            "created_at": pd.to_datetime(
                ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"], utc=True
            ),
            "email": _s(["j.doe+7@gmail.com", "ann@uni.edu", None]),
            "signup_ip": _s(["1.2.3.4", "5.6.7.8", None]),
            "device_fingerprint": _s(["DEV1", None, None]),
            "payment_fingerprint": _s(["card1", "card2", None]),
            "user_agent": _s(["python-requests/2.31.0", "weird agent", None]),
            "_row": np.arange(3),
        }
    )
    farm_ts = pd.date_range("2024-01-02", periods=24, freq="h", tz="UTC")
    person_ts = pd.to_datetime(
        ["2024-01-02T09:00:00Z", "2024-01-02T09:30:00Z", "2024-01-03T10:00:00Z"], utc=True
    )
    n_farm = len(farm_ts)
    requests = pd.DataFrame(
        {
            "account_id": _s(["farm"] * n_farm + ["person"] * 3),
            "ts": pd.DatetimeIndex(list(farm_ts) + list(person_ts)).as_unit("ns"),
            "ip": _s([f"10.0.0.{i % 4}" for i in range(n_farm)] + ["5.6.7.8", None, "junk"]),
            "device_fingerprint": _s(["dev1"] * n_farm + ["p1", "P1 ", "p2"]),
            "prompt": _s(
                [
                    f"Explain step by step how to solve coding task number {i}."
                    for i in range(n_farm)
                ]
                + ["What is the capital of France?", None, "Write a poem about the sea."]
            ),
            "response_tokens": pd.array([100] * n_farm + [10, None, 20], dtype="Int64"),
            "model": _s(["m1"] * n_farm + ["m1"] * 3),
            "_row": np.arange(n_farm + 3),
        }
    )
    return Dataset(accounts=accounts, requests=requests)


@pytest.fixture(scope="module")
def ids() -> Identifiers:
    return extract(hand_dataset(), settings=IdentifierSettings())


def test_every_account_has_a_float_row(ids: Identifiers) -> None:
    f = ids.features
    assert f.index.tolist() == ["farm", "person", "idle"]
    assert f.index.name == "account_id"
    assert list(f.columns[: len(FEATURE_COLUMNS)]) == list(FEATURE_COLUMNS)
    assert (f.dtypes == np.float64).all()


def test_idle_account_has_zero_requests_and_nan_rates(ids: Identifiers) -> None:
    idle = ids.features.loc["idle"]
    assert idle["n_requests"] == 0
    for c in ("active_days", "req_per_active_hour", "ip_churn", "hour_entropy", "first_ts"):
        assert np.isnan(idle[c]), c
    assert idle["payment_missing"] == 1.0
    assert idle["device_missing"] == 1.0
    assert np.isnan(idle["email_freemail"])  # no e-mail: unknown, not "no"
    assert idle["created_ts"] == pd.Timestamp("2024-01-05T00:00:00Z").timestamp()


def test_farm_account_features(ids: Identifiers) -> None:
    farm = ids.features.loc["farm"]
    assert farm["n_requests"] == 24
    assert math.isclose(farm["hour_entropy"], math.log2(24))
    assert farm["active_days"] == 1
    assert farm["req_per_active_hour"] == 1
    assert farm["n_ips"] == 4
    assert farm["ip_churn"] == 4 / 24
    assert farm["n_subnets"] == 1
    assert farm["n_devices"] == 1
    assert farm["device_churn"] == 1 / 24
    assert farm["mean_response_tokens"] == 100
    assert farm["email_alias"] == 1.0 and farm["email_freemail"] == 1.0
    assert farm["email_disposable"] == 0.0
    assert farm["payment_missing"] == 0.0 and farm["device_missing"] == 0.0
    assert farm["first_ts"] == pd.Timestamp("2024-01-02T00:00:00Z").timestamp()
    assert farm["signup_to_first_hours"] == 24.0
    assert 0 <= farm["template_top_share"] <= 1
    assert farm["template_repetition"] == 1 - farm["n_templates"] / 24


def test_person_features_use_known_values_only(ids: Identifiers) -> None:
    person = ids.features.loc["person"]
    assert person["n_requests"] == 3
    assert person["n_ips"] == 1 and person["ip_churn"] == 1.0  # one known valid IP of 3 rows
    assert person["n_devices"] == 2  # "p1" and "P1 " are one device
    assert person["device_churn"] == 2 / 3
    assert person["mean_response_tokens"] == 15.0
    assert person["active_days"] == 2
    assert person["req_per_active_hour"] == 1.5
    assert person["reasoning_share"] <= ids.features.loc["farm", "reasoning_share"]
    assert np.isnan(person["pivot_lag_hours"])


def test_template_features_consistent_with_request_template(ids: Identifiers) -> None:
    rt = ids.request_template
    assert rt.index.equals(hand_dataset().requests.index)
    farm_rt = rt.iloc[:24]
    top = farm_rt.value_counts().iloc[0] / farm_rt.notna().sum()
    assert ids.features.loc["farm", "template_top_share"] == pytest.approx(top)
    assert ids.features.loc["farm", "n_templates"] == farm_rt.nunique()
