"""Signup decisions: recorded with the key that asked, replayed to warm velocity.

The per-signup statements (:data:`_INSERT`, :data:`_PREVIOUS`) are built once at
import: SQLAlchemy then reuses their compiled form and result map as they are, where
a statement rebuilt per call costs ~0.3 ms of Python each (statement construction,
cache key, result-map adaptation) on the signup hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, ScalarSelect, bindparam, delete, func, insert, select

from linkage.store.engine import as_utc, inserted_id, utcnow
from linkage.store.models import FeedbackRow, SignupRow
from linkage.store.verdicts import CLEARING_VERDICTS

log = logging.getLogger(__name__)

_SIGNUPS = SignupRow.__table__
_FEEDBACK = FeedbackRow.__table__
_INSERT = insert(_SIGNUPS)


def _latest_verdict(column: ColumnElement[Any]) -> ScalarSelect[Any]:
    """``column`` of the latest verdict on the account ``:aid`` (a scalar subquery)."""
    return (
        select(column)
        .where(_FEEDBACK.c.target_type == "account", _FEEDBACK.c.target_id == bindparam("aid"))
        .order_by(_FEEDBACK.c.ts.desc(), _FEEDBACK.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


#: the latest decision on an account, how many there were and the latest verdict on it:
#: one statement (one round trip, indexes ix_signups_account and ix_feedback_target)
_PREVIOUS = (
    select(
        _SIGNUPS.c.id,
        _SIGNUPS.c.score,
        _SIGNUPS.c.level,
        _SIGNUPS.c.cluster_id,
        _SIGNUPS.c.created_at,
        select(func.count())
        .select_from(_SIGNUPS)
        .where(_SIGNUPS.c.account_id == bindparam("aid"))
        .correlate(None)  # its own scan of signups, not the outer row
        .scalar_subquery()
        .label("n"),
        _latest_verdict(_FEEDBACK.c.verdict).label("verdict"),
        _latest_verdict(_FEEDBACK.c.ts).label("verdict_ts"),
    )
    .where(_SIGNUPS.c.account_id == bindparam("aid"))
    .order_by(_SIGNUPS.c.id.desc())
    .limit(1)
)


def _signup_values(
    *,
    account_id: str,
    payload: Mapping[str, Any],
    score: float,
    level: str,
    cluster_id: str | None,
    evidence: list[dict[str, Any]],
    degraded: bool,
    created_at: datetime | None = None,
    key_id: str | None = None,
    run_id: int | None = None,
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "payload": dict(payload),
        "score": float(score),
        "level": level,
        "cluster_id": cluster_id,
        "evidence": evidence,
        "degraded": bool(degraded),
        "created_at": created_at or utcnow(),
        "key_id": key_id,
        "run_id": run_id,
    }


class SignupsMixin:
    """Signup rows (needs ``self.engine``)."""

    engine: Engine
    #: rows skipped by the last :meth:`recent_signups` (payload not an object)
    last_replay_skipped: int = 0

    def record_signup(
        self,
        *,
        account_id: str,
        payload: Mapping[str, Any],
        score: float,
        level: str,
        cluster_id: str | None,
        evidence: list[dict[str, Any]],
        degraded: bool,
        created_at: datetime | None = None,  # server time received (default now)
        key_id: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Record one scored signup (a single INSERT, committed before returning); its row id.

        Raises (``SQLAlchemyError`` / ``StoreError``) when it could not be recorded:
        a caller must not acknowledge the decision as recorded then.
        """
        values = _signup_values(
            account_id=account_id,
            payload=payload,
            score=score,
            level=level,
            cluster_id=cluster_id,
            evidence=evidence,
            degraded=degraded,
            created_at=created_at,
            key_id=key_id,
            run_id=run_id,
        )
        with self.engine.begin() as conn:
            rid = inserted_id(conn.execute(_INSERT, values))
        return int(rid)

    def record_signups(
        self, rows: Sequence[Mapping[str, Any]], *, checkpoint: bool = True
    ) -> list[int]:
        """Record several scored signups in **one** transaction (one commit); their row ids
        in order.  Each row holds :meth:`record_signup`'s keyword arguments.

        All or nothing: raises (``SQLAlchemyError`` / ``StoreError``) with none of them
        recorded.  A group commit for a writer that batches concurrent decisions: each
        is durable once this returns, as with one :meth:`record_signup` per row.
        ``checkpoint=False`` (SQLite): this commit does not run the WAL auto-checkpoint
        (copying the WAL into the database and syncing it, every ~1,000 pages): the
        caller runs :meth:`checkpoint` off the request path instead.
        """
        values = [_signup_values(**row) for row in rows]
        ids: list[int] = []
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.begin() as conn:
            if sqlite and not checkpoint:
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            try:
                for v in values:
                    ids.append(inserted_id(conn.execute(_INSERT, v)))
            finally:
                if sqlite and not checkpoint:  # the pooled connection goes back as it was
                    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
        return ids

    def checkpoint(self) -> None:
        """A passive WAL checkpoint (SQLite; a no-op elsewhere): copies what it can of the
        WAL into the database without waiting for, or blocking, readers and writers."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def recent_signups(self, since: datetime, *, limit: int = 100_000) -> list[dict[str, Any]]:
        """Payloads of signups received at or after ``since`` (oldest first), to warm
        velocity, each with ``received_at``: the server time it was scored (the window's
        clock; the client's ``created_at`` stays in the payload as data).

        A payload that is not an object is skipped and counted in
        :attr:`last_replay_skipped`, so one bad row cannot stop the model from loading.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SignupRow.id, SignupRow.payload, SignupRow.created_at)
                .where(SignupRow.created_at >= since)
                .order_by(SignupRow.id.desc())
                .limit(limit)
            ).all()
        out: list[dict[str, Any]] = []
        skipped = 0
        for r in reversed(rows):
            payload = r.payload
            if not isinstance(payload, Mapping):
                skipped += 1
                log.warning("replay: skipping signup row %s (payload is not an object)", r.id)
                continue
            received = as_utc(r.created_at)
            out.append({**payload, "received_at": received.isoformat() if received else None})
        self.last_replay_skipped = skipped
        return out

    def previous_decision(self, account_id: str) -> dict[str, Any] | None:
        """The latest signup decision on ``account_id`` and how many there were, or None.

        ``cleared``: an analyst's clearing verdict on the account came after it (the
        decision no longer binds a rescoring)."""
        with self.engine.connect() as conn:
            row = conn.execute(_PREVIOUS, {"aid": account_id}).first()
        if row is None:
            return None
        at = as_utc(row.created_at)
        verdict_at = as_utc(row.verdict_ts)
        cleared = (
            row.verdict in CLEARING_VERDICTS
            and verdict_at is not None
            and at is not None
            and verdict_at >= at
        )
        return {
            "id": int(row.id),
            "count": int(row.n),
            "score": float(row.score),
            "level": row.level,
            "cluster_id": row.cluster_id,
            "created_at": at,
            "cleared": cleared,
        }

    def count_signups(self) -> int:
        """Number of recorded signups."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SignupRow)).scalar_one())

    def delete_signups_before(self, ts: datetime) -> int:
        """Drop recorded signups older than ``ts`` (retention); returns rows deleted."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(SignupRow.__table__).where(SignupRow.created_at < ts)
            ).rowcount
