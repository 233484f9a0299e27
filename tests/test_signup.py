"""Signup verification against a real run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from linkage.ingest import load_dataset
from linkage.signup import SignupScorer
from linkage.store import load_run


def _record(row: pd.Series) -> dict:
    return {
        k: (None if pd.isna(v) else (v.isoformat() if hasattr(v, "isoformat") else v))
        for k, v in row.items()
        if not k.startswith("_")
    }


def test_farm_signups_attach_to_their_farm_and_people_do_not(
    small_world: Path, small_run: Path
) -> None:
    ds = load_dataset(small_world)
    scorer = SignupScorer.from_run(small_run)
    res = scorer.score_frame(ds.signups).merge(ds.labels, on="account_id")
    farm = res[res["is_farm"] == 1]
    indiv = res[res["population"] == "individual"]
    assert len(farm) and len(indiv)
    assert farm["score"].mean() > indiv["score"].mean() + 0.3
    assert (indiv["level"] == "block").mean() <= 0.05


def test_score_one_matches_batch_and_is_recorded_for_velocity(
    small_world: Path, small_run: Path
) -> None:
    ds = load_dataset(small_world)
    scorer = SignupScorer.from_run(small_run)
    row = _record(ds.signups.iloc[0])
    one = scorer.score_one(row, record_velocity=False)
    batch = scorer.score_frame(ds.signups.iloc[[0]])
    assert abs(one.score - float(batch["score"].iloc[0])) < 1e-6
    assert 0 <= one.score <= 1 and one.level in {"clear", "review", "block"}


def test_velocity_on_one_card_raises_the_score(small_run: Path) -> None:
    scorer = SignupScorer.from_run(small_run)
    base = {
        "created_at": "2026-03-01T10:00:00Z",
        "email": "someone@fresh-domain-xyz.io",
        "signup_ip": "203.0.113.7",
        "payment_fingerprint": "pm_never_seen_before",
    }
    scores = [
        scorer.score_one(
            {**base, "account_id": f"n{i}", "email": f"p{i}@fresh-domain-xyz.io"}
        ).score
        for i in range(8)
    ]
    assert scores[0] < 0.5
    assert scores[-1] >= 0.5
    last = scorer.score_one({**base, "account_id": "n9"})
    assert any(e.kind == "velocity" for e in last.evidence)


def test_unknown_signup_is_clear(small_run: Path) -> None:
    scorer = SignupScorer.from_run(small_run)
    res = scorer.score_one(
        {"account_id": "x", "email": "new.person@gmail.com", "signup_ip": "198.51.100.1"}
    )
    assert res.level == "clear" and res.cluster_id is None


def test_run_accounts_are_known(small_run: Path) -> None:
    assert len(load_run(small_run).accounts) > 0


def test_velocity_counts_distinct_accounts_on_the_server_clock(small_run: Path) -> None:
    scorer = SignupScorer.from_run(small_run, window_s=600)
    card = {"payment_fingerprint": "pm_velocity_clock"}

    def pay(account: str, now: float, created_at: str = "2001-01-01T00:00:00Z") -> int:
        rec = {**card, "account_id": account, "created_at": created_at}
        return scorer.score_one(rec, now=now).velocity["payment"]

    assert pay("a", 1_000.0) == 1
    assert pay("b", 1_010.0, created_at="2099-01-01T00:00:00Z") == 2  # the claim is ignored
    assert pay("b", 1_020.0) == 2  # a retry of b does not count twice
    assert pay("c", 1_030.0) == 3
    assert pay("d", 1_700.0) == 1  # a, b and c left the window (server time)
    rec = {**card, "account_id": "e"}
    scorer.score_one(rec, now=1_710.0)
    scorer.retract(rec, 1_710.0)  # not stored: taken back out
    assert pay("f", 1_720.0) == 2  # d and f


def test_observe_warms_the_window_by_the_time_received(small_run: Path) -> None:
    scorer = SignupScorer.from_run(small_run, window_s=600)
    import time

    now = time.time()
    received = pd.Timestamp(now - 60, unit="s", tz="UTC").isoformat()
    scorer.observe(
        [
            {
                "account_id": "w1",
                "payment_fingerprint": "pm_w",
                "received_at": received,
                "created_at": "2001-01-01T00:00:00Z",
            },
            {"account_id": "w2", "payment_fingerprint": "pm_w", "received_at": received},
        ]
    )
    res = scorer.score_one({"account_id": "w3", "payment_fingerprint": "pm_w"}, now=now)
    assert res.velocity["payment"] == 3


# -- the provider's own identifiers at signup --------------------------------------------


@pytest.fixture(scope="module")
def referral_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small provider with an identifiers table: the farm's five accounts share one
    referral code and a phone hash each; two people share a common referral code."""
    from linkage.fixtures.small_provider import small_provider
    from linkage.pipeline import run_detect
    from linkage.settings import Settings

    world = small_provider(tmp_path_factory.mktemp("referral"))
    rows = [{"account_id": f"farm{i}", "kind": "referral", "value": "R-FARM"} for i in range(5)]
    rows += [{"account_id": f"farm{i}", "kind": "phone", "value": f"ph{i}"} for i in range(5)]
    # a signup of the signups table carries the farm's code in the same table
    rows.append({"account_id": "new-farm", "kind": " referral ", "value": " R-FARM "})
    rows.append({"account_id": "new-person", "kind": "referral", "value": "R-NOBODY"})
    pd.DataFrame(rows).to_csv(world / "identifiers.csv", index=False)
    blank = {"signup_ip": "", "device_fingerprint": "", "payment_fingerprint": "", "user_agent": ""}
    pd.DataFrame(
        [
            blank
            | {
                "account_id": "new-farm",
                "created_at": "2026-03-20T00:00:00Z",
                "email": "kim.ode@outlook.com",
            },
            blank
            | {
                "account_id": "new-person",
                "created_at": "2026-03-20T00:05:00Z",
                "email": "lee.ro@outlook.com",
            },
        ]
    ).to_csv(world / "signups.csv", index=False)
    out = tmp_path_factory.mktemp("referral-run")
    run_detect(world, out, settings=Settings())
    return world, out


