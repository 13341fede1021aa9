"""indexes by customer on the tables a reconciliation reads a batch of customers from, and over
the POs whose content moved since they were last resolved, so a batch reads its own rows instead
of scanning every table once per batch

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BY_CUSTOMER = {
    "ix_po_records_customer": ("po_records", "reconciled_customer"),
    "ix_billing_records_customer": ("billing_records", "customer_ref"),
    "ix_match_results_customer": ("match_results", "customer_ref"),
    "ix_invoice_outbox_customer": ("invoice_outbox", "customer_ref"),
}
# Written as `state.ingest.MOVED` renders it: SQLite applies a partial index only to a query
# that states its condition the same way.
MOVED = sa.text("reconciled_hash IS NULL OR reconciled_hash != content_hash")


def upgrade() -> None:
    for name, (table, column) in BY_CUSTOMER.items():
        op.create_index(name, table, ["tenant", column])
    op.create_index(
        "ix_po_records_moved", "po_records", ["tenant", "id"], sqlite_where=MOVED, postgresql_where=MOVED
    )


def downgrade() -> None:
    op.drop_index("ix_po_records_moved", table_name="po_records")
    for name, (table, _) in BY_CUSTOMER.items():
        op.drop_index(name, table_name=table)
