from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from linkage.settings import Settings
from linkage.share.bundle_store import IndicatorStore, read_bundle
from linkage.share.export import export_bundle, write_bundle
from linkage.share.hashing import PartnershipKey
from linkage.share.match import EVIDENCE_KIND, PartnerMatcher
from linkage.signup import SignupScorer, record_identifiers
from linkage.store.rundir import load_run
from tests.share.conftest import FARM_VALUES, NAT_SUBNET, TEMPLATE, make_tiny_run

SETTINGS = Settings()
FARM_SIGNUP = {  # the farm's next account, typed differently at provider B
    "account_id": "new1",
    "created_at": "2026-12-01T10:00:00Z",
    "email": "Farm.Boss+b2@GoogleMail.com",
    "signup_ip": "203.0.113.200",
    "payment_fingerprint": " pay_farmcard_1 ",
    "device_fingerprint": "FP_KIT_777",
}


def _matcher(run_dir: Path, key: PartnershipKey, *, confidence: float = 0.8) -> PartnerMatcher:
    bundle, _ = export_bundle(load_run(run_dir), key)
    parsed = read_bundle(json.dumps(json.loads(bundle.serialize())), key=key)
    return PartnerMatcher.from_bundle(parsed, key, partner="provider A", confidence=confidence)


def _keys(record: dict) -> list[tuple[str, str]]:
    return record_identifiers(record, settings=SETTINGS)[0]


def test_canonical_values_match_across_providers(tiny_run, key) -> None:
    m = _matcher(tiny_run, key).match(_keys(FARM_SIGNUP))
    assert m is not None and m.partner == "provider A"
    assert set(m.kinds) == {"payment", "email", "subnet", "device"}
    assert set(m.families) == {"payment", "email", "network", "device"}
    assert m.score == pytest.approx(1 - 0.2**4)


def test_evidence_names_partner_and_kinds_never_values(tiny_run, key) -> None:
    ev = _matcher(tiny_run, key).match(_keys(FARM_SIGNUP)).evidence().to_dict()
    assert ev["kind"] == EVIDENCE_KIND and "provider A" in ev["summary"]
    assert ev["details"]["matched_kinds"] == ["payment", "email", "subnet", "device"]
    assert ev["details"]["verdict"] == "blocked" and ev["details"]["confidence"] == 0.8
    text = json.dumps(ev)
    assert not any(v in text for v in FARM_VALUES.values())


def test_one_personal_family_alone_is_never_a_block(tiny_run, key) -> None:
    m = _matcher(tiny_run, key, confidence=1.0).match([("payment", FARM_VALUES["payment"])])
    assert m.score == pytest.approx(SETTINGS.score.block_threshold - 0.1)


def test_shared_by_nature_alone_is_context_only(tiny_run, key) -> None:
    matcher = _matcher(tiny_run, key, confidence=1.0)
    for keys in (
        [("template", TEMPLATE)],
        [("subnet", FARM_VALUES["subnet"])],
        [("email_domain", FARM_VALUES["email_domain"]), ("user_agent", "chrome/131")],
    ):
        m = matcher.match(keys)
        assert m is not None and m.score <= SETTINGS.score.review_threshold / 2
    # the carrier NAT the farm shares with strangers was never exported
    assert matcher.match([("subnet", NAT_SUBNET)]) is None


def test_two_families_corroborate_to_block_and_confidence_weighs(tiny_run, key) -> None:
    keys = [("payment", FARM_VALUES["payment"]), ("email", FARM_VALUES["email"])]
    assert _matcher(tiny_run, key, confidence=1.0).match(keys).score == pytest.approx(1.0)
    assert _matcher(tiny_run, key, confidence=0.5).match(keys).score == pytest.approx(0.75)


def test_a_bundle_under_another_key_matches_nothing(tiny_run, key) -> None:
    foreign, _ = export_bundle(load_run(tiny_run), PartnershipKey(b"c" * 32))
    parsed = read_bundle(json.dumps(json.loads(foreign.serialize())), key=None)
    m = PartnerMatcher.from_bundle(parsed, key, partner="?", confidence=1.0)
    assert m.match(_keys(FARM_SIGNUP)) is None


