"""Small builders of canonical objects for tests."""

from __future__ import annotations

from collections.abc import Sequence
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
from connector.tax import LineTax, TaxCategory, TaxScheme


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


def vat(rate: str, category: str = "S", *, amount: str | None = None, reason: str = "") -> LineTax:
    """A VAT line tax: category and rate, the billing-stated amount if given."""
    cat = TaxCategory(category)
    return LineTax(
        category=cat,
        rate=None if cat is TaxCategory.OUTSIDE_SCOPE else Decimal(rate),
        exemption_reason_code=reason,
        amount=None if amount is None else Decimal(amount),
    )


def sales_tax(rate: str, jurisdiction: str = "US-NY", *, amount: str | None = None) -> LineTax:
    """A US sales tax line tax; rate 0 makes it exempt (category E)."""
    if Decimal(rate) == 0:
        return LineTax(
            scheme=TaxScheme.SALES_TAX,
            category=TaxCategory.EXEMPT,
            rate=Decimal(0),
            jurisdiction=jurisdiction,
            exemption_reason="not taxable here",
        )
    return LineTax(
        scheme=TaxScheme.SALES_TAX,
        category=TaxCategory.STANDARD,
        rate=Decimal(rate),
        jurisdiction=jurisdiction,
        amount=None if amount is None else Decimal(amount),
    )


def make_taxed_plan(
    n: int = 1,
    *,
    sink: str = "files",
    customer_ref: str = "CUST-ACME",
    currency: str = "GBP",
    lines: Sequence[tuple[str, LineTax]] = (("100.00", vat("20")),),
) -> InvoicePlan:
    """`make_plan` with one line per (net unit price, tax), quantity 1, SKUs SKU-1, SKU-2..."""
    base = make_plan(n, sink=sink, customer_ref=customer_ref, currency=currency)
    taxed = tuple(
        InvoiceLine(
            line_no=number,
            sku=f"SKU-{number}",
            description=f"Service {number}",
            quantity=Decimal(1),
            unit_price=Money.of(price, currency),
            service_start=base.period_start,
            service_end=base.period_end,
            tax=tax,
        )
        for number, (price, tax) in enumerate(lines, start=1)
    )
    return InvoicePlan.model_validate({**base.model_dump(), "lines": taxed})
