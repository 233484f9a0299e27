"""Respond: one secret watermark key per flagged cluster (issue 17).

``watermark_keys``: ``id`` (public key id ``wm-…``), ``cluster_id`` (stable cluster id,
or ``account:<id>`` for an unclustered account), ``secret`` (32 random bytes; never
returned by the API), ``created_at``, ``retired_at`` (set on rotation; retired keys are
kept so a corpus leaked before the rotation can still be attributed).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watermark_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("cluster_id", sa.String(300), nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_watermark_keys_cluster", "watermark_keys", ["cluster_id", "retired_at"])


def downgrade() -> None:
    op.drop_index("ix_watermark_keys_cluster", "watermark_keys")
    op.drop_table("watermark_keys")
