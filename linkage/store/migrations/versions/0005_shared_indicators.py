"""Share: partners' indicators imported into the store (issue 26).

``shared_indicators``: one row per (partner, indicator id), the partner's latest version:
``bundle_id``, ``key_id`` (the partnership key's public id, never the key), ``confidence``,
``modified``, ``valid_until`` (expiry), ``imported_at``, ``revoked`` and
``revoked_reason`` (withdrawn by the partner), the partner cluster's ``score``, ``level``
and ``verdict``, ``n_hashes`` and ``hashes`` (kind -> keyed hash -> share; no raw value).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_indicators",
        sa.Column("partner", sa.String(100), primary_key=True),
        sa.Column("indicator_id", sa.String(100), primary_key=True),
        sa.Column("bundle_id", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("revoked_reason", sa.Text, nullable=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("n_hashes", sa.Integer, nullable=False),
        sa.Column("hashes", sa.JSON, nullable=False),
    )
    op.create_index("ix_shared_indicators_active", "shared_indicators", ["revoked", "valid_until"])


def downgrade() -> None:
    op.drop_index("ix_shared_indicators_active", "shared_indicators")
    op.drop_table("shared_indicators")
