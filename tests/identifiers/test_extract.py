"""extract(): edges contract, NA and freemail handling, counts, permutation invariance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linkage.dataset import Dataset
from linkage.identifiers import Identifiers, extract, normalize_ip
from linkage.identifiers.kinds import KINDS
from linkage.settings import IdentifierSettings
from tests.identifiers.test_features import hand_dataset

SETTINGS = IdentifierSettings()


@pytest.fixture(scope="module")
def ds() -> Dataset:
    d = hand_dataset()
    d.identifiers = pd.DataFrame(
        {
            "account_id": pd.Series(["farm", "person", "farm", "idle", "farm"], dtype="string"),
            "kind": pd.Series(["phone", "phone", "phone", "wallet", None], dtype="string"),
            "value": pd.Series(["h1", "h1", "h1", "w9", "zz"], dtype="string"),
            "ts": pd.to_datetime(
                ["2024-01-01T00:00:00Z", None, "2024-01-03T00:00:00Z", None, None], utc=True
            ),
            "_row": np.arange(5),
        }
    )
    return d


@pytest.fixture(scope="module")
def ids(ds: Dataset) -> Identifiers:
    return extract(ds, settings=SETTINGS)


def _edge(ids: Identifiers, account: str, kind: str) -> pd.DataFrame:
    e = ids.edges
    return e[(e["account_id"] == account) & (e["kind"] == kind)]


def test_edge_schema(ids: Identifiers) -> None:
    e = ids.edges
    assert list(e.columns) == ["account_id", "kind", "value", "n", "first_ts", "last_ts"]
    assert e["n"].dtype == np.int64
    assert str(e["first_ts"].dtype) == "datetime64[ns, UTC]"
    assert not e[["account_id", "kind", "value"]].isna().any().any()
    assert not e.duplicated(["account_id", "kind", "value"]).any()
    assert set(e["kind"]) - {k.name for k in KINDS} == {"x:phone", "x:wallet"}


def test_ip_edges_union_request_and_signup_and_count_n(ids: Identifiers) -> None:
    farm = _edge(ids, "farm", "ip").set_index("value")["n"]
    # 24 requests over 10.0.0.0-3 (6 each) + the sign-up IP once
    assert farm.to_dict() == {
        "1.2.3.4": 1,
        "10.0.0.0": 6,
        "10.0.0.1": 6,
        "10.0.0.2": 6,
        "10.0.0.3": 6,
    }
    person = _edge(ids, "person", "ip")
    # sign-up 5.6.7.8 + one request from it; the NA and "junk" requests make no edge
    assert person["value"].tolist() == ["5.6.7.8"] and person["n"].tolist() == [2]
    assert person["first_ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert person["last_ts"].iloc[0] == pd.Timestamp("2024-01-02T09:00:00Z")
    subnets = _edge(ids, "farm", "subnet").set_index("value")["n"].to_dict()
    assert subnets == {"1.2.3.0/24": 1, "10.0.0.0/24": 24}


def test_na_values_make_no_edges(ids: Identifiers) -> None:
    assert ids.edges[ids.edges["account_id"] == "idle"]["kind"].tolist() == ["x:wallet"]
    assert _edge(ids, "person", "device").set_index("value")["n"].to_dict() == {"p1": 2, "p2": 1}


def test_email_edges_canonical_and_no_freemail_domain(ids: Identifiers) -> None:
    assert _edge(ids, "farm", "email")["value"].tolist() == ["jdoe@gmail.com"]
    assert _edge(ids, "farm", "email_domain").empty  # gmail.com links nobody
    assert _edge(ids, "person", "email_domain")["value"].tolist() == ["uni.edu"]


def test_signup_attribute_edges(ids: Identifiers) -> None:
    assert _edge(ids, "farm", "device").set_index("value")["n"].to_dict() == {"dev1": 25}
    assert _edge(ids, "farm", "payment")["n"].tolist() == [1]
    assert _edge(ids, "farm", "user_agent")["value"].tolist() == ["python-requests/2"]
    assert _edge(ids, "person", "user_agent").empty  # "other" is not an identifier


def test_extra_identifier_edges(ids: Identifiers) -> None:
    phone = ids.edges[ids.edges["kind"] == "x:phone"].set_index("account_id")
    assert phone.loc["farm", "n"] == 2 and phone.loc["person", "n"] == 1
    assert phone.loc["farm", "first_ts"] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert phone.loc["farm", "last_ts"] == pd.Timestamp("2024-01-03T00:00:00Z")
    assert pd.isna(phone.loc["person", "first_ts"])
    assert "zz" not in set(ids.edges["value"])  # row with unknown kind


def test_template_edges_and_table(ids: Identifiers) -> None:
    t = ids.templates
    assert {"template_id", "skeleton", "example", "n_requests", "n_accounts"} <= set(t.columns)
    tpl_edges = ids.edges[ids.edges["kind"] == "template"]
    assert tpl_edges["n"].sum() == ids.request_template.notna().sum()
    per_tpl = tpl_edges.groupby("value")["account_id"].nunique()
    assert t.set_index("template_id")["n_accounts"].loc[per_tpl.index].tolist() == per_tpl.tolist()


def test_extract_invariant_to_request_order(ds: Dataset, ids: Identifiers) -> None:
    rng = np.random.default_rng(7)
    req = ds.requests.iloc[rng.permutation(len(ds.requests))]
    other = extract(
        Dataset(accounts=ds.accounts, requests=req, identifiers=ds.identifiers), settings=SETTINGS
    )
    pd.testing.assert_frame_equal(other.features, ids.features)

    # template ids may be named differently; compare edges with template values mapped
    # to the set of request rows (by _row) they cover
    def canon(x: Identifiers, d: pd.DataFrame) -> pd.DataFrame:
        rows = pd.Series(d["_row"].to_numpy(), index=d.index)
        members = rows.groupby(x.request_template).apply(lambda r: tuple(sorted(r)))
        e = x.edges.copy()
        is_t = e["kind"] == "template"
        e.loc[is_t, "value"] = e.loc[is_t, "value"].map(lambda v: str(members[v]))
        return e.sort_values(["kind", "account_id", "value"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(canon(other, req), canon(ids, ds.requests))


def test_empty_requests_and_missing_optional_columns() -> None:
    d = hand_dataset()
    accounts = d.accounts.drop(columns=["device_fingerprint", "payment_fingerprint", "user_agent"])
    requests = d.requests.iloc[:0].drop(columns=["device_fingerprint"])
    out = extract(Dataset(accounts=accounts, requests=requests), settings=SETTINGS)
    assert (out.features["n_requests"] == 0).all()
    assert out.features["payment_missing"].isna().all()  # dataset has no payment data
    assert set(out.edges["kind"]) == {"ip", "subnet", "email", "email_domain"}
    assert len(out.request_template) == 0


def test_extract_on_a_generated_world(tmp_path: Path) -> None:
    """Integration: fixture world → contract files → ingest → extract."""
    from linkage.fixtures import make_world, write_world
    from linkage.identifiers import FREEMAIL_DOMAINS
    from linkage.ingest import load_dataset

    write_world(make_world(scale=0.02, seed=1), tmp_path)
    d = load_dataset(tmp_path)
    out = extract(d, settings=SETTINGS, seed=1)
    assert out.features.index.tolist() == d.accounts["account_id"].tolist()
    assert (out.features["n_requests"].sum()) == len(d.requests)
    assert out.request_template.index.equals(d.requests.index)
    e = out.edges
    assert set(e["account_id"]) <= set(d.accounts["account_id"])
    assert not e[["account_id", "kind", "value"]].isna().any().any()
    assert {"ip", "subnet", "email", "device", "template"} <= set(e["kind"])
    assert not set(e.loc[e["kind"] == "email_domain", "value"]) & FREEMAIL_DOMAINS
    ip_rows = e.loc[e["kind"] == "ip", "n"].sum()
    valid_request_ips = normalize_ip(d.requests["ip"]).notna().sum()
    valid_signup_ips = normalize_ip(d.accounts["signup_ip"]).notna().sum()
    assert ip_rows == valid_request_ips + valid_signup_ips
