"""Analysts' verdicts (server-timed, tied to the key that posted them) and the audit trail.

* ``ts`` is the **server** time the verdict was recorded and the only thing that
  orders verdicts; a time the client sends is kept as ``client_ts`` (data only).
* ``key_id`` is the API key that posted the verdict; ``who`` is a free label.
* Posting the verdict that is already the latest one on the target, with the
  same ``who``/``why`` and key, returns that verdict instead of adding a row
  (idempotent retries); the same verdict after a different one is a new row.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, func, insert, literal, select, union_all

from linkage.store.engine import as_utc, bounded_utc, inserted_id, utcnow
from linkage.store.models import (
    TARGET_TYPES,
    VERDICTS,
    ApiKeyRow,
    AuditEventRow,
    ClusterRow,
    FeedbackRow,
    MembershipRow,
    RunRow,
    SignupRow,
)
from linkage.store.queries import feedback_dict

FEEDBACK_COLUMNS = ["account_id", "verdict", "ts", "who", "why", "target_type"]
#: what :meth:`FeedbackMixin.audit` can list (``admin``: API keys created / revoked,
#: watermark keys created / rotated)
AUDIT_KINDS = ("feedback", "signup", "admin")


class FeedbackMixin:
    """Verdicts and the audit trail (needs ``self.engine``)."""

    engine: Engine
    _feedback_lock: threading.Lock

    def target_exists(self, target_type: str, target_id: str) -> bool:
        """Whether an account (in a run or a signup) or a cluster is known to the store."""
        with self.engine.connect() as conn:
            if target_type == "cluster":
                q = select(ClusterRow.cluster_id).where(ClusterRow.cluster_id == target_id).limit(1)
                return conn.execute(q).first() is not None
            q1 = (
                select(MembershipRow.account_id)
                .where(MembershipRow.account_id == target_id)
                .limit(1)
            )
            if conn.execute(q1).first() is not None:
                return True
            q2 = select(SignupRow.id).where(SignupRow.account_id == target_id).limit(1)
            return conn.execute(q2).first() is not None

    def add_feedback(
        self,
        *,
        target_type: str,
        target_id: str,
        verdict: str,
        who: str,
        why: str,
        ts: datetime | None = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        """Store one verdict at server time; returns it with ``created`` (False: a replay).

        ``ts`` is the client's claimed time, kept as ``client_ts`` (bounded: a
        ValueError outside years 2000..2099 as written); it never orders verdicts.
        """
        if target_type not in TARGET_TYPES:
            raise ValueError(f"target_type must be one of {TARGET_TYPES}")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}")
        client_ts = bounded_utc(ts) if ts is not None else None
        # one writer per process between "is it the latest?" and the INSERT
        with self._feedback_lock, self.engine.begin() as conn:
            last = conn.execute(
                select(FeedbackRow)
                .where(FeedbackRow.target_type == target_type, FeedbackRow.target_id == target_id)
                .order_by(FeedbackRow.ts.desc(), FeedbackRow.id.desc())
                .limit(1)
            ).first()
            if (
                last is not None
                and (last.verdict, last.who, last.why, last.key_id) == (verdict, who, why, key_id)
                and as_utc(last.client_ts) == client_ts
            ):
                return {**feedback_dict(last), "created": False}
            run_id = conn.execute(select(func.max(RunRow.id))).scalar()
            now = utcnow()
            fid = inserted_id(
                conn.execute(
                    insert(FeedbackRow.__table__).values(
                        target_type=target_type,
                        target_id=target_id,
                        verdict=verdict,
                        who=who,
                        why=why,
                        ts=now,
                        client_ts=client_ts,
                        key_id=key_id,
                        run_id=run_id,
                    )
                )
            )
        return {
            "id": int(fid),
            "target_type": target_type,
            "target_id": target_id,
            "verdict": verdict,
            "who": who,
            "why": why,
            "ts": now,
            "client_ts": client_ts,
            "key_id": key_id,
            "run_id": run_id,
            "created": True,
        }

    def feedback_frame(self) -> pd.DataFrame:
        """All verdicts as ``account_id, verdict, ts, who, why, target_type`` (for the next
        ``detect``).

        Cluster feedback is expanded to the cluster's members in the latest run in
        which that cluster appears (``target_type`` ``cluster``), so the pipeline's
        :func:`~linkage.score.scoring.latest_verdicts` resolves them as the service does
        (:mod:`linkage.store.verdicts`: an account's own verdict wins over its cluster's).
        Ordered by ``ts`` (server time); ``ts`` is UTC.
        """
        records: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for f in conn.execute(
                select(FeedbackRow).order_by(FeedbackRow.ts, FeedbackRow.id)
            ).all():
                base = {
                    "verdict": f.verdict,
                    "ts": as_utc(f.ts),
                    "who": f.who,
                    "why": f.why,
                    "target_type": f.target_type,
                }
                if f.target_type == "account":
                    records.append({"account_id": f.target_id, **base})
                    continue
                last = conn.execute(
                    select(func.max(ClusterRow.run_id)).where(ClusterRow.cluster_id == f.target_id)
                ).scalar()
                if last is None:
                    continue
                for aid in conn.scalars(
                    select(MembershipRow.account_id)
                    .where(MembershipRow.run_id == last, MembershipRow.cluster_id == f.target_id)
                    .order_by(MembershipRow.account_id)
                ):
                    records.append({"account_id": aid, **base})
        frame = pd.DataFrame.from_records(records, columns=FEEDBACK_COLUMNS)
        frame["account_id"] = frame["account_id"].astype("string")
        frame["verdict"] = frame["verdict"].astype("string")
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame["who"] = frame["who"].astype("string")
        frame["why"] = frame["why"].astype("string")
        frame["target_type"] = frame["target_type"].astype("string")
        return frame

    def audit(
        self,
        *,
        kind: str | None = None,
        key_id: str | None = None,
        target_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Who decided what, when, from which run: verdicts, signup decisions and
        administrative events (API keys created / revoked, watermark keys created /
        rotated), newest first.

        Each item: ``kind`` (``feedback`` | ``signup`` | ``admin``), ``id``, ``ts`` (server time),
        ``key_id`` and ``key_name`` (None for rows recorded before keys were kept),
        ``who`` (feedback label), ``target_type``/``target_id``, ``decision``
        (verdict or level; admin: ``created`` | ``revoked`` | ``rotated``), ``score``
        (signups), ``why`` (admin: what changed), ``run_id``.  Admin events: ``target_type``
        ``api_key`` | ``watermark_key``, ``who`` the actor (an API key id or ``cli:<user>``).
        """
        if kind is not None and kind not in AUDIT_KINDS:
            raise ValueError(f"kind must be one of {AUDIT_KINDS}")
        sources = _audit_sources(key_id=key_id, target_id=target_id)
        parts = [q for k, q in sources.items() if kind in (None, k)]
        u = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(u)).scalar_one())
            rows = conn.execute(
                select(u)
                .order_by(u.c.ts.desc(), u.c.kind, u.c.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            names = dict(conn.execute(select(ApiKeyRow.id, ApiKeyRow.name)).all())
        return total, [_audit_item(r, names) for r in rows]


#: The columns of the audit union after ``kind``, in order (see :meth:`FeedbackMixin.audit`).
_AUDIT_FIELDS = (
    "id",
    "ts",
    "key_id",
    "who",
    "target_type",
    "target_id",
    "decision",
    "score",
    "why",
    "run_id",
    "client_ts",
)


def _audit_source(kind: str, **fields: Any) -> Select[Any]:
    """One source of the audit union: ``kind``, then :data:`_AUDIT_FIELDS` in order
    (NULL for those the source does not have)."""
    return select(
        literal(kind).label("kind"),
        *((fields[f] if f in fields else literal(None)).label(f) for f in _AUDIT_FIELDS),
    )


def _audit_sources(*, key_id: str | None, target_id: str | None) -> dict[str, Select[Any]]:
    """The audit's sources by kind (verdicts, signup decisions, administrative events),
    each limited to one key (admin: the actor) and one target when they are given."""
    feedback = _audit_source(
        "feedback",
        id=FeedbackRow.id,
        ts=FeedbackRow.ts,
        key_id=FeedbackRow.key_id,
        who=FeedbackRow.who,
        target_type=FeedbackRow.target_type,
        target_id=FeedbackRow.target_id,
        decision=FeedbackRow.verdict,
        why=FeedbackRow.why,
        run_id=FeedbackRow.run_id,
        client_ts=FeedbackRow.client_ts,
    )
    signup = _audit_source(
        "signup",
        id=SignupRow.id,
        ts=SignupRow.created_at,
        key_id=SignupRow.key_id,
        target_type=literal("account"),
        target_id=SignupRow.account_id,
        decision=SignupRow.level,
        score=SignupRow.score,
        run_id=SignupRow.run_id,
    )
    admin = _audit_source(
        "admin",
        id=AuditEventRow.id,
        ts=AuditEventRow.ts,
        who=AuditEventRow.actor,
        target_type=AuditEventRow.kind,
        target_id=AuditEventRow.target_id,
        decision=AuditEventRow.action,
        why=AuditEventRow.detail,
    )
    out: dict[str, Select[Any]] = {}
    for kind, q, key_col, target_col in (
        ("feedback", feedback, FeedbackRow.key_id, FeedbackRow.target_id),
        ("signup", signup, SignupRow.key_id, SignupRow.account_id),
        ("admin", admin, AuditEventRow.actor, AuditEventRow.target_id),
    ):
        if key_id is not None:
            q = q.where(key_col == key_id)
        if target_id is not None:
            q = q.where(target_col == target_id)
        out[kind] = q
    return out


def _audit_item(r: Any, names: dict[str, str]) -> dict[str, Any]:
    """One audit row as returned by :meth:`FeedbackMixin.audit` (with the key's name)."""
    return {
        "kind": r.kind,
        "id": int(r.id),
        "ts": _as_dt(r.ts),
        "key_id": r.key_id,
        "key_name": names.get(r.key_id) if r.key_id else None,
        "who": r.who,
        "target_type": r.target_type,
        "target_id": r.target_id,
        "decision": r.decision,
        "score": float(r.score) if r.score is not None else None,
        "why": r.why,
        "run_id": r.run_id,
        "client_ts": _as_dt(r.client_ts),
    }


def _as_dt(v: Any) -> datetime | None:
    """A union column comes back untyped on SQLite: parse the stored text."""
    if v is None or isinstance(v, datetime):
        return as_utc(v)
    return as_utc(datetime.fromisoformat(str(v)))
