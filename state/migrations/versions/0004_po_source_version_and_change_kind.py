"""POs keep the buyer system's own version beside our revision; each history row its change kind

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # History recorded before kinds were told apart was recorded as revisions: supplier changes.
    with op.batch_alter_table("po_records") as batch:
        batch.add_column(sa.Column("source_version", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("po_revisions") as batch:
        batch.add_column(sa.Column("source_version", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("change_kind", sa.String(16), nullable=False, server_default="supplier"))


def downgrade() -> None:
    with op.batch_alter_table("po_revisions") as batch:
        batch.drop_column("change_kind")
        batch.drop_column("source_version")
    with op.batch_alter_table("po_records") as batch:
        batch.drop_column("source_version")
