"""Small builders of canonical objects for tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.model import (
    Address,
    InvoiceLine,
    InvoicePlan,
    Money,
    PaymentTerms,
    POLine,
    PurchaseOrder,
)
from connector.planning import idempotency_key, invoice_number


def make_po(
    po_number: str = "PO-1",
    *,
    quantity: str = "12",
    price: str = "100.00",
    currency: str = "USD",
    source: str = "inbox",
    updated: datetime | None = None,
    revision: int = 1,
) -> PurchaseOrder:
    return PurchaseOrder(
        source=source,
        external_id=po_number,
        po_number=po_number,
        revision=revision,
        buyer_id="acme.example",
        currency=currency,
        payment_terms=PaymentTerms(code="NET30", net_days=30),
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        lines=(
            POLine(
                line_no=1, sku="PLAN-PRO", quantity=Decimal(quantity), unit_price=Money.of(price, currency)
            ),
        ),
        source_updated_at=updated or datetime(2026, 1, 5, tzinfo=UTC),
    )


def make_plan(
    n: int = 1,
    *,
    sink: str = "files",
    customer_ref: str = "CUST-ACME",
    currency: str = "USD",
    price: str = "100.00",
    quantity: str = "2",
) -> InvoicePlan:
    po_key = f"default/inbox/PO-{n}"
    billing_key = f"default/billing/SUB-{n}/2026-11-01"
    return InvoicePlan(
        idempotency_key=idempotency_key("default", sink, customer_ref, po_key, billing_key),
        invoice_number=invoice_number("default", customer_ref, po_key, billing_key),
        sink=sink,
        customer_ref=customer_ref,
        customer_name="Acme Corp",
        po_number=f"PO-{n}",
        po_key=po_key,
        po_revision=1,
        billing_key=billing_key,
        currency=currency,
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        payment_terms=PaymentTerms(code="NET30", net_days=30),
        bill_to=Address(
            name="Acme Corp", lines=("100 Main St",), city="Springfield", postal_code="62701", country="US"
        ),
        lines=(
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="PLAN-PRO",
                supplier_part_id="PLAN-PRO",
                description="Pro plan seat-month",
                quantity=Decimal(quantity),
                unit_price=Money.of(price, currency),
                service_start=date(2026, 11, 1),
                service_end=date(2026, 11, 30),
            ),
        ),
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
    )
