"""what a run with little new reads, by index: the POs whose current revision has no
acknowledgement row yet (each PO now says which revision has one), and the counts of the outbox
by sink and state and of the results by status (each read from an index alone)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Written as `state.acks.UNDECIDED` renders it: SQLite applies a partial index only to a query
# that states its condition the same way.
UNDECIDED = sa.text("acknowledged_revision IS NULL OR acknowledged_revision != revision")
# Migration 0013's trigger does not watch the new column: acknowledging is no reconcile input.
WATCHED: dict[str, tuple[str, ...]] = {}
IGNORED = {"po_records": ("acknowledged_revision",)}


def upgrade() -> None:
    # Not in a batch: on SQLite a batch copies the table, and the copy has no triggers (0013).
    op.add_column("po_records", sa.Column("acknowledged_revision", sa.Integer))
    op.execute(
        "UPDATE po_records SET acknowledged_revision = revision WHERE EXISTS ("
        "SELECT 1 FROM po_acknowledgements AS ack WHERE ack.tenant = po_records.tenant"
        " AND ack.po_key = po_records.tenant || '/' || po_records.source || '/' || po_records.external_id"
        " AND ack.revision = po_records.revision)"
    )
    op.create_index("ix_invoice_outbox_state", "invoice_outbox", ["tenant", "sink", "state"])
    op.create_index("ix_match_results_status", "match_results", ["tenant", "status"])
    op.create_index(
        "ix_po_records_undecided",
        "po_records",
        ["tenant", "id"],
        sqlite_where=UNDECIDED,
        postgresql_where=UNDECIDED,
    )


def downgrade() -> None:
    op.drop_index("ix_po_records_undecided", table_name="po_records")
    op.drop_index("ix_match_results_status", table_name="match_results")
    op.drop_index("ix_invoice_outbox_state", table_name="invoice_outbox")
    op.drop_column("po_records", "acknowledged_revision")
