"""Turns a matched billing period into the invoice plan a sink creates exactly once.

The idempotency key and the invoice number are derived from stable keys only, so a re-run
plans the same invoice under the same key and number.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from connector.model import BillingPeriod, InvoiceLine, InvoicePlan, Party, PaymentTerms
from connector.reconcile import Allocation

NO_PO_KEY = ""  # the PO key of an invoice made without a PO


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def idempotency_key(tenant: str, sink: str, customer_ref: str, po_key: str, billing_key: str) -> str:
    """The outbox key of an invoice: sha256 hex of tenant|sink|customer|PO key|billing key."""
    return _digest(tenant, sink, customer_ref, po_key, billing_key)


def invoice_number(tenant: str, customer_ref: str, po_key: str, billing_key: str) -> str:
    """Our invoice number, the same in every sink: "INV-" and 12 upper hex digits (16 chars)."""
    return "INV-" + _digest(tenant, customer_ref, po_key, billing_key)[:12].upper()


def plan_invoice(
    allocation: Allocation,
    period: BillingPeriod,
    *,
    sink: str,
    tenant: str,
    customer_name: str,
    default_net_days: int = 30,
    buyer: Party | None = None,
) -> InvoicePlan:
    """The invoice for one matched period: billed quantities, prices and tax on the PO's lines.

    Each line carries the tax resolved for its billing line (`connector.taxing`); `buyer` is the
    customer master's legal entity. The PO's bill-to stays the invoice address where it has one.

    When the PO has no payment terms, NET`default_net_days` is used and stated on the plan,
    so the due date and the terms shown always agree.
    """
    if allocation.billing_key != period.key:
        raise ValueError(f"allocation is for {allocation.billing_key}, period is {period.key}")
    po = allocation.po
    po_terms = po.payment_terms if po is not None else None
    terms = po_terms or PaymentTerms(code=f"NET{default_net_days}", net_days=default_net_days)
    issue_date = period.invoice_date or period.period_start
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
        idempotency_key=idempotency_key(tenant, sink, customer_ref, po_key, period.key),
        invoice_number=invoice_number(tenant, customer_ref, po_key, period.key),
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
