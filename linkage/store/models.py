"""Tables of the service store (SQLAlchemy 2 declarative models).

The schema is deliberately plain (no ORM relationships): the store reads and
writes through SQLAlchemy Core statements built on these tables, which keeps the
hot paths (one signup INSERT, one key lookup) cheap and explicit.

Cluster ids in ``clusters``/``memberships``/``lineage`` are the store's **stable**
ids (``cl-000001``…), not the ids a run directory happens to use; the run's own
id is kept in ``clusters.source_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Relations recorded in the ``lineage`` table.
LINEAGE_RELATIONS = ("continued", "split", "merged", "new", "regrew")
#: Feedback verdicts.
VERDICTS = ("confirmed_farm", "false_positive", "appeal_upheld")
#: Feedback target types.
TARGET_TYPES = ("account", "cluster")
#: API key scopes (``admin`` implies every other scope; ``metrics``: ``/metrics`` and the
#: details of ``/readyz``, for a scraper; ``respond``: account actions and watermark detection).
SCOPES = ("read", "score", "feedback", "metrics", "respond", "admin")


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    if TYPE_CHECKING:  # every table here is a plain Table (insert/update/delete take it)
        __table__: ClassVar[Table]


class SchemaVersion(Base):
    """One row: the legacy schema version (1 = alembic base 0001, 2 = 0002 and later).

    Alembic's ``alembic_version`` is the real revision; this row only makes a linkage
    that predates alembic refuse a newer store."""

    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class RunRow(Base):
    """An imported run directory."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    n_accounts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_clusters: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: sha256 of the run's manifest.json (None: imported before revision 0004)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_runs_digest", "digest"),)


class ClusterRow(Base):
    """A cluster as it was in one run (stable ``cluster_id``)."""

    __tablename__ = "clusters"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    cluster_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(256), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)

    __table_args__ = (
        Index("ix_clusters_cluster_id", "cluster_id"),
        Index("ix_clusters_run_score", "run_id", "score"),
    )


class MembershipRow(Base):
    """One account of one run: its score, level and (stable) cluster."""

    __tablename__ = "memberships"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    cluster_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)

    __table_args__ = (
        Index("ix_memberships_run_cluster", "run_id", "cluster_id"),
        Index("ix_memberships_account", "account_id"),
    )


class LineageRow(Base):
    """How a cluster of a run relates to a cluster of an earlier run."""

    __tablename__ = "lineage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), nullable=False)
    cluster_id: Mapped[str] = mapped_column(String(32), nullable=False)
    parent_cluster_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    relation: Mapped[str] = mapped_column(String(16), nullable=False)
    overlap: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)

    __table_args__ = (
        Index("ix_lineage_cluster", "cluster_id"),
        Index("ix_lineage_parent", "parent_cluster_id"),
    )


class SignupRow(Base):
    """One scored signup and the decision returned."""

    __tablename__ = "signups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(256), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    cluster_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    degraded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: the API key that asked for the decision (None: recorded before revision 0002)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the store run the model came from
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_signups_account", "account_id"),
        Index("ix_signups_created", "created_at"),
        Index("ix_signups_key", "key_id"),
    )


class FeedbackRow(Base):
    """An analyst's verdict on an account or a cluster."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_type: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[str] = mapped_column(String(256), nullable=False)
    verdict: Mapped[str] = mapped_column(String(32), nullable=False)
    who: Mapped[str] = mapped_column(String(256), nullable=False)
    why: Mapped[str] = mapped_column(Text, nullable=False)
    #: server time the verdict was recorded (orders verdicts)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: the API key that posted it (``who`` is only a label)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: latest imported run when the verdict was given
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the time the client claimed, kept as data
    client_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_feedback_target", "target_type", "target_id"),
        Index("ix_feedback_key", "key_id"),
        Index("ix_feedback_ts", "ts"),
    )


class StoreProbe(Base):
    """One row that ``/readyz`` rewrites to prove the write path works."""

    __tablename__ = "store_probe"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ApiKeyRow(Base):
    """An API key: only an HMAC-SHA-256 of its secret under the server key secret is kept
    (``scheme`` ``hmac-sha256``; ``scrypt:…`` rows are keys made before revision 0002)."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    scheme: Mapped[str] = mapped_column(String(64), nullable=False)
    salt: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(256), nullable=False)
    scopes: Mapped[str] = mapped_column(String(256), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


#: ``audit_events.kind`` values
AUDIT_EVENT_KINDS = ("api_key", "watermark_key")


def cli_actor() -> str:
    """``cli:<os user>``: who an administrative command was run by."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def audit_event(
    conn: Any, *, kind: str, action: str, target_id: str, actor: str, detail: str
) -> None:
    """Record one administrative event inside the caller's transaction."""
    from datetime import UTC
    from datetime import datetime as _dt

    conn.execute(
        AuditEventRow.__table__.insert().values(
            ts=_dt.now(UTC),
            kind=kind,
            action=action,
            target_id=target_id,
            actor=actor,
            detail=detail,
        )
    )


class AuditEventRow(Base):
    """An administrative event: an API key created or revoked, a watermark key created or
    rotated (migration 0004).  ``actor``: the API key id, or ``cli:<user>``."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(String(300), nullable=False)
    actor: Mapped[str] = mapped_column(String(300), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_audit_events_ts", "ts"),)
