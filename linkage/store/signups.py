"""Signup decisions: recorded with the key that asked, replayed to warm velocity."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from linkage.store.engine import as_utc, inserted_id, utcnow
from linkage.store.models import FeedbackRow, SignupRow
from linkage.store.verdicts import CLEARING_VERDICTS

log = logging.getLogger(__name__)


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
        with self.engine.begin() as conn:
            rid = inserted_id(
                conn.execute(
                    insert(SignupRow.__table__).values(
                        account_id=account_id,
                        payload=dict(payload),
                        score=float(score),
                        level=level,
                        cluster_id=cluster_id,
                        evidence=evidence,
                        degraded=bool(degraded),
                        created_at=created_at or utcnow(),
                        key_id=key_id,
                        run_id=run_id,
                    )
                )
            )
        return int(rid)

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
            n = conn.execute(
                select(func.count())
                .select_from(SignupRow)
                .where(SignupRow.account_id == account_id)
            ).scalar_one()
            if not n:
                return None
            row = conn.execute(
                select(
                    SignupRow.id,
                    SignupRow.score,
                    SignupRow.level,
                    SignupRow.cluster_id,
                    SignupRow.created_at,
                )
                .where(SignupRow.account_id == account_id)
                .order_by(SignupRow.id.desc())
                .limit(1)
            ).one()
            verdict = conn.execute(
                select(FeedbackRow.verdict, FeedbackRow.ts)
                .where(FeedbackRow.target_type == "account", FeedbackRow.target_id == account_id)
                .order_by(FeedbackRow.ts.desc(), FeedbackRow.id.desc())
                .limit(1)
            ).first()
        at = as_utc(row.created_at)
        cleared = (
            verdict is not None
            and verdict.verdict in CLEARING_VERDICTS
            and as_utc(verdict.ts) >= at
        )
        return {
            "id": int(row.id),
            "count": int(n),
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
