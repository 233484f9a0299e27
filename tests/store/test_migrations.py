"""Alembic migrations: a store written by the old hand-rolled runner upgrades in place.

``data/store_v1.db`` was written by linkage at commit 546b38e (schema version 1,
no alembic): two clusters, a scrypt API key (token below), a ``false_positive``
dated 9999 on cluster cl-000001, a ``confirmed_farm`` on b0 dated 2026-01-02,
and two signups, one with ``created_at`` 9999 in its payload.
"""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from linkage.errors import StoreError
from linkage.store import migrate
from linkage.store.db import SCHEMA_VERSION, Store
from linkage.store.models import ApiKeyRow, FeedbackRow

V1 = Path(__file__).with_name("data") / "store_v1.db"
V1_TOKEN = "lk_1c3d49e3740a_3EWAlX5oP3vVrH-gKrsihPYG4zfutdP-UXVPZ83UGKc"


def _v1_copy(tmp_path: Path) -> str:
    db = tmp_path / "old.db"
    shutil.copyfile(V1, db)
    db.chmod(0o644)  # as the old code left it
    return f"sqlite:///{db}"


def test_v1_store_upgrades_to_head(tmp_path: Path) -> None:
    url = _v1_copy(tmp_path)
    before = datetime.now(UTC)
    s = Store(url)
    assert s.schema_revision() == migrate.head_revision()
    assert "0002" in migrate.known_revisions()
    assert s.schema_version() == SCHEMA_VERSION == 2
    assert stat.S_IMODE((tmp_path / "old.db").stat().st_mode) == 0o600  # tightened
    # old data intact
    assert s.latest_run() is not None and s.get_cluster("cl-000001") is not None
    with s.engine.connect() as conn:
        rows = conn.execute(select(FeedbackRow).order_by(FeedbackRow.id)).all()
    assert [r.verdict for r in rows] == ["false_positive", "confirmed_farm"]
    fp, cf = rows
    # the 9999 verdict keeps its claimed time as data but no longer outranks later ones
    assert fp.client_ts.year == 9999
    assert before - timedelta(seconds=5) <= fp.ts.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert cf.ts.replace(tzinfo=UTC) == datetime(2026, 1, 2, tzinfo=UTC)
    assert fp.key_id is None  # unknown for rows made before keys were kept
    # the legacy scrypt key still works, and is re-hashed to HMAC on success
    key = s.verify_key(V1_TOKEN)
    assert key is not None and key.name == "legacy-analyst"
    with s.engine.connect() as conn:
        assert conn.execute(select(ApiKeyRow.scheme)).scalar_one() == "hmac-sha256"
    assert s.verify_key_fast(V1_TOKEN) == key
    assert s.verify_key(V1_TOKEN[:-1] + "x") is None
    # new writes carry key ids
    f = s.add_feedback(
        target_type="account",
        target_id="a0",
        verdict="confirmed_farm",
        who="x",
        why="y",
        key_id=key.id,
    )
    assert f["key_id"] == key.id and f["run_id"] == 1
    # the signup replay places rows at the server time they were received: the row whose
    # client claimed 9999 is replayed like any other (its claim is data, not the clock)
    recent = s.recent_signups(datetime(2000, 1, 1, tzinfo=UTC))
    assert [r["account_id"] for r in recent] == ["new1", "new2"] and s.last_replay_skipped == 0
    assert all(r["received_at"].startswith("20") for r in recent)
    s.close()
    assert Store(url).schema_revision() == migrate.head_revision()  # reopening is a no-op


def test_new_store_matches_the_models(tmp_path: Path) -> None:
    """The migrations build exactly the tables and columns the models declare."""
    from linkage.store.models import Base

    s = Store(f"sqlite:///{tmp_path / 'n.db'}")
    with s.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = {r[1] for r in conn.execute(text(f"PRAGMA table_info({table.name})"))}
            assert cols == {c.name for c in table.columns}, table.name


def test_newer_store_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    s = Store(url)
    with s.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    s.close()
    with pytest.raises(StoreError, match="newer than this linkage"):
        Store(url)


def test_failed_migration_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _v1_copy(tmp_path)
    real = migrate.command.upgrade

    def half_then_fail(cfg, rev):  # type: ignore[no-untyped-def]
        real(cfg, rev)
        raise RuntimeError("power cut")

    monkeypatch.setattr(migrate.command, "upgrade", half_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        Store(url)
    monkeypatch.undo()
    import sqlite3

    con = sqlite3.connect(tmp_path / "old.db")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    cols = {r[1] for r in con.execute("PRAGMA table_info(feedback)")}
    con.close()
    assert "alembic_version" not in tables and "key_id" not in cols  # rolled back
    assert Store(url).schema_revision() == migrate.head_revision()
