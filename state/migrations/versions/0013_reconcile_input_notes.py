"""triggers that note each tenant whose reconcile inputs a transaction writes, so a sync with
nothing new learns it from one indexed read instead of digesting every input

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NOTES = "reconcile_input_changes"
FUNCTION = "note_reconcile_input"

# Per table: the columns whose change is a change of what reconciliation reads, and the ones
# written by pushing, sending and pulling alone. Every column is in one of the two (a test
# holds the tables to it): a migration that adds a column reconciliation reads recreates the
# table's update trigger. An outbox row's state and uncertainty are watched as reconciliation
# sees them (`state.reconcile_checkpoints._standing`), so a push notes nothing.
WATCHED = {
    "po_records": (
        "tenant",
        "source",
        "external_id",
        "po_number",
        "revision",
        "source_version",
        "status",
        "content_hash",
        "canonical_json",
        "raw_payload",
        "raw_sha256",
        "document",
        "source_updated_at",
        "first_seen_at",
        "changed_at",
        "reconciled_customer",
        "reconciled_number",
        "reconciled_hash",
    ),
    "billing_records": (
        "tenant",
        "billing_source",
        "billing_key",
        "customer_ref",
        "period_start",
        "period_end",
        "content_hash",
        "canonical_json",
        "first_seen_at",
    ),
    "invoice_outbox": (
        "idempotency_key",
        "tenant",
        "sink",
        "invoice_number",
        "po_key",
        "po_number",
        "po_revision",
        "billing_key",
        "customer_ref",
        "amount",
        "currency",
        "tax_amount",
        "gross_amount",
        "plan_json",
        "plan_hash",
        "issue_date",
        "amended_after_push",
        "amended_detail",
        "document_type",
        "credits_key",
        "credited_by",
        "reissue",
        "created_at",
    ),
    "po_acknowledgements": ("tenant", "po_key", "revision", "source", "po_number", "decision"),
}
IGNORED = {
    "po_records": ("id", "last_seen_at"),
    "billing_records": ("id", "last_seen_at"),
    "invoice_outbox": (
        "id",
        "state",  # watched as its standing, below
        "uncertain",  # watched on dead rows, below
        "attempts",
        "next_attempt_at",
        "lease_owner",
        "lease_expires_at",
        "remote_id",
        "remote_total",
        "remote_tax",
        "total_mismatch",
        "pushed_at",
        "last_error",
        "provider_code",
        "correlation_id",
        "flag_acked_at",
        "flag_ack_note",
        "updated_at",
    ),
    "po_acknowledgements": (
        "id",
        "decided_by",
        "reason",
        "ack_id",
        "state",
        "attempts",
        "next_attempt_at",
        "lease_owner",
        "lease_expires_at",
        "uncertain",
        "remote_ref",
        "last_error",
        "decided_at",
        "sent_at",
        "created_at",
        "updated_at",
    ),
}
_STANDING = "(CASE WHEN {row}.state IN ('dead', 'withdrawn') THEN {row}.state ELSE 'live' END)"
_DEAD_UNCERTAIN = "({row}.uncertain AND {row}.state = 'dead')"


def _moved(table: str, differs: str) -> str:
    """The update trigger's condition: a watched value differs between OLD and NEW."""
    pairs = [(f"OLD.{column}", f"NEW.{column}") for column in WATCHED[table]]
    if table == "invoice_outbox":
        for expression in (_STANDING, _DEAD_UNCERTAIN):
            pairs.append((expression.format(row="OLD"), expression.format(row="NEW")))
    return " OR ".join(f"{old} {differs} {new}" for old, new in pairs)


def upgrade() -> None:
    op.create_table(
        NOTES,
        sa.Column("tenant", sa.String(64), primary_key=True),
        # PostgreSQL: the writing transaction's id; SQLite (one writer at a time): 0
        sa.Column("txid", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()
    # Inputs written before these triggers existed are not noted: a tenant with a checkpoint
    # digests its inputs once more.
    op.execute(
        "INSERT INTO reconcile_input_changes (tenant, txid) SELECT tenant, 0 FROM reconcile_checkpoints"
    )


def _postgresql() -> None:
    # The function resolves the notes table in the schema it is made in, whatever the writer's
    # search_path.
    op.execute(
        """
        CREATE FUNCTION note_reconcile_input() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO reconcile_input_changes (tenant, txid) VALUES (OLD.tenant, txid_current())
                ON CONFLICT DO NOTHING;
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.tenant IS DISTINCT FROM OLD.tenant) THEN
                INSERT INTO reconcile_input_changes (tenant, txid) VALUES (NEW.tenant, txid_current())
                ON CONFLICT DO NOTHING;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER {table}_note_written AFTER INSERT OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_note_moved AFTER UPDATE ON {table} FOR EACH ROW "
            f"WHEN ({_moved(table, 'IS DISTINCT FROM')}) EXECUTE FUNCTION {FUNCTION}()"
        )


def _sqlite_note(row: str) -> str:
    # Not INSERT OR IGNORE: an outer statement's own conflict clause would override it.
    return (
        f"INSERT INTO reconcile_input_changes (tenant, txid) SELECT {row}.tenant, 0 "  # noqa: S608 - no input
        f"WHERE NOT EXISTS (SELECT 1 FROM reconcile_input_changes WHERE tenant = {row}.tenant AND txid = 0);"
    )


def _sqlite() -> None:
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER {table}_note_inserted AFTER INSERT ON {table} BEGIN {_sqlite_note('NEW')} END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_note_deleted AFTER DELETE ON {table} BEGIN {_sqlite_note('OLD')} END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_note_moved AFTER UPDATE ON {table} "
            f"WHEN {_moved(table, 'IS NOT')} BEGIN {_sqlite_note('OLD')} {_sqlite_note('NEW')} END"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        kinds = ("written", "moved") if postgresql else ("inserted", "deleted", "moved")
        for kind in kinds:
            op.execute(f"DROP TRIGGER {table}_note_{kind}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute(f"DROP FUNCTION {FUNCTION}()")
    op.drop_table(NOTES)
