from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from linkage.share.bundle_store import IndicatorStore, read_bundle
from linkage.share.export import export_bundle, write_bundle
from linkage.share.hashing import PartnershipKey, ShareError, write_key
from linkage.share.settings import ShareSettings
from linkage.store.rundir import load_run
from tests.share.conftest import make_tiny_run

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _bundle(run_dir: Path, key: PartnershipKey, out: Path, *, now: datetime = T0, **kw) -> Path:
    bundle, _ = export_bundle(load_run(run_dir), key, now=now, **kw)
    return write_bundle(bundle, out)


def test_import_keeps_indicators_privately_next_to_the_run(
    tiny_run, key, key_file, tmp_path
) -> None:
    b = _bundle(tiny_run, key, tmp_path / "b.json")
    store = IndicatorStore(tiny_run)
    res = store.import_bundle(b, key_file=key_file, partner="provider A", confidence=0.7, now=T0)
    assert (res["added"], res["active"], res["confidence"]) == (1, 1, 0.7)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    data = store.load()
    info = data["partners"]["provider A"]
    assert info["key_id"] == key.key_id and info["key_file"] == str(key_file.resolve())
    assert key.secret.hex() not in store.path.read_text()
    (ind,) = data["indicators"]["provider A"].values()
    assert ind["verdict"] == "blocked" and ind["valid_until"].startswith("2027-03-01")
    assert ind["imported_at"].startswith("2026-12-01T12:00")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"type": "indicator"}', "not a STIX bundle"),
        (b'{"type": "bundle", "id": "bundle--x"}', "no 'objects' list"),
        (b'{"type": "bundle", "id": "bundle--x", "objects": []}', "not written by"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_bundles_are_refused_and_change_nothing(
    tiny_run, key_file, tmp_path, payload: bytes, message: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(payload)
    with pytest.raises(ShareError, match=message):
        IndicatorStore(tiny_run).import_bundle(p, key_file=key_file, partner="A", now=T0)
    assert not IndicatorStore(tiny_run).path.exists()


def test_invalid_stix_and_tampered_hashes_are_refused(tiny_run, key, key_file, tmp_path) -> None:
    doc = json.loads(_bundle(tiny_run, key, tmp_path / "b.json").read_text())
    bad = json.loads(json.dumps(doc))
    bad["objects"][1]["pattern"] = "[not a pattern"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ShareError, match="malformed STIX"):
        read_bundle(p, key=key, now=T0)
    tampered = json.loads(json.dumps(doc))
    kind = next(iter(tampered["objects"][1]["x_linkage_hashes"]))
    tampered["objects"][1]["x_linkage_hashes"][kind] = {"f" * 64: 1.0}
    p.write_text(json.dumps(tampered))
    with pytest.raises(ShareError, match="pattern and x_linkage_hashes disagree"):
        read_bundle(p, key=key, now=T0)
    raw = json.loads(json.dumps(doc))
    raw["objects"][1]["x_linkage_hashes"][kind] = {"farmboss@gmail.com": 1.0}
    p.write_text(json.dumps(raw))
    with pytest.raises(ShareError, match="not 64 lower-case hex"):
        read_bundle(p, key=key, now=T0)


def test_a_bundle_under_another_key_is_refused(tiny_run, key_file, tmp_path) -> None:
    b = _bundle(tiny_run, PartnershipKey(b"c" * 32), tmp_path / "b.json")
    with pytest.raises(ShareError, match="another partnership key"):
        IndicatorStore(tiny_run).import_bundle(b, key_file=key_file, partner="A", now=T0)
    assert not IndicatorStore(tiny_run).path.exists()


def test_oversized_bundles_are_refused_unread(tiny_run, key, key_file, tmp_path) -> None:
    b = _bundle(tiny_run, key, tmp_path / "b.json")
    small = ShareSettings(max_bundle_bytes=1024)
    with pytest.raises(ShareError, match="over the limit"):
        IndicatorStore(tiny_run).import_bundle(
            b, key_file=key_file, partner="A", settings=small, now=T0
        )
    with pytest.raises(ShareError, match="hashes, over the limit"):
        read_bundle(b, key=key, settings=ShareSettings(max_hashes=3), now=T0)


def test_replayed_and_older_bundles_are_refused(tiny_run, key, key_file, tmp_path) -> None:
    store = IndicatorStore(tiny_run)
    old = _bundle(tiny_run, key, tmp_path / "old.json", now=T0)
    new = _bundle(tiny_run, key, tmp_path / "new.json", now=T0 + timedelta(hours=1))
    store.import_bundle(new, key_file=key_file, partner="A", now=T0 + timedelta(hours=2))
    before = store.path.read_bytes()
    with pytest.raises(ShareError, match="replay"):
        store.import_bundle(new, key_file=key_file, partner="A", now=T0 + timedelta(hours=2))
    with pytest.raises(ShareError, match="not after the last bundle"):
        store.import_bundle(old, key_file=key_file, partner="A", now=T0 + timedelta(hours=2))
    assert store.path.read_bytes() == before


def test_expired_indicators_are_refused(tiny_run, key, key_file, tmp_path) -> None:
    b = _bundle(tiny_run, key, tmp_path / "b.json", settings=ShareSettings(expiry_days=1))
    with pytest.raises(ShareError, match="expired"):
        IndicatorStore(tiny_run).import_bundle(
            b, key_file=key_file, partner="A", now=T0 + timedelta(days=2)
        )
    assert not IndicatorStore(tiny_run).path.exists()


def test_newer_snapshot_withdraws_what_it_no_longer_holds(
    tiny_run, key, key_file, tmp_path
) -> None:
    store = IndicatorStore(tiny_run)
    store.import_bundle(
        _bundle(tiny_run, key, tmp_path / "1.json"), key_file=key_file, partner="A", now=T0
    )
    reversed_run = make_tiny_run(tmp_path / "run2", farm_level="clear")  # the farm was reversed
    res = store.import_bundle(
        _bundle(reversed_run, key, tmp_path / "2.json", now=T0 + timedelta(hours=1)),
        key_file=key_file,
        partner="A",
        now=T0 + timedelta(hours=1),
    )
    assert (res["withdrawn"], res["active"], res["hashes"]) == (1, 0, 0)
    (ind,) = store.load()["indicators"]["A"].values()
    assert ind["revoked"] and "withdrawn" in ind["revoked_reason"]


def test_revoked_indicator_is_withdrawn(tiny_run, key, key_file, tmp_path) -> None:
    store = IndicatorStore(tiny_run)
    first = _bundle(tiny_run, key, tmp_path / "1.json")
    store.import_bundle(first, key_file=key_file, partner="A", now=T0)
    doc = json.loads(first.read_text())
    doc["id"] = "bundle--5a0f1c2e-0000-4000-8000-000000000001"
    doc["x_linkage_created"] = "2026-12-01T13:00:00.000Z"
    doc["x_linkage_snapshot"] = False
    doc["objects"][1]["revoked"] = True
    doc["objects"][1]["modified"] = "2026-12-01T13:00:00.000Z"
    p = tmp_path / "2.json"
    p.write_text(json.dumps(doc))
    res = store.import_bundle(p, key_file=key_file, partner="A", now=T0 + timedelta(hours=2))
    assert (res["revoked"], res["active"], res["hashes"]) == (1, 0, 0)


def test_partner_name_and_confidence_are_checked(tiny_run, key, key_file, tmp_path) -> None:
    b = _bundle(tiny_run, key, tmp_path / "b.json")
    with pytest.raises(ShareError, match="partner name"):
        IndicatorStore(tiny_run).import_bundle(b, key_file=key_file, partner="../x", now=T0)
    with pytest.raises(ShareError, match="confidence"):
        IndicatorStore(tiny_run).import_bundle(
            b, key_file=key_file, partner="A", confidence=2, now=T0
        )
    other = write_key(tmp_path / "short.key", PartnershipKey(b"z" * 32))
    with pytest.raises(ShareError, match="another partnership key"):
        IndicatorStore(tiny_run).import_bundle(b, key_file=other, partner="A", now=T0)
