"""Watermark keys of the respond module (issue 17), kept apart from the rest of the store.

One active secret key per flagged cluster (created on first need), rotatable; retired keys
stay for detection.  The secret never leaves this module except to
:func:`linkage.respond.watermark.detect` / :func:`linkage.respond.perturb.perturb`
in-process; listings carry ids and dates only.  Table created by migration ``0003``.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Engine, Index, LargeBinary, String, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from linkage.store.engine import as_utc, utcnow
from linkage.store.models import Base, audit_event, cli_actor


def new_secret() -> bytes:
    """A fresh 256-bit watermark secret."""
    return secrets.token_bytes(32)


def new_key_id() -> str:
    """A public, random key id (carries nothing of the secret)."""
    return "wm-" + secrets.token_hex(6)


class WatermarkKeyRow(Base):
    """A cluster's watermark key (see migration 0003)."""

    __tablename__ = "watermark_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cluster_id: Mapped[str] = mapped_column(String(300), nullable=False)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_watermark_keys_cluster", "cluster_id", "retired_at"),)


@dataclass(frozen=True, slots=True)
class WatermarkKeyInfo:
    """A key as listings show it: no secret."""

    key_id: str
    cluster_id: str
    created_at: datetime
    retired_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "cluster_id": self.cluster_id,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }


class WatermarkKeys:
    """Watermark keys in a store's database (``WatermarkKeys(store.engine)``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}  # cluster -> active key id (cache)

    def forget(self) -> None:
        """Drop the cache of active keys (a rotation was made elsewhere)."""
        self._active = {}

    def active(self, cluster_id: str) -> str | None:
        """The cluster's active key id (None if it has none)."""
        kid = self._active.get(cluster_id)
        if kid is not None:
            return kid
        with self.engine.connect() as conn:
            kid = conn.execute(
                select(WatermarkKeyRow.id)
                .where(
                    WatermarkKeyRow.cluster_id == cluster_id, WatermarkKeyRow.retired_at.is_(None)
                )
                .order_by(WatermarkKeyRow.created_at.desc())
                .limit(1)
            ).scalar()
        if kid is not None:
            self._active[cluster_id] = kid
        return kid

    def ensure(self, cluster_id: str) -> str:
        """The cluster's active key id, created if it has none."""
        kid = self.active(cluster_id)
        if kid is not None:
            return kid
        with self._lock:
            self._active.pop(cluster_id, None)
            kid = self.active(cluster_id)
            if kid is None:
                kid = self._insert(cluster_id)
        return kid

    def _insert(self, cluster_id: str, conn: Any = None, *, actor: str = "system:respond") -> str:
        if conn is None:
            with self.engine.begin() as c:
                kid = self._insert(cluster_id, c, actor=actor)
            self._active[cluster_id] = kid  # cached once committed
            return kid
        kid = new_key_id()
        conn.execute(
            insert(WatermarkKeyRow).values(
                id=kid, cluster_id=cluster_id, secret=new_secret(), created_at=utcnow()
            )
        )
        audit_event(
            conn,
            kind="watermark_key",
            action="created",
            target_id=cluster_id,
            actor=actor,
            detail=f"key {kid}",
        )
        return kid

    def rotate(self, cluster_id: str, *, actor: str | None = None) -> str:
        """Retire the cluster's active key (kept for detection) and make a new one, in one
        transaction, recorded in the audit (``actor`` default ``cli:<os user>``)."""
        who = actor or cli_actor()
        with self._lock:
            self._active.pop(cluster_id, None)
            with self.engine.begin() as conn:
                retired = list(
                    conn.scalars(
                        select(WatermarkKeyRow.id).where(
                            WatermarkKeyRow.cluster_id == cluster_id,
                            WatermarkKeyRow.retired_at.is_(None),
                        )
                    )
                )
                conn.execute(
                    update(WatermarkKeyRow)
                    .where(
                        WatermarkKeyRow.cluster_id == cluster_id,
                        WatermarkKeyRow.retired_at.is_(None),
                    )
                    .values(retired_at=utcnow())
                )
                kid = self._insert(cluster_id, conn, actor=who)
                audit_event(
                    conn,
                    kind="watermark_key",
                    action="rotated",
                    target_id=cluster_id,
                    actor=who,
                    detail=f"retired {', '.join(retired) or 'none'}; active {kid}",
                )
            self._active[cluster_id] = kid
            return kid

    def secret(self, key_id: str) -> bytes | None:
        """A key's secret (in-process use only: perturbation of the cluster's outputs)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(WatermarkKeyRow.secret).where(WatermarkKeyRow.id == key_id)
            ).scalar()

    def secrets(self) -> dict[str, bytes]:
        """Every key (active and retired) ``key_id -> secret``, for detection."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(WatermarkKeyRow.id, WatermarkKeyRow.secret)).all()
        return {r.id: bytes(r.secret) for r in rows}

    def list(self) -> list[WatermarkKeyInfo]:
        """Every key, oldest first, without secrets."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    WatermarkKeyRow.id,
                    WatermarkKeyRow.cluster_id,
                    WatermarkKeyRow.created_at,
                    WatermarkKeyRow.retired_at,
                ).order_by(WatermarkKeyRow.created_at, WatermarkKeyRow.id)
            ).all()
        return [
            WatermarkKeyInfo(r.id, r.cluster_id, as_utc(r.created_at), as_utc(r.retired_at))
            for r in rows
        ]
