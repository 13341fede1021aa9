"""runs record the partition lease they held; index open quarantine rows

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("lease_name", sa.String(length=255), nullable=True))
    op.create_index("ix_quarantine_open", "quarantine", ["tenant", "status"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_open", table_name="quarantine")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_name")