def test_expired_indicators_stop_acting(tiny_run, key) -> None:
    matcher = _matcher(tiny_run, key)
    later = (datetime.now(UTC) + timedelta(days=91)).timestamp()
    assert matcher.match(_keys(FARM_SIGNUP)) is not None
    assert matcher.match(_keys(FARM_SIGNUP), now=later) is None


def test_match_frame_gives_best_match_per_account(tiny_run, key) -> None:
    idents = pd.DataFrame(
        {
            "account_id": ["x", "x", "y", "z"],
            "kind": ["payment", "email", "template", "subnet"],
            "value": [FARM_VALUES["payment"], FARM_VALUES["email"], TEMPLATE, "10.0.0.0/24"],
        }
    )
    out = _matcher(tiny_run, key).match_frame(idents).set_index("account_id")
    assert list(out.index) == ["x", "y"]
    assert out.loc["x", "families"] == 2 and out.loc["y", "kinds"] == "template"


def test_signup_scorer_blocks_the_farm_with_a_partner_bundle(tmp_path, key, key_file) -> None:
    a_run = make_tiny_run(tmp_path / "a")
    b_run = make_tiny_run(tmp_path / "b", farm_level="clear")  # B knows nothing of this farm
    b_clean = load_run(b_run)
    b_clean.clusters[0]["score"] = 0.0
    alone = SignupScorer(b_clean)
    assert alone.partners is None
    assert alone.score_one(FARM_SIGNUP).level != "block"
    bundle, _ = export_bundle(load_run(a_run), key)
    IndicatorStore(b_run).import_bundle(
        write_bundle(bundle, tmp_path / "b.json"), key_file=key_file, partner="provider A"
    )
    run = load_run(b_run)
    run.clusters[0]["score"] = 0.0
    res = SignupScorer(run).score_one(FARM_SIGNUP)
    assert res.level == "block"
    assert any(e.kind == EVIDENCE_KIND and "provider A" in e.summary for e in res.evidence)
    stranger = {
        **FARM_SIGNUP,
        "account_id": "s",
        "email": "someone@else.example",
        "payment_fingerprint": "pay_other",
        "device_fingerprint": "fp_other",
    }
    assert SignupScorer(run).score_one(stranger).level == "clear"
    frame = SignupScorer(run).score_frame(pd.DataFrame([FARM_SIGNUP, stranger]))
    assert list(frame["level"]) == ["block", "clear"]


def test_withdrawn_indicators_stop_acting_at_signup(tmp_path, key, key_file) -> None:
    b_run = make_tiny_run(tmp_path / "b", farm_level="clear")
    store = IndicatorStore(b_run)
    t0 = datetime.now(UTC)
    first, _ = export_bundle(load_run(make_tiny_run(tmp_path / "a1")), key, now=t0)
    store.import_bundle(write_bundle(first, tmp_path / "1.json"), key_file=key_file, partner="A")
    assert PartnerMatcher.for_run(b_run).match(_keys(FARM_SIGNUP)) is not None
    gone, _ = export_bundle(
        load_run(make_tiny_run(tmp_path / "a2", farm_level="clear")),
        key,
        now=t0 + timedelta(seconds=1),
    )
    store.import_bundle(
        write_bundle(gone, tmp_path / "2.json"),
        key_file=key_file,
        partner="A",
        now=t0 + timedelta(seconds=2),
    )
    assert not PartnerMatcher.for_run(b_run)


