"""the outbox keeps each invoice's planned tax and gross and the tax the sink reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows planned before tax was carried hold no tax: their gross is their net amount.
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.add_column(sa.Column("tax_amount", state.types.DecimalText(length=48), nullable=True))
        batch.add_column(sa.Column("gross_amount", state.types.DecimalText(length=48), nullable=True))
        batch.add_column(sa.Column("remote_tax", state.types.DecimalText(length=48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.drop_column("remote_tax")
        batch.drop_column("gross_amount")
        batch.drop_column("tax_amount")
