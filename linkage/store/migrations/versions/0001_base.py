"""Base: the schema the hand-rolled runner wrote as "schema version 1".

Stores made by that runner (a ``schema_version`` table holding 1 and no
``alembic_version``) are stamped at this revision, then upgraded.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The old runner's "schema version 1", one table group at a time."""
    _create_schema_version()
    _create_run_tables()
    _create_decision_tables()
    _create_api_keys()


def _create_schema_version() -> None:
    """``schema_version``, holding 1: what the hand-rolled runner read."""
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.bulk_insert(
        sa.table("schema_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer)),
        [{"id": 1, "version": 1}],
    )


def _create_run_tables() -> None:
    """An imported run: ``runs``, its ``clusters`` (stable ids), ``memberships`` and the
    ``lineage`` between runs' clusters."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_accounts", sa.Integer, nullable=False),
        sa.Column("n_clusters", sa.Integer, nullable=False),
    )
    op.create_table(
        "clusters",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("cluster_id", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(256), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_clusters_cluster_id", "clusters", ["cluster_id"])
    op.create_index("ix_clusters_run_score", "clusters", ["run_id", "score"])
    op.create_table(
        "memberships",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("account_id", sa.String(256), primary_key=True),
        sa.Column("cluster_id", sa.String(32), nullable=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
    )
    op.create_index("ix_memberships_run_cluster", "memberships", ["run_id", "cluster_id"])
    op.create_index("ix_memberships_account", "memberships", ["account_id"])
    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("parent_cluster_id", sa.String(32), nullable=True),
        sa.Column("relation", sa.String(16), nullable=False),
        sa.Column("overlap", sa.Float, nullable=False),
    )
    op.create_index("ix_lineage_cluster", "lineage", ["cluster_id"])
    op.create_index("ix_lineage_parent", "lineage", ["parent_cluster_id"])


def _create_decision_tables() -> None:
    """What the service decided and was told: ``signups`` decisions and analysts'
    ``feedback``."""
    op.create_table(
        "signups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(256), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("cluster_id", sa.String(256), nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("degraded", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_signups_account", "signups", ["account_id"])
    op.create_index("ix_signups_created", "signups", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(256), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("who", sa.String(256), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_target", "feedback", ["target_type", "target_id"])


def _create_api_keys() -> None:
    """``api_keys``: the service's keys (a salted hash, never the secret)."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(256), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for t in ("api_keys", "feedback", "signups", "lineage", "memberships", "clusters", "runs"):
        op.drop_table(t)
    op.drop_table("schema_version")
