"""Invoice plans for sink tests, numbered and keyed the way the core plans them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms
from connector.planning import idempotency_key, invoice_number, plan_credit_note


def sample_plan(
    n: int,
    *,
    sink: str = "sink",
    tenant: str = "default",
    customer_ref: str = "CUST-1",
    currency: str = "USD",
    skus: tuple[str, ...] = ("SEAT",),
    quantity: str = "3",
    price: str = "19.99",
    po_number: str | None = None,
) -> InvoicePlan:
    """The n-th plan: one line per SKU, a one-month period, NET30, our usual key and number."""
    po_key = f"{tenant}/kit/{n}"
    billing_key = f"{tenant}/kit-billing/SUB-{n}/2026-01-01"
    lines = tuple(
        InvoiceLine(
            line_no=index,
            po_line_no=index,
            sku=sku,
            supplier_part_id=sku,
            description=f"{sku}, January",
            quantity=Decimal(quantity),
            unit_price=Money.of(price, currency),
            service_start=date(2026, 1, 1),
            service_end=date(2026, 1, 31),
        )
        for index, sku in enumerate(skus, start=1)
    )
    return InvoicePlan(
        idempotency_key=idempotency_key(tenant, sink, customer_ref, po_key, billing_key),
        invoice_number=invoice_number(tenant, customer_ref, po_key, billing_key),
        sink=sink,
        tenant=tenant,
        customer_ref=customer_ref,
        customer_name="Acme Corp",
        po_number=po_number or f"PO-{n}",
        po_key=po_key,
        po_revision=1,
        billing_key=billing_key,
        currency=currency,
        issue_date=date(2026, 2, 1),
        due_date=date(2026, 3, 3),
        payment_terms=PaymentTerms(code="NET30", net_days=30),
        bill_to=Address(name="Acme Corp", lines=("1 Main St",), city="Springfield", country="US"),
        lines=lines,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
    )


def sample_credit_note(
    n: int, *, remote_id: str = "", reason: str = "billed seats were cancelled", **plan_options: object
) -> InvoicePlan:
    """The credit note of `sample_plan(n, ...)`, as `po-connector credit` plans it.

    `remote_id` is the sink's id of the credited invoice (what the outbox recorded when it was
    pushed); sinks that link a credit to its invoice need it.
    """
    invoice = sample_plan(n, **plan_options)  # type: ignore[arg-type]
    return plan_credit_note(invoice, reason=reason, issue_date=date(2026, 2, 20), remote_id=remote_id)
