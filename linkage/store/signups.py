"""Signup decisions: recorded with the key that asked, replayed to warm velocity."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from linkage.store.engine import parse_bounded, utcnow
from linkage.store.models import SignupRow

log = logging.getLogger(__name__)


class SignupsMixin:
    """Signup rows (needs ``self.engine``)."""

    engine: Engine
    #: rows skipped by the last :meth:`recent_signups` (bad ``created_at``)
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
        created_at: datetime | None = None,
        key_id: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Record one scored signup (a single INSERT, committed before returning); its row id.

        Raises (``SQLAlchemyError`` / ``StoreError``) when it could not be recorded:
        a caller must not acknowledge the decision as recorded then.
        """
        with self.engine.begin() as conn:
            rid = conn.execute(
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
            ).inserted_primary_key[0]
        return int(rid)

    def recent_signups(self, since: datetime, *, limit: int = 100_000) -> list[dict[str, Any]]:
        """Payloads of signups recorded at or after ``since`` (oldest first), to warm velocity.

        A payload whose ``created_at`` is not an ISO 8601 time inside the accepted
        window (e.g. year 9999, stored before dates were bounded) is skipped and
        counted in :attr:`last_replay_skipped`, so one bad row cannot stop the
        model from loading.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SignupRow.id, SignupRow.payload)
                .where(SignupRow.created_at >= since)
                .order_by(SignupRow.id.desc())
                .limit(limit)
            ).all()
        out: list[dict[str, Any]] = []
        skipped = 0
        now = utcnow()
        for r in reversed(rows):
            payload = r.payload
            if not isinstance(payload, Mapping):
                skipped += 1
                continue
            created = payload.get("created_at")
            if created is not None:
                try:
                    parse_bounded(created, now=now)
                except ValueError:
                    skipped += 1
                    log.warning("replay: skipping signup row %s (created_at %r)", r.id, created)
                    continue
            out.append(dict(payload))
        self.last_replay_skipped = skipped
        return out

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
