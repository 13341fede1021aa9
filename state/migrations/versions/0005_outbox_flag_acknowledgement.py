"""a flagged invoice can be acknowledged by support with a note

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.add_column(sa.Column("flag_acked_at", state.types.UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("flag_ack_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.drop_column("flag_ack_note")
        batch.drop_column("flag_acked_at")
