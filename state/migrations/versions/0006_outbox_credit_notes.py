"""the outbox holds credit notes beside invoices, each naming the invoice it credits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.add_column(sa.Column("document_type", sa.String(16), nullable=False, server_default="invoice"))
        batch.add_column(sa.Column("credits_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("credited_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reissue", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.drop_column("reissue")
        batch.drop_column("credited_by")
        batch.drop_column("credits_key")
        batch.drop_column("document_type")
