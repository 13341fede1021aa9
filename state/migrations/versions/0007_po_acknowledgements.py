"""each PO revision's acknowledgement to the buyer: the decision and its delivery

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "po_acknowledgements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("po_key", sa.String(600), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("po_number", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ack_id", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_expires_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("remote_ref", sa.String(256), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("decided_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("sent_at", state.types.UtcDateTime(), nullable=True),
        sa.Column("created_at", state.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", state.types.UtcDateTime(), nullable=False),
        sa.UniqueConstraint("tenant", "po_key", "revision", name="uq_po_acknowledgements_revision"),
    )
    op.create_index(
        "ix_po_acknowledgements_due", "po_acknowledgements", ["tenant", "state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_po_acknowledgements_due", table_name="po_acknowledgements")
    op.drop_table("po_acknowledgements")
