"""Credit notes in the outbox: planning one for a sent invoice, and what crediting changes.

A credit note is an outbox row like an invoice (same claim, lookup-before-send and record
steps), keyed by its invoice's key, so crediting twice plans it once. Planning it and marking
its invoice credited are one transaction. From then on the credited invoice no longer draws on
its PO (its balance is given back) and, when it is to be reissued, no longer holds its billing
period: the next reconcile invoices the period again, under the next issue number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from connector.model import DocumentType, InvoicePlan, Reissue
from state.outbox import PUSHED, new_row
from state.tables import invoice_outbox

INVOICE, CREDIT_NOTE = DocumentType.INVOICE.value, DocumentType.CREDIT_NOTE.value

rows_ = invoice_outbox.c

# Invoice rows that still stand: not a credit note, not credited.
STANDING = and_(rows_.document_type == INVOICE, rows_.credited_by.is_(None))
# Rows that hold their billing period against a new invoice: standing invoices, and credited
# ones that are not to be reissued (the period was invoiced and credited: it is settled).
HOLDING = and_(rows_.document_type == INVOICE, or_(rows_.credited_by.is_(None), rows_.reissue.is_(False)))


class CreditRefused(ValueError):
    """The named invoice cannot be credited now; the message says why and what to do."""


@dataclass(frozen=True)
class PlannedCredit:
    """A credit note planned (or found already planned) for one sink's copy of an invoice."""

    sink: str
    invoice_number: str
    credit_number: str
    idempotency_key: str
    newly_planned: bool


PlanCredit = Callable[[InvoicePlan, str], InvoicePlan]  # (the sent invoice, its remote id) -> credit


def credit_invoice(
    conn: Connection,
    tenant: str,
    name: str,
    *,
    plan_credit: PlanCredit,
    reissue: bool,
    now: datetime,
) -> list[PlannedCredit]:
    """Plan the credit note of invoice `name` (number or key) in every sink that holds it.

    Refused (CreditRefused) when no invoice has that name, when it is a credit note, or when a
    copy is not yet known to be in its sink (it may still be sent or withdrawn: nothing to credit
    yet). A copy already credited keeps its credit note (planned once).
    """
    found = conn.execute(
        select(*rows_).where(
            rows_.tenant == tenant, or_(rows_.invoice_number == name, rows_.idempotency_key == name)
        )
    ).all()
    if not found:
        raise CreditRefused(f"no invoice {name!r} in the outbox")
    if any(row.document_type == CREDIT_NOTE for row in found):
        raise CreditRefused(f"{name} is a credit note; credit the invoice it corrects instead")
    number = found[0].invoice_number
    copies = conn.execute(
        select(*rows_).where(rows_.tenant == tenant, rows_.invoice_number == number).order_by(rows_.id)
    ).all()
    unsent = [row for row in copies if row.state != PUSHED and row.credited_by is None]
    if unsent:
        shown = ", ".join(
            f"{row.sink} ({row.state}{', uncertain' if row.uncertain else ''})" for row in unsent
        )
        raise CreditRefused(
            f"invoice {number} is not known to be in every sink: {shown}; run `po-connector push` "
            "(or `replay`) until it is pushed, then credit it"
        )
    planned = []
    for row in copies:
        if row.credited_by is not None:
            credit = conn.execute(
                select(rows_.invoice_number).where(rows_.idempotency_key == row.credited_by)
            )
            planned.append(
                PlannedCredit(row.sink, number, credit.scalar_one(), row.credited_by, newly_planned=False)
            )
            continue
        credit_plan = plan_credit(InvoicePlan.model_validate_json(row.plan_json), row.remote_id or "")
        _insert_credit(conn, row, credit_plan, now)
        conn.execute(
            update(invoice_outbox)
            .where(rows_.id == row.id, rows_.credited_by.is_(None))
            .values(
                credited_by=credit_plan.idempotency_key,
                reissue=reissue,
                # a flag on a credited invoice is handled by the credit itself
                flag_acked_at=func.coalesce(rows_.flag_acked_at, now),
                flag_ack_note=func.coalesce(rows_.flag_ack_note, f"credited by {credit_plan.invoice_number}"),
                updated_at=now,
            )
        )
        planned.append(
            PlannedCredit(
                row.sink, number, credit_plan.invoice_number, credit_plan.idempotency_key, newly_planned=True
            )
        )
    return planned


def _insert_credit(conn: Connection, invoice: Any, plan: InvoicePlan, now: datetime) -> None:
    row = new_row(plan, now, document_type=CREDIT_NOTE, credits_key=invoice.idempotency_key, reissue=False)
    conn.execute(insert(invoice_outbox).values(**row))


def reissues(conn: Connection, tenant: str) -> dict[str, Reissue]:
    """billing key -> its next invoice after credit notes with a reissue: the count of its credited
    invoices is the issue ordinal, the latest credit's date the reissue's date (so it is the same
    on every run)."""
    invoice = invoice_outbox.alias("invoice")
    query = (
        select(
            rows_.billing_key, func.count(func.distinct(invoice.c.invoice_number)), func.max(rows_.created_at)
        )
        .join(invoice, invoice.c.idempotency_key == rows_.credits_key)
        .where(rows_.tenant == tenant, rows_.document_type == CREDIT_NOTE, invoice.c.reissue.is_(True))
        .group_by(rows_.billing_key)
    )
    return {
        key: Reissue(issue=int(count), issued_on=latest.date()) for key, count, latest in conn.execute(query)
    }


@dataclass(frozen=True)
class ChainLink:
    """One document of a billing period's chain: an invoice, its credit note, its reissue."""

    document_type: str
    invoice_number: str
    sink: str
    state: str
    credits: str  # the invoice number a credit note credits ("" for an invoice)
    credited_by: str  # the credit note number of a credited invoice ("" otherwise)
    reissued: bool
    issue_date: date | None
    gross: str
    currency: str


def chains(conn: Connection, tenant: str) -> dict[str, list[ChainLink]]:
    """billing key -> its documents in the order they were planned, for periods with a credit."""
    credited = select(rows_.billing_key).where(rows_.tenant == tenant, rows_.document_type == CREDIT_NOTE)
    found = conn.execute(
        select(*rows_).where(rows_.tenant == tenant, rows_.billing_key.in_(credited)).order_by(rows_.id)
    ).all()
    numbers = {row.idempotency_key: row.invoice_number for row in found}
    out: dict[str, list[ChainLink]] = {}
    for row in found:
        plan = InvoicePlan.model_validate_json(row.plan_json)
        out.setdefault(row.billing_key, []).append(
            ChainLink(
                document_type=row.document_type,
                invoice_number=row.invoice_number,
                sink=row.sink,
                state=row.state,
                credits=numbers.get(row.credits_key or "", ""),
                credited_by=numbers.get(row.credited_by or "", ""),
                reissued=bool(row.reissue),
                issue_date=plan.issue_date,
                gross=str(row.gross_amount if row.gross_amount is not None else row.amount),
                currency=row.currency,
            )
        )
    return out


def credited_numbers(conn: Connection, tenant: str, numbers: Sequence[str]) -> dict[str, str]:
    """invoice number -> the number of its credit note, for those of `numbers` that are credited."""
    credit = invoice_outbox.alias("credit")
    query = (
        select(rows_.invoice_number, credit.c.invoice_number)
        .join(credit, credit.c.idempotency_key == rows_.credited_by)
        .where(rows_.tenant == tenant, rows_.invoice_number.in_(list(numbers)))
    )
    return {number: credit_number for number, credit_number in conn.execute(query)}
