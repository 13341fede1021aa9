"""an index over the unsent outbox rows in claiming order, so a claim reads the next due rows
instead of sorting every due row of the sink

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "ix_invoice_outbox_claim"
UNSENT = sa.text("state IN ('planned', 'retry', 'pushing')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Claims order by issue date, undated rows first: PostgreSQL's ascending order puts NULLs
        # last unless the index says otherwise.
        op.create_index(
            NAME,
            "invoice_outbox",
            ["tenant", "sink", sa.text("issue_date NULLS FIRST"), "id"],
            postgresql_where=UNSENT,
        )
    else:  # SQLite sorts NULLs first in ascending order
        op.create_index(NAME, "invoice_outbox", ["tenant", "sink", "issue_date", "id"], sqlite_where=UNSENT)


def downgrade() -> None:
    op.drop_index(NAME, table_name="invoice_outbox")
