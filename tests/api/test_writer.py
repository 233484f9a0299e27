"""The signup writer: decisions committed in batches, each one answered only once stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SQLAlchemyError

from linkage.api.writer import SignupWriter
from linkage.signup import SignupScorer
from linkage.store.db import Store
from tests.api.conftest import Env


def _row(i: int, **over: Any) -> dict[str, Any]:
    return {
        "account_id": f"w{i}",
        "payload": {"account_id": f"w{i}", "payment_fingerprint": f"card-{i}"},
        "score": 0.1,
        "level": "clear",
        "cluster_id": None,
        "evidence": [],
        "degraded": False,
        "created_at": datetime.now(UTC),
        "key_id": None,
        "run_id": None,
        **over,
    }


def test_concurrent_decisions_are_all_committed_in_fewer_transactions(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    writer = SignupWriter(store)

    async def many() -> list[int]:
        return await asyncio.gather(*(writer.record(_row(i)) for i in range(50)))

    try:
        ids = asyncio.run(many())
    finally:
        writer.close()
    assert len(set(ids)) == 50
    assert store.count_signups() == 50
    assert writer.rows == 50 and writer.batches < 50  # group commit: rows shared commits
    store.close()


def test_a_row_the_store_refuses_fails_alone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    writer = SignupWriter(store)

    async def mixed() -> list[Any]:
        rows = [_row(1), _row(2, account_id=None), _row(3)]  # account_id is NOT NULL
        return await asyncio.gather(*(writer.record(r) for r in rows), return_exceptions=True)

    try:
        good1, bad, good3 = asyncio.run(mixed())
    finally:
        writer.close()
    assert isinstance(bad, SQLAlchemyError)
    assert isinstance(good1, int) and isinstance(good3, int)
    assert store.count_signups() == 2
    store.close()


def test_a_closed_writer_refuses_new_decisions(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    writer = SignupWriter(store)
    asyncio.run(writer.record(_row(1)))
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(writer.record(_row(2)))
    assert store.count_signups() == 1
    store.close()


def test_concurrent_signups_over_http_are_each_recorded_once(env: Env) -> None:
    async def burst() -> list[int]:
        import httpx

        transport = httpx.ASGITransport(app=env.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rs = await asyncio.gather(
                *(
                    c.post(
                        "/v1/signups/score",
                        json={"account_id": f"burst-{i}", "payment_fingerprint": "card-b"},
                        headers=env.h("score"),
                    )
                    for i in range(30)
                )
            )
        return [r.status_code for r in rs]

    assert asyncio.run(burst()) == [200] * 30
    assert env.store.count_signups() == 30


def test_the_velocity_window_forgets_identifiers_that_left_it(env: Env) -> None:
    scorer: SignupScorer = env.app.state.signups.scorer
    for i in range(200):  # each with its own card, device, mailbox: seen once, never again
        scorer.score_one(
            {
                "account_id": f"once-{i}",
                "email": f"u{i}@example.org",
                "device_fingerprint": f"dev-{i}",
                "payment_fingerprint": f"card-{i}",
            },
            now=1_000.0 + i,
        )
    held, entries = scorer.window_size()
    assert held >= 400 and entries >= 400
    late = scorer.window_s + 2_000.0
    scorer.score_one({"account_id": "late", "payment_fingerprint": "card-late"}, now=late)
    # everything of the first 200 left the window: only the late signup's identifiers stay
    held, entries = scorer.window_size()
    assert held == entries and 1 <= held <= 3
    again = scorer.score_one({"account_id": "late2", "payment_fingerprint": "card-late"}, now=late)
    assert again.velocity["payment"] == 2  # what is inside the window still counts


def test_commits_without_checkpoint_give_the_pooled_connection_back_as_it_was(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    writer = SignupWriter(store, checkpoint_every=0.05)
    try:
        asyncio.run(writer.record(_row(1)))
    finally:
        writer.close()
    with store.engine.connect() as conn:  # the connection the writer used, from the pool
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        # the checkpointer copied the WAL into the database: nothing left to copy
        busy, log_pages, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and log_pages == done
    assert store.count_signups() == 1
    store.close()
