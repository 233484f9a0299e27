"""Partners' indicators mirrored into the service store (table created by migration 0005).

``linkage share import … --store URL`` writes, after a successful import, the partner's
current indicators (latest version of each, withdrawn ones flagged) to
``shared_indicators``, so the fraud team can query what partners sent, when, with what
confidence and until when, next to the rest of the store.  Matching reads the file next
to the run (:mod:`linkage.share.bundle_store`); this table is its queryable record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from linkage.store.engine import as_utc
from linkage.store.models import Base

__all__ = ["SharedIndicatorRow", "mirror_partner", "stored_indicators"]


class SharedIndicatorRow(Base):
    """A partner's indicator, latest version (see migration 0005)."""

    __tablename__ = "shared_indicators"
    partner: Mapped[str] = mapped_column(String(100), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(100), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    modified: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False)
    revoked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    verdict: Mapped[str] = mapped_column(String(32), nullable=False)
    n_hashes: Mapped[int] = mapped_column(Integer, nullable=False)
    hashes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)

    __table_args__ = (Index("ix_shared_indicators_active", "revoked", "valid_until"),)


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def mirror_partner(engine: Engine, partner: str, data: Mapping[str, Any]) -> int:
    """Replace ``partner``'s rows by its indicators in ``data`` (an indicator file's
    content); one transaction; returns the rows written."""
    info = data["partners"][partner]
    rows = []
    for iid, ind in data["indicators"].get(partner, {}).items():
        hashes = ind.get("hashes") or {}
        rows.append(
            {
                "partner": partner,
                "indicator_id": iid,
                "bundle_id": ind["bundle_id"],
                "key_id": info["key_id"],
                "confidence": float(info["confidence"]),
                "modified": _dt(ind["modified"]),
                "valid_until": _dt(ind.get("valid_until")),
                "imported_at": _dt(ind["imported_at"]),
                "revoked": bool(ind.get("revoked")),
                "revoked_reason": ind.get("revoked_reason"),
                "score": float(ind.get("score", 0.0)),
                "level": str(ind.get("level", "")),
                "verdict": str(ind.get("verdict", "")),
                "n_hashes": sum(len(d) for d in hashes.values()),
                "hashes": hashes,
            }
        )
    table = SharedIndicatorRow.__table__
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.partner == partner))
        if rows:
            conn.execute(insert(table), rows)
    return len(rows)


def stored_indicators(engine: Engine, *, partner: str | None = None) -> list[dict[str, Any]]:
    """The stored indicators (without their hashes), partner and id order."""
    t = SharedIndicatorRow.__table__
    q = select(*[c for c in t.c if c.name != "hashes"]).order_by(t.c.partner, t.c.indicator_id)
    if partner is not None:
        q = q.where(t.c.partner == partner)
    with engine.connect() as conn:
        out = []
        for r in conn.execute(q).mappings():
            d = dict(r)
            for k in ("modified", "valid_until", "imported_at"):
                d[k] = as_utc(d[k])
            out.append(d)
    return out
