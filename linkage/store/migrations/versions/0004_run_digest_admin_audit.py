"""Run digests and the admin audit.

* ``runs.digest``: sha256 of the imported run's ``manifest.json`` (which holds the
  checksums of its files): importing the same run again finds it instead of adding a
  second run, and the service re-checks the files against it before loading a model.
* ``audit_events``: administrative events that change who can do what or how outputs
  are marked: API key created / revoked, watermark key created / rotated.  ``actor``
  is the API key id that did it, or ``cli:<user>`` for the command line.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as b:
        b.add_column(sa.Column("digest", sa.String(64), nullable=True))
    op.create_index("ix_runs_digest", "runs", ["digest"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_ts", "audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_runs_digest", "runs")
    with op.batch_alter_table("runs") as b:
        b.drop_column("digest")