def test_a_missing_key_file_disables_the_partner_without_breaking_scoring(
    tmp_path, key, key_file
) -> None:
    b_run = make_tiny_run(tmp_path / "b", farm_level="clear")
    bundle, _ = export_bundle(load_run(make_tiny_run(tmp_path / "a")), key)
    IndicatorStore(b_run).import_bundle(
        write_bundle(bundle, tmp_path / "1.json"), key_file=key_file, partner="A"
    )
    key_file.unlink()
    scorer = SignupScorer.from_run(b_run)
    assert scorer.partners is None
    assert all(e.kind != EVIDENCE_KIND for e in scorer.score_one(FARM_SIGNUP).evidence)


WAVE_KEYS = [("email_domain", FARM_VALUES["email_domain"]), ("subnet", FARM_VALUES["subnet"])]


def test_a_wave_of_matching_signups_corroborates_the_partner(tiny_run, key) -> None:
    matcher = _matcher(tiny_run, key)  # domain + range at confidence 0.8: 1 - 0.2**2
    t0 = 1_780_000_000.0
    first = matcher.match(WAVE_KEYS, t=t0, record=True, account_id="w0")
    assert "wave" not in first.families and first.wave == 1
    for i in range(1, 4):
        matcher.match(WAVE_KEYS, t=t0 + 600 * i, record=True, account_id=f"w{i}")
    fifth = matcher.match(WAVE_KEYS, t=t0 + 3000, record=True, account_id="w4")
    assert fifth.wave == 5 and fifth.families["wave"] == 0.8
    assert fifth.score == pytest.approx(1 - (1 - first.score) * 0.2)
    assert "5 sign-ups on it" in fifth.evidence().summary
    # rescoring an account counts it once; outside the window the wave is over
    again = matcher.match(WAVE_KEYS, t=t0 + 3000, record=True, account_id="w4")
    assert again.wave == 5
    late = matcher.match(WAVE_KEYS, t=t0 + 3000 + 7 * 3600, record=True, account_id="w5")
    assert "wave" not in late.families


def test_context_only_matches_never_make_a_wave(tiny_run, key) -> None:
    matcher = _matcher(tiny_run, key, confidence=1.0)
    t0 = 1_780_000_000.0
    res = [
        matcher.match(
            [("subnet", FARM_VALUES["subnet"])], t=t0 + i, record=True, account_id=f"n{i}"
        )
        for i in range(20)
    ]
    assert all(r.wave == 0 and r.score <= SETTINGS.score.review_threshold / 2 for r in res)


def test_existing_accounts_that_match_get_an_evidence_item(tiny_run, key) -> None:
    from linkage.share.match import match_accounts

    accounts = pd.DataFrame(
        [
            FARM_SIGNUP,
            {
                **FARM_SIGNUP,
                "account_id": "old2",
                "email": "x@y.example",
                "payment_fingerprint": None,
                "device_fingerprint": None,
                "signup_ip": "10.1.2.3",
            },
        ]
    )
    index = pd.DataFrame(
        {"account_id": ["old2"], "kind": ["subnet"], "value": [FARM_VALUES["subnet"]]}
    )
    out = match_accounts(_matcher(tiny_run, key), accounts=accounts, index=index).set_index(
        "account_id"
    )
    assert list(out.index) == ["new1", "old2"]
    assert out.loc["new1", "level"] == "block" and out.loc["old2", "level"] == "clear"
    ev = json.loads(out.loc["new1", "evidence"])
    assert ev["kind"] == EVIDENCE_KIND and ev["details"]["partner"] == "provider A"


def test_a_shared_directory_serves_runs_without_indicators(
    tmp_path, key, key_file, monkeypatch
) -> None:
    shared = tmp_path / "partners"
    shared.mkdir()
    bundle, _ = export_bundle(load_run(make_tiny_run(tmp_path / "a")), key)
    IndicatorStore(shared).import_bundle(
        write_bundle(bundle, tmp_path / "b.json"), key_file=key_file, partner="provider A"
    )
    b_run = load_run(make_tiny_run(tmp_path / "b", farm_level="clear"))
    assert SignupScorer(b_run).partners is None
    monkeypatch.setenv("LINKAGE_SHARE_DIR", str(shared))
    assert SignupScorer(b_run).partners.n_indicators == 1
