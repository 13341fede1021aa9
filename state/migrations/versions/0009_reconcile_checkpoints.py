"""what the last reconciliation was computed from, so an unchanged sync need not reconcile again

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_checkpoints",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("inputs_digest", sa.String(64), nullable=False),
        sa.Column("computed_at", state.types.UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_reconcile_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_checkpoints")
