"""what each customer's last reconciliation was computed from, so a sync reconciles only the
customers whose inputs changed; invoices pushed in issue-date order whatever order they were
planned in

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL stamps: every PO is resolved again by the first reconciliation after the upgrade.
    with op.batch_alter_table("po_records") as batch:
        batch.add_column(sa.Column("reconciled_customer", sa.String(128), nullable=True))
        batch.add_column(sa.Column("reconciled_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reconciled_number", sa.String(128), nullable=True))
        batch.create_index("ix_po_records_reconciled_number", ["tenant", "reconciled_number"])
    # A checkpoint without a settings digest matches no sync: the next one reconciles in full.
    with op.batch_alter_table("reconcile_checkpoints") as batch:
        batch.add_column(sa.Column("settings_digest", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("owners_digest", sa.String(64), nullable=False, server_default=""))
    # NULL for rows planned before: they were planned, and are pushed, first.
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.add_column(sa.Column("issue_date", sa.Date(), nullable=True))
    op.create_table(
        "reconcile_scopes",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("inputs_digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "scope", name=op.f("pk_reconcile_scopes")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_scopes")
    with op.batch_alter_table("invoice_outbox") as batch:
        batch.drop_column("issue_date")
    with op.batch_alter_table("reconcile_checkpoints") as batch:
        batch.drop_column("owners_digest")
        batch.drop_column("settings_digest")
    with op.batch_alter_table("po_records") as batch:
        batch.drop_index("ix_po_records_reconciled_number")
        batch.drop_column("reconciled_number")
        batch.drop_column("reconciled_hash")
        batch.drop_column("reconciled_customer")
