"""What a tenant's reconciliation was last computed from, to tell whether it must run again.

Reconciliation is a function of the stored POs, the billing periods, the rejected PO revisions,
the outbox's draws on PO balances and holds on billing periods, the settings and maps, and the
day. `inputs_digest` reads only the narrow columns that stand for those (content hashes,
revisions, states), never the documents, so checking costs a scan of keys, not a reconcile.

Pushing moves a row from planned to pushed; for reconciliation both are one thing (a live row
that draws on its PO and holds its period), so a push alone does not call for another
reconcile. A row gone dead or withdrawn draws nothing: that changes the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from state.acks import rejected_po_keys
from state.outbox import DEAD, WITHDRAWN
from state.tables import billing_records, invoice_outbox, po_records, reconcile_checkpoints


def inputs_digest(conn: Connection, tenant: str, settings_digest: str) -> str:
    """One SHA-256 over the tenant's reconcile inputs as stored now, and the settings' digest."""
    digest = hashlib.sha256(f"reconcile-inputs/1|{tenant}|{settings_digest}\n".encode())
    pos = po_records.c
    _feed(
        digest,
        "pos",
        conn.execute(
            select(pos.id, pos.revision, pos.status, pos.content_hash)
            .where(pos.tenant == tenant)
            .order_by(pos.id)
        ),
    )
    billing = billing_records.c
    _feed(
        digest,
        "billing",
        conn.execute(
            select(billing.id, billing.billing_key, billing.content_hash)
            .where(billing.tenant == tenant)
            .order_by(billing.id)
        ),
    )
    _feed(digest, "rejected", ((key,) for key in sorted(rejected_po_keys(conn, tenant))))
    rows = invoice_outbox.c
    outbox = conn.execute(
        select(
            rows.id,
            rows.idempotency_key,
            rows.plan_hash,
            rows.po_revision,
            rows.state,
            rows.uncertain,
            rows.document_type,
            rows.credits_key,
            rows.credited_by,
            rows.reissue,
        )
        .where(rows.tenant == tenant)
        .order_by(rows.id)
    )
    _feed(digest, "outbox", (_outbox_row(row) for row in outbox))
    return digest.hexdigest()


def _outbox_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """An outbox row as reconciliation sees it: planned, retrying, pushing and pushed rows draw
    and hold alike (one "live" standing); dead and withdrawn ones do not."""
    (
        row_id,
        key,
        plan_hash,
        po_revision,
        state,
        uncertain,
        document_type,
        credits_key,
        credited_by,
        reissue,
    ) = row
    standing = state if state in (DEAD, WITHDRAWN) else "live"
    return (
        row_id,
        key,
        plan_hash,
        po_revision,
        standing,
        bool(uncertain) and state == DEAD,
        document_type,
        credits_key,
        credited_by,
        bool(reissue),
    )


def _feed(digest: Any, section: str, rows: Iterable[Any]) -> None:
    digest.update(f"[{section}]\n".encode())
    for row in rows:
        digest.update("\x1f".join("" if value is None else str(value) for value in row).encode())
        digest.update(b"\n")


def stored_digest(conn: Connection, tenant: str) -> str | None:
    """The inputs digest of the tenant's last reconciliation, if one was recorded."""
    return conn.execute(
        select(reconcile_checkpoints.c.inputs_digest).where(reconcile_checkpoints.c.tenant == tenant)
    ).scalar_one_or_none()


def record(conn: Connection, tenant: str, inputs: str, now: datetime, run_id: str | None) -> None:
    """Remember what the reconciliation just written (in this transaction) was computed from."""
    conn.execute(delete(reconcile_checkpoints).where(reconcile_checkpoints.c.tenant == tenant))
    conn.execute(
        insert(reconcile_checkpoints).values(
            tenant=tenant, inputs_digest=inputs, computed_at=now, run_id=run_id
        )
    )


def forget(conn: Connection, tenant: str) -> None:
    """The next sync reconciles in full whatever its inputs."""
    conn.execute(delete(reconcile_checkpoints).where(reconcile_checkpoints.c.tenant == tenant))
