"""What support, status and reports read of the outbox, and the flags they set on sent invoices:
rows by state or flag, counts, each row's draw on its PO, and support's acknowledgements."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from connector.model import InvoicePlan
from state.credits import HOLDING, STANDING
from state.outbox import DEAD, PUSHED, PUSHING, UNSENT, WITHDRAWN
from state.scopes import in_scopes
from state.tables import invoice_outbox


@dataclass(frozen=True)
class Consumption:
    """An outbox row's draw on its PO balance."""

    po_key: str
    billing_key: str
    amount: Decimal
    currency: str
    pushed: bool
    po_revision: int
    plan: InvoicePlan


def sent_rows(
    conn: Connection, tenant: str, customers: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Invoice rows that exist or may exist remotely (pushed, pushing, or uncertain) and hold
    their billing period: not credited, or credited without a reissue (`state.credits`).
    With `customers`, only the rows of their billing periods."""
    query = select(*[c for c in invoice_outbox.c]).where(
        invoice_outbox.c.tenant == tenant,
        or_(invoice_outbox.c.state.in_((PUSHING, PUSHED)), invoice_outbox.c.uncertain.is_(True)),
        HOLDING,
    )
    if customers is not None:
        query = query.where(in_scopes(invoice_outbox.c.customer_ref, customers))
    return [dict(row._mapping) for row in conn.execute(query.order_by(invoice_outbox.c.id))]


def flag_amended(conn: Connection, key: str, detail: str, now: datetime) -> bool:
    """Flag a sent invoice whose PO or period changed afterwards; True when newly flagged.

    A flag support acknowledged is raised again when what changed is no longer what they saw.
    """
    rows = invoice_outbox.c
    return bool(
        conn.execute(
            update(invoice_outbox)
            .where(
                rows.idempotency_key == key,
                or_(
                    rows.amended_after_push.is_(False),
                    and_(rows.flag_acked_at.is_not(None), rows.amended_detail.is_distinct_from(detail)),
                ),
            )
            .values(
                amended_after_push=True,
                amended_detail=detail,
                flag_acked_at=None,
                flag_ack_note=None,
                updated_at=now,
            )
        ).rowcount
    )


def acknowledge_flags(
    conn: Connection, tenant: str, names: Sequence[str], note: str, now: datetime
) -> list[str]:
    """Mark the flags of the rows named (idempotency key or invoice number) handled, with a note.

    Returns the invoice numbers acknowledged; rows not flagged are left alone.
    """
    rows = invoice_outbox.c
    named = and_(
        rows.tenant == tenant,
        or_(rows.idempotency_key.in_(list(names)), rows.invoice_number.in_(list(names))),
        or_(rows.total_mismatch, rows.amended_after_push),
    )
    found = [row.invoice_number for row in conn.execute(select(rows.invoice_number).where(named))]
    if found:
        conn.execute(
            update(invoice_outbox).where(named).values(flag_acked_at=now, flag_ack_note=note, updated_at=now)
        )
    return sorted(set(found))


def states_named(conn: Connection, tenant: str, keys: Sequence[str]) -> dict[str, str]:
    """The state of each row named by idempotency key or invoice number, by the name given."""
    rows = conn.execute(
        select(
            invoice_outbox.c.idempotency_key, invoice_outbox.c.invoice_number, invoice_outbox.c.state
        ).where(
            invoice_outbox.c.tenant == tenant,
            or_(
                invoice_outbox.c.idempotency_key.in_(list(keys)),
                invoice_outbox.c.invoice_number.in_(list(keys)),
            ),
        )
    ).all()
    found: dict[str, str] = {}
    for row in rows:
        for name in (row.idempotency_key, row.invoice_number):
            if name in keys:
                found[name] = row.state
    return found


def consumption(conn: Connection, tenant: str, customers: Collection[str] | None = None) -> list[Consumption]:
    """Every live invoice's draw on its PO (dead rows, credited invoices and credit notes draw
    nothing: a credit note gives its invoice's draw back); with `customers`, only the draws of
    their billing periods."""
    query = select(
        invoice_outbox.c.po_key,
        invoice_outbox.c.billing_key,
        invoice_outbox.c.amount,
        invoice_outbox.c.currency,
        invoice_outbox.c.state,
        invoice_outbox.c.po_revision,
        invoice_outbox.c.plan_json,
    ).where(
        invoice_outbox.c.tenant == tenant,
        invoice_outbox.c.state.notin_((DEAD, WITHDRAWN)),
        STANDING,
    )
    if customers is not None:
        query = query.where(in_scopes(invoice_outbox.c.customer_ref, customers))
    rows = conn.execute(query)
    return [
        Consumption(
            po_key=row.po_key,
            billing_key=row.billing_key,
            amount=row.amount,
            currency=row.currency,
            pushed=row.state == PUSHED,
            po_revision=row.po_revision,
            plan=InvoicePlan.model_validate_json(row.plan_json),
        )
        for row in rows
    ]


def consumed_per_po(draws: Iterable[Consumption]) -> dict[str, Decimal]:
    """PO key -> net amount invoiced on it: one draw per (PO, billing period), however many sinks
    the invoice goes to."""
    seen: set[tuple[str, str]] = set()
    consumed: dict[str, Decimal] = {}
    for draw in draws:
        if (draw.po_key, draw.billing_key) not in seen:
            seen.add((draw.po_key, draw.billing_key))
            consumed[draw.po_key] = consumed.get(draw.po_key, Decimal(0)) + draw.amount
    return consumed


def count_by_state(conn: Connection, tenant: str) -> dict[str, dict[str, int]]:
    """sink -> state -> count."""
    rows = conn.execute(
        select(invoice_outbox.c.sink, invoice_outbox.c.state, func.count())
        .where(invoice_outbox.c.tenant == tenant)
        .group_by(invoice_outbox.c.sink, invoice_outbox.c.state)
    )
    counts: dict[str, dict[str, int]] = {}
    for sink, state, count in rows:
        counts.setdefault(sink, {})[state] = int(count)
    return counts


def oldest_unsent(conn: Connection, tenant: str) -> dict[str, datetime]:
    """sink -> when its oldest row still waiting to be sent (planned, retry, pushing) was planned."""
    rows = conn.execute(
        select(invoice_outbox.c.sink, func.min(invoice_outbox.c.created_at))
        .where(invoice_outbox.c.tenant == tenant, invoice_outbox.c.state.in_(UNSENT))
        .group_by(invoice_outbox.c.sink)
    )
    return {sink: created for sink, created in rows}


def list_rows(
    conn: Connection,
    tenant: str,
    *,
    state: str | None = None,
    flagged: bool = False,
    acknowledged: bool | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows for status and reports (without the plan JSON); `acknowledged` False: only
    flags not yet handled, True: only handled ones."""
    query = select(*[c for c in invoice_outbox.c if c.name != "plan_json"]).where(
        invoice_outbox.c.tenant == tenant
    )
    if state:
        query = query.where(invoice_outbox.c.state == state)
    if flagged:
        query = query.where(or_(invoice_outbox.c.total_mismatch, invoice_outbox.c.amended_after_push))
    if acknowledged is not None:
        acked = invoice_outbox.c.flag_acked_at
        query = query.where(acked.is_not(None) if acknowledged else acked.is_(None))
    return [dict(row._mapping) for row in conn.execute(query.order_by(invoice_outbox.c.id))]


def plan_json_of(conn: Connection, key: str) -> dict[str, Any] | None:
    text = conn.execute(
        select(invoice_outbox.c.plan_json).where(invoice_outbox.c.idempotency_key == key)
    ).scalar_one_or_none()
    return None if text is None else dict(json.loads(text))
