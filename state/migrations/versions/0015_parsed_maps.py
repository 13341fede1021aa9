"""the parse of a large customer master kept by its content digest, one row per tenant and map,
so an unchanged map is read from one row instead of parsed from TOML on every run

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import state.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parsed_maps",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body_json", sa.Text, nullable=False),
        sa.Column("parsed_at", state.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "role", name="pk_parsed_maps"),
    )


def downgrade() -> None:
    op.drop_table("parsed_maps")
