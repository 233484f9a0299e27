"""Signup verification against a real run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
