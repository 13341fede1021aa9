"""an outbox of messages to customers (renewal PO requests), each sent exactly once

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outgoing_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject_key", sa.String(600), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("customer_ref", sa.String(128), nullable=False),
        sa.Column("po_number", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", state.types.UtcDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_expires_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("sent_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", state.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", state.types.UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outgoing_messages_dedupe_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outgoing_messages_message_id")),
    )
    op.create_index("ix_outgoing_messages_due", "outgoing_messages", ["state", "next_attempt_at"])
    op.create_index("ix_outgoing_messages_tenant", "outgoing_messages", ["tenant", "kind"])


def downgrade() -> None:
    op.drop_index("ix_outgoing_messages_tenant", table_name="outgoing_messages")
    op.drop_index("ix_outgoing_messages_due", table_name="outgoing_messages")
    op.drop_table("outgoing_messages")
