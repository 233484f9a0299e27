from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import stix2

from linkage.identifiers.kinds import VALUE_MAPS
from linkage.settings import Settings
from linkage.share.export import export_bundle, shared_clusters, write_bundle
from linkage.share.hashing import PartnershipKey
from linkage.store.rundir import load_run
from tests.share.conftest import FARM, FARM_VALUES, NAT_SUBNET, TEMPLATE, make_tiny_run


def _export(run_dir: Path, key: PartnershipKey, **kw) -> dict:
    bundle, _ = export_bundle(load_run(run_dir), key, **kw)
    return json.loads(bundle.serialize())


def test_bundle_is_stix21_with_one_indicator_per_blocked_cluster(tiny_run: Path, key) -> None:
    doc = _export(tiny_run, key, producer="provider A")
    parsed = stix2.parse(doc, allow_custom=True)
    inds = [o for o in parsed.objects if o.type == "indicator"]
    assert len(inds) == 1 and inds[0].spec_version == "2.1"
    ind = inds[0]
    assert (ind.x_linkage_score, ind.x_linkage_level, ind.x_linkage_verdict) == (
        0.97,
        "block",
        "blocked",
    )
    assert ind.pattern_type == "stix" and "x-linkage-identifier:payment_hmac IN" in ind.pattern
    hashes = ind.x_linkage_hashes
    for kind, value in FARM_VALUES.items():
        assert hashes[kind] == {key.digest(kind, value): 1.0}
    assert hashes["template"] == {key.digest("template", TEMPLATE): 0.6}
    assert "ip" not in hashes  # raw IPs never leave, only their /24
    # the carrier NAT: the farm is 6 of its 66 holders, under min_share: not an indicator
    assert key.digest("subnet", NAT_SUBNET) not in hashes["subnet"]


def test_bundle_holds_no_raw_value_or_account_id(tiny_run: Path, key) -> None:
    text = json.dumps(_export(tiny_run, key))
    for raw in [*FARM, *FARM_VALUES.values(), NAT_SUBNET, TEMPLATE, "cfarm", "203.0.113.9"]:
        assert raw not in text


def test_accounts_give_first_last_seen_and_cadence(tiny_run: Path, key) -> None:
    acc = pd.DataFrame(
        {"account_id": FARM, "created_at": [f"2026-02-0{i + 1}T10:0{i}:00Z" for i in range(6)]}
    )
    ind = _export(tiny_run, key, accounts=acc)["objects"][1]
    assert (ind["x_linkage_first_seen"], ind["x_linkage_last_seen"]) == ("2026-02-01", "2026-02-06")
    assert ind["x_linkage_cadence"]["span_days"] == 5
    assert ind["x_linkage_cadence"]["busiest_hour_utc"] == 10


def test_feedback_confirms_review_clusters_and_holds_back_reversed_ones(tmp_path: Path) -> None:
    review = load_run(make_tiny_run(tmp_path / "r", farm_level="review"))
    assert shared_clusters(review) == {}
    fb = pd.DataFrame({"account_id": FARM[:2], "verdict": ["confirmed_farm"] * 2})
    assert shared_clusters(review, feedback=fb) == {"cfarm": "confirmed_farm"}
    blocked = load_run(make_tiny_run(tmp_path / "b"))
    assert shared_clusters(blocked) == {"cfarm": "blocked"}
    fp = pd.DataFrame({"account_id": FARM[:1], "verdict": ["false_positive"]})
    assert shared_clusters(blocked, feedback=fp) == {}


def test_write_bundle_round_trips(tiny_run: Path, key, tmp_path: Path) -> None:
    bundle, summary = export_bundle(load_run(tiny_run), key)
    p = write_bundle(bundle, tmp_path / "b.json")
    assert json.loads(p.read_text())["id"] == summary["bundle_id"]
    assert summary["hashes_by_kind"]["payment"] == 1 and summary["indicators"] == 1


@pytest.mark.slow
def test_world_bundle_holds_no_raw_value_of_the_world(small_world: Path, small_run: Path) -> None:
    key = PartnershipKey.generate()
    run = load_run(small_run)
    acc = pd.read_parquet(small_world / "accounts.parquet")
    bundle, summary = export_bundle(run, key, accounts=acc)
    assert summary["indicators"] >= 1
    text = bundle.serialize()
    raw: set[str] = set()
    settings = Settings().identifiers
    for name in ("accounts", "signups"):
        df = pd.read_parquet(small_world / f"{name}.parquet")
        for c in df.columns:
            if c != "created_at":
                raw |= set(df[c].dropna().astype(str))
        em = VALUE_MAPS["email"].many(df["email"].astype("string"), settings)
        ip = VALUE_MAPS["ip"].many(df["signup_ip"].astype("string"), settings)
        for col in (em["email"], em["email_domain"], ip["ip"], ip["subnet"]):
            raw |= set(col.dropna().astype(str))
    req = pd.read_parquet(
        small_world / "requests.parquet", columns=["ip", "device_fingerprint", "prompt"]
    )
    raw |= set(req["ip"].dropna()) | set(req["device_fingerprint"].dropna())
    raw |= {p[:40] for p in req["prompt"].dropna().unique()}
    raw |= set(pd.read_parquet(small_world / "identifiers.parquet")["value"].dropna().astype(str))
    raw |= set(run.signup_index["value"].astype(str)) | {c["cluster_id"] for c in run.clusters}
    for c in run.clusters:
        for ev in c["evidence"]:
            raw |= {str(i["value"]) for i in ev["details"].get("identifiers", [])}
    raw = {v for v in raw if len(v) >= 6}
    assert len(raw) > 5000
    assert [v for v in raw if v in text] == []
