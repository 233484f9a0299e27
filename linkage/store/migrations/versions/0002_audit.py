"""Audit: the API key behind every verdict and signup decision, server-time verdicts.

* ``feedback``: ``key_id`` (the key that posted it), ``run_id`` (latest run when it
  was given), ``client_ts`` (the time the client claimed; ``ts`` is server time).
  Existing rows keep their ``ts`` as ``client_ts``; a ``ts`` in the future of the
  upgrade is clamped to the upgrade time (a verdict dated 9999 would otherwise
  outrank every later one).
* ``signups``: ``key_id`` and ``run_id`` (the model's run).
* ``store_probe``: one row ``/readyz`` rewrites to prove the write path.
* ``schema_version`` 1 -> 2, so a linkage that only knows the old runner refuses
  this store instead of writing rows without key ids.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = datetime.now(UTC)
    with op.batch_alter_table("feedback") as b:
        b.add_column(sa.Column("key_id", sa.String(32), nullable=True))
        b.add_column(sa.Column("run_id", sa.Integer, nullable=True))
        b.add_column(sa.Column("client_ts", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_feedback_key", "feedback", ["key_id"])
    op.create_index("ix_feedback_ts", "feedback", ["ts"])
    fb = sa.table(
        "feedback",
        sa.column("ts", sa.DateTime(timezone=True)),
        sa.column("client_ts", sa.DateTime(timezone=True)),
    )
    op.execute(sa.update(fb).values(client_ts=fb.c.ts))
    op.execute(sa.update(fb).where(fb.c.ts > now).values(ts=now))
    with op.batch_alter_table("signups") as b:
        b.add_column(sa.Column("key_id", sa.String(32), nullable=True))
        b.add_column(sa.Column("run_id", sa.Integer, nullable=True))
    op.create_index("ix_signups_key", "signups", ["key_id"])
    op.create_table(
        "store_probe",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    )
    sv = sa.table("schema_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer))
    op.execute(sa.update(sv).where(sv.c.id == 1).values(version=2))


def downgrade() -> None:
    sv = sa.table("schema_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer))
    op.execute(sa.update(sv).where(sv.c.id == 1).values(version=1))
    op.drop_table("store_probe")
    op.drop_index("ix_signups_key", "signups")
    with op.batch_alter_table("signups") as b:
        b.drop_column("run_id")
        b.drop_column("key_id")
    op.drop_index("ix_feedback_ts", "feedback")
    op.drop_index("ix_feedback_key", "feedback")
    with op.batch_alter_table("feedback") as b:
        b.drop_column("client_ts")
        b.drop_column("run_id")
        b.drop_column("key_id")