def test_a_signup_links_through_the_providers_own_identifier(referral_run) -> None:
    _, out = referral_run
    acc = pd.read_csv(out / "accounts.csv", dtype={"cluster_id": "string"})
    farm_cluster = acc.loc[acc["account_id"] == "farm0", "cluster_id"].iloc[0]
    scorer = SignupScorer.from_run(out)
    base = {"account_id": "s1", "email": "kim.ode@outlook.com"}
    plain = scorer.score_one(base, record_velocity=False)
    linked = scorer.score_one(
        {**base, "identifiers": {"referral": "R-FARM"}}, record_velocity=False
    )
    assert plain.cluster_id is None and plain.score == 0.0
    assert linked.cluster_id == farm_cluster and linked.score > 0.0
    assert any("referral" in str(e.details) for e in linked.evidence)
    # the list form of the identifiers table's rows and untrimmed values link the same
    rows = scorer.score_one(
        {**base, "identifiers": [{"kind": " referral", "value": "R-FARM "}]},
        record_velocity=False,
    )
    assert (rows.cluster_id, rows.score) == (linked.cluster_id, linked.score)
    # a code nobody in the history holds links to nothing
    other = scorer.score_one(
        {**base, "identifiers": {"referral": "R-NOBODY"}}, record_velocity=False
    )
    assert other.cluster_id is None and other.score == 0.0


def test_batch_signups_read_their_identifiers_from_the_identifiers_table(referral_run) -> None:
    world, out = referral_run
    ds = load_dataset(world)
    scorer = SignupScorer.from_run(out)
    with_ids = scorer.score_frame(ds.signups, identifiers=ds.identifiers).set_index("account_id")
    without = scorer.score_frame(ds.signups).set_index("account_id")
    assert with_ids.at["new-farm", "score"] > 0.0 and pd.notna(
        with_ids.at["new-farm", "cluster_id"]
    )
    assert without.at["new-farm", "score"] == 0.0
    assert with_ids.at["new-person", "score"] == 0.0
    one = scorer.score_one(
        {
            "account_id": "new-farm",
            "email": "kim.ode@outlook.com",
            "identifiers": {"referral": "R-FARM"},
        },
        record_velocity=False,
    )
    assert with_ids.at["new-farm", "score"] == pytest.approx(one.score, abs=1e-6)
