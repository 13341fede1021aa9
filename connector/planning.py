"""Turns a matched billing period into the invoice plan a sink creates exactly once.

The idempotency key and the invoice number are derived from stable keys only, so a re-run
plans the same invoice under the same key and number.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from connector.model import (
    BillingPeriod,
    CreditedInvoice,
    DocumentType,
    InvoiceLine,
    InvoicePlan,
    Party,
    PaymentTerms,
    Reissue,
)
from connector.reconcile import Allocation

NO_PO_KEY = ""  # the PO key of an invoice made without a PO


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def _issue_parts(issue: int) -> tuple[str, ...]:
    # The first invoice of a period keeps the key it always had; a reissue after a credit note
    # adds its ordinal, so it is a new invoice under a new number.
    return () if issue == 0 else (f"issue:{issue}",)


def idempotency_key(
    tenant: str, sink: str, customer_ref: str, po_key: str, billing_key: str, issue: int = 0
) -> str:
    """The outbox key of an invoice: sha256 hex of tenant|sink|customer|PO key|billing key
    (|issue:N for the N-th reissue of the period after a credit note)."""
    return _digest(tenant, sink, customer_ref, po_key, billing_key, *_issue_parts(issue))


def invoice_number(tenant: str, customer_ref: str, po_key: str, billing_key: str, issue: int = 0) -> str:
    """Our invoice number, the same in every sink: "INV-" and 12 upper hex digits (16 chars)."""
    return "INV-" + _digest(tenant, customer_ref, po_key, billing_key, *_issue_parts(issue))[:12].upper()


def credit_note_key(invoice_key: str) -> str:
    """The outbox key of the credit note of the invoice keyed `invoice_key` (one per invoice)."""
    return _digest("credit", invoice_key)


def credit_note_number(tenant: str, invoice_number: str) -> str:
    """The credit note's number, the same in every sink: "CN-" and 12 upper hex digits (15 chars)."""
    return "CN-" + _digest(tenant, "credit", invoice_number)[:12].upper()


def plan_credit_note(
    invoice: InvoicePlan, *, reason: str, issue_date: date, remote_id: str = ""
) -> InvoicePlan:
    """The credit note that cancels `invoice` in full in its sink: its lines, amounts and tax.

    It is keyed and numbered from the invoice alone, so crediting the same invoice twice plans
    the same credit note; it is due when issued (nothing is to be paid on a credit).
    """
    if invoice.is_credit_note:
        raise ValueError(f"{invoice.invoice_number} is a credit note; only an invoice can be credited")
    return invoice.model_copy(
        update={
            "idempotency_key": credit_note_key(invoice.idempotency_key),
            "invoice_number": credit_note_number(invoice.tenant, invoice.invoice_number),
            "document_type": DocumentType.CREDIT_NOTE,
            "credits": CreditedInvoice(
                invoice_number=invoice.invoice_number,
                issue_date=invoice.issue_date,
                remote_id=remote_id,
                reason=reason,
            ),
            "issue_date": issue_date,
            "due_date": issue_date,
            "memo": f"Credit note for invoice {invoice.invoice_number}: {reason}"[:4000],
        }
    )


def plan_invoice(
    allocation: Allocation,
    period: BillingPeriod,
    *,
    sink: str,
    tenant: str,
    customer_name: str,
    default_net_days: int = 30,
    buyer: Party | None = None,
    reissue: Reissue | None = None,
) -> InvoicePlan:
    """The invoice for one matched period: billed quantities, prices and tax on the PO's lines.

    Each line carries the tax resolved for its billing line (`connector.taxing`); `buyer` is the
    customer master's legal entity. The PO's bill-to stays the invoice address where it has one.

    When the PO has no payment terms, NET`default_net_days` is used and stated on the plan,
    so the due date and the terms shown always agree. `reissue` is set when the period's
    earlier invoices were credited to be invoiced again: the reissue gets a new key and number
    (from its ordinal) and is dated the day of the credit.
    """
    if allocation.billing_key != period.key:
        raise ValueError(f"allocation is for {allocation.billing_key}, period is {period.key}")
    po = allocation.po
    po_terms = po.payment_terms if po is not None else None
    terms = po_terms or PaymentTerms(code=f"NET{default_net_days}", net_days=default_net_days)
    issue_date = period.invoice_date or period.period_start
    issue = 0
    if reissue is not None:
        issue, issue_date = reissue.issue, max(issue_date, reissue.issued_on)
    lines = tuple(
        InvoiceLine(
            line_no=number,
            po_line_no=po_line.line_no if po_line else None,
            sku=billed.sku,
            supplier_part_id=po_line.sku if po_line else "",
            description=billed.description or (po_line.description if po_line else ""),
            quantity=billed.quantity,
            unit_of_measure=po_line.unit_of_measure if po_line else "EA",
            unit_price=billed.unit_price,
            service_start=period.period_start,
            service_end=period.period_end,
            tax=billed.tax,
            line_amount=billed.line_amount,
        )
        for number, (billed, po_line) in enumerate(allocation.lines, start=1)
    )
    customer_ref = period.customer_ref
    span = f"service period {period.period_start.isoformat()} to {period.period_end.isoformat()}"
    if po is None:  # a customer that needs no PO: addressed by its master data
        po_key, po_number, revision, memo = NO_PO_KEY, "", 0, span[:1].upper() + span[1:]
        bill_to = buyer.address if buyer is not None else None
        ship_to = None
    else:
        po_key, po_number, revision, memo = po.key, po.po_number, po.revision, f"PO {po.po_number}, {span}"
        bill_to, ship_to = po.bill_to, po.ship_to
    return InvoicePlan(
        idempotency_key=idempotency_key(tenant, sink, customer_ref, po_key, period.key, issue),
        invoice_number=invoice_number(tenant, customer_ref, po_key, period.key, issue),
        sink=sink,
        tenant=tenant,
        customer_ref=customer_ref,
        customer_name=customer_name,
        po_number=po_number,
        po_key=po_key,
        po_revision=revision,
        billing_key=period.key,
        currency=period.currency,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=terms.net_days),
        payment_terms=terms,
        bill_to=bill_to,
        ship_to=ship_to,
        lines=lines,
        period_start=period.period_start,
        period_end=period.period_end,
        buyer=buyer,
        memo=memo,
    )
