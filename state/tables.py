"""The sync-state schema. Alembic migrations in `state/migrations` create and evolve it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from state.types import DecimalText, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("stream", String(128), primary_key=True),
    Column("cursor_json", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
)

po_records = Table(
    "po_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("source", String(128), nullable=False),
    Column("external_id", String(256), nullable=False),
    Column("po_number", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    # the buyer system's own version label (Coupa version, cXML orderVersion), kept as given
    Column("source_version", String(64), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("canonical_json", Text, nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("document", Text, nullable=False, default=""),
    Column("source_updated_at", UtcDateTime),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    # The customer the last reconciliation resolved the PO's buyer to ('' for none), the PO
    # number as it compares (trimmed, case-folded), and the content hash they were read from:
    # a PO whose hash moved since is resolved again.
    Column("reconciled_customer", String(128)),
    Column("reconciled_number", String(128)),
    Column("reconciled_hash", String(64)),
    # The revision whose acknowledgement row exists (NULL: none yet): a PO whose revision moved
    # past it waits for a decision (migration 0014 indexes those).
    Column("acknowledged_revision", Integer),
    UniqueConstraint("tenant", "source", "external_id", name="uq_po_records_key"),
    Index("ix_po_records_po_number", "tenant", "po_number"),
    Index("ix_po_records_reconciled_number", "tenant", "reconciled_number"),
)

po_revisions = Table(
    "po_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("po_record_id", Integer, ForeignKey("po_records.id", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("source_version", String(64), nullable=False, server_default=""),
    # supplier (a new revision), status (opened/closed/cancelled) or internal (buyer bookkeeping)
    Column("change_kind", String(16), nullable=False, server_default="supplier"),
    Column("content_hash", String(64), nullable=False),
    Column("canonical_json", Text, nullable=False),
    Column("changes_json", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
    Index("ix_po_revisions_record", "po_record_id", "revision"),
)

processed_inputs = Table(
    "processed_inputs",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("source", String(128), primary_key=True),
    Column("input_key", String(512), primary_key=True),
    Column("document", Text, nullable=False, default=""),
    Column("processed_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
)

billing_records = Table(
    "billing_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("billing_source", String(128), nullable=False),
    Column("billing_key", String(512), nullable=False),
    Column("customer_ref", String(128), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("canonical_json", Text, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant", "billing_key", name="uq_billing_records_key"),
)

match_results = Table(
    "match_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("subject_key", String(600), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reasons_json", Text, nullable=False),
    Column("warnings_json", Text, nullable=False),
    Column("billing_key", String(512)),
    Column("po_key", String(600)),
    Column("po_number", String(128)),
    Column("customer_ref", String(128)),
    Column("amount", DecimalText),
    Column("currency", String(3)),
    Column("period_start", Date),
    Column("period_end", Date),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
    UniqueConstraint("tenant", "subject_key", name="uq_match_results_subject"),
    Index("ix_match_results_status", "tenant", "status"),  # counts, from the index alone
)

# What the tenant's last reconciliation was computed from: a digest of its inputs (POs, billing,
# rejections, the outbox's draws and holds), of the settings and maps and the day, and of who
# owns each PO number, so a sync whose inputs are unchanged keeps the stored results.
reconcile_checkpoints = Table(
    "reconcile_checkpoints",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("inputs_digest", String(64), nullable=False),
    Column("settings_digest", String(64), nullable=False, server_default=""),
    Column("owners_digest", String(64), nullable=False, server_default=""),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
)

# A large map file (the customer master) as its TOML parses, JSON, by the digest of its bytes:
# one row per tenant and map, replaced when the file changes (`state.parsed_maps`).
parsed_maps = Table(
    "parsed_maps",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("body_json", Text, nullable=False),
    Column("parsed_at", UtcDateTime, nullable=False),
)

# The same per customer ('' for the POs of no known customer): a sync reconciles only the
# customers whose digest moved.
reconcile_scopes = Table(
    "reconcile_scopes",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("scope", String(128), primary_key=True),
    Column("inputs_digest", String(64), nullable=False),
)

# A note per tenant (and, on PostgreSQL, per writing transaction) that reconcile inputs were
# written since its last reconciliation: kept by triggers (migration 0013), read and cleared by
# `state.input_notes`.
reconcile_input_changes = Table(
    "reconcile_input_changes",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("txid", BigInteger, primary_key=True, autoincrement=False),
)

invoice_outbox = Table(
    "invoice_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("tenant", String(64), nullable=False),
    Column("sink", String(128), nullable=False),
    Column("invoice_number", String(32), nullable=False),
    Column("po_key", String(600), nullable=False),
    Column("po_number", String(128), nullable=False),
    Column("po_revision", Integer, nullable=False),
    Column("billing_key", String(512), nullable=False),
    Column("customer_ref", String(128), nullable=False),
    Column("amount", DecimalText, nullable=False),  # net: what the invoice draws on its PO
    Column("currency", String(3), nullable=False),
    Column("tax_amount", DecimalText),  # planned tax (NULL: planned before tax was carried)
    Column("gross_amount", DecimalText),  # planned net + tax: what the sink must hold
    Column("plan_json", Text, nullable=False),
    Column("plan_hash", String(64), nullable=False),
    # the plan's issue date: rows are claimed in issue-date order (ERPs number invoices by date)
    Column("issue_date", Date),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(36)),
    Column("lease_expires_at", UtcDateTime),
    Column("uncertain", Boolean, nullable=False, default=False),
    Column("remote_id", String(256)),
    Column("remote_total", DecimalText),
    Column("remote_tax", DecimalText),
    Column("total_mismatch", Boolean, nullable=False, default=False),
    Column("pushed_at", UtcDateTime),
    Column("last_error", Text),
    Column("provider_code", String(64)),
    Column("correlation_id", String(128)),
    Column("amended_after_push", Boolean, nullable=False, default=False),
    Column("amended_detail", Text),
    # support marked the flag handled (flags ack); a later, different change flags it again
    Column("flag_acked_at", UtcDateTime),
    Column("flag_ack_note", Text),
    # "invoice" or "credit_note"; a credit note row names the invoice row it credits, and the
    # invoice row names its credit note and whether the period is to be invoiced again.
    Column("document_type", String(16), nullable=False, default="invoice", server_default="invoice"),
    Column("credits_key", String(64)),
    Column("credited_by", String(64)),
    Column("reissue", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_invoice_outbox_due", "state", "next_attempt_at"),
    Index("ix_invoice_outbox_po", "tenant", "po_key"),
    Index("ix_invoice_outbox_state", "tenant", "sink", "state"),  # counts, from the index alone
    # ix_invoice_outbox_claim (tenant, sink, issue_date, id over the unsent rows) is made by
    # migration 0011 alone: its NULL order is written per dialect.
)

po_acknowledgements = Table(
    "po_acknowledgements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("po_key", String(600), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("source", String(128), nullable=False),
    Column("po_number", String(128), nullable=False),
    # pending (waits for support), accept or reject; who decided: "auto" or "support"
    Column("decision", String(16), nullable=False),
    Column("decided_by", String(16)),
    Column("reason", Text, nullable=False, default=""),
    Column("ack_id", String(32)),
    # waiting (no decision yet), planned, sending, sent, retry, dead, unsupported
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_owner", String(36)),
    Column("lease_expires_at", UtcDateTime),
    Column("uncertain", Boolean, nullable=False, default=False),
    Column("remote_ref", String(256)),
    Column("last_error", Text),
    Column("decided_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant", "po_key", "revision", name="uq_po_acknowledgements_revision"),
    Index("ix_po_acknowledgements_due", "tenant", "state", "next_attempt_at"),
)

# Messages we send to customers (a renewal PO request), exactly once: one row per
# (tenant, kind, subject, reason), keyed by `dedupe_key`, holding the message as it goes out.
outgoing_messages = Table(
    "outgoing_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("tenant", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject_key", String(600), nullable=False),  # the PO key or the billing key
    Column("reason", String(128), nullable=False),
    Column("customer_ref", String(128), nullable=False),
    Column("po_number", String(128), nullable=False, default=""),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("message", Text, nullable=False),  # RFC 5322, CRLF line ends, 7-bit
    Column("details_json", Text, nullable=False),  # period, lines, amount: what lists and reports show
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(36)),
    Column("lease_expires_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
    Index("ix_outgoing_messages_due", "state", "next_attempt_at"),
    Index("ix_outgoing_messages_tenant", "tenant", "kind"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("source", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("input_key", String(512)),
    Column("document", Text, nullable=False),
    Column("location", String(256), nullable=False),
    Column("field", String(128), nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("run_id", String(36)),
    UniqueConstraint("tenant", "fingerprint", name="uq_quarantine_fingerprint"),
    Index("ix_quarantine_open", "tenant", "status"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("command", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_code", Integer),
    Column("counts_json", Text, nullable=False, default="{}"),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("error", Text),
    Column("lease_name", String(255)),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(36), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)
