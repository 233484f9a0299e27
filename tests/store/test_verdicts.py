"""One resolution of verdicts: time order within a target, the account's own verdict first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from linkage.score.scoring import latest_verdicts
from linkage.store.verdicts import effective_level, latest, resolve

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_accounts_own_verdict_wins_over_its_clusters() -> None:
    assert resolve("appeal_upheld", "confirmed_farm").verdict == "appeal_upheld"
    assert resolve("confirmed_farm", "false_positive").source == "account"
    r = resolve(None, "confirmed_farm")
    assert r is not None and (r.verdict, r.source) == ("confirmed_farm", "cluster")
    assert resolve(None, None) is None


def test_latest_orders_by_server_time_then_id_naive_as_utc() -> None:
    rows = [
        {"id": 5, "ts": T0 + timedelta(hours=1), "verdict": "a"},
        {"id": 3, "ts": (T0 + timedelta(hours=2)).replace(tzinfo=None), "verdict": "b"},
        {"id": 4, "ts": T0 + timedelta(hours=2), "verdict": "c"},
    ]
    assert latest(rows)["verdict"] == "c"
    assert latest([]) is None


def test_effective_level() -> None:
    assert effective_level("block", "appeal_upheld") == "clear"
    assert effective_level("review", "confirmed_farm") == "block"
    assert effective_level("review", None) == "review"


def test_the_next_run_resolves_as_the_service_does() -> None:
    """An appeal upheld on a1, then its cluster confirmed: a1 stays clear, a2 is a farm."""
    fb = pd.DataFrame(
        {
            "account_id": ["a1", "a1", "a2"],
            "verdict": ["appeal_upheld", "confirmed_farm", "confirmed_farm"],
            "ts": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1)],
            "target_type": ["account", "cluster", "cluster"],
        }
    )
    got = latest_verdicts(fb)
    assert got.to_dict() == {"a1": "appeal_upheld", "a2": "confirmed_farm"}
    # without target_type (a feedback file): latest by time, as before
    assert latest_verdicts(fb.drop(columns="target_type")).to_dict()["a1"] == "confirmed_farm"
