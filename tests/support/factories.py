"""Small builders of canonical objects for tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.model import (
    Address,
    InvoiceLine,
    InvoicePlan,
    Money,
    Party,
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


def make_seller(country: str = "DE", **overrides: Any) -> Party:
    """The vendor as the [supplier] section gives it: VAT-registered in Germany by default."""
    values: dict[str, Any] = {
        "legal_name": "Cloudlytics GmbH",
        "address": Address(
            name="Cloudlytics GmbH", lines=("Hauptstr. 1",), city="Berlin", postal_code="10115", country="DE"
        ),
        "vat_id": "DE123456789",
        "legal_registration_id": "HRB 12345",
        "endpoint_id": "DE123456789",
        "endpoint_scheme": "9930",
        "contact_email": "billing@cloudlytics.example",
        "contact_name": "Accounts receivable",
        "contact_telephone": "+49 30 1234567",
        "payment_account_id": "DE89370400440532013000",
        "payment_account_name": "Cloudlytics GmbH",
        "payment_bank_id": "COBADEFFXXX",
    }
    if country == "US":
        values.update(
            legal_name="Cloudlytics Inc.",
            address=Address(
                name="Cloudlytics Inc.",
                lines=("500 Market St",),
                city="San Francisco",
                region="CA",
                postal_code="94105",
                country="US",
            ),
            vat_id="",
            tax_registration_id="12-3456789",
            legal_registration_id="C1234567",
            endpoint_id="123456789",
            endpoint_scheme="9959",
            contact_telephone="+1 415 555 0100",
            payment_account_id="",
            payment_account_name="",
            payment_bank_id="",
        )
    values.update(overrides)
    return Party(**values)


def make_buyer(country: str = "DE", **overrides: Any) -> Party:
    """The customer master's legal entity of the buyer, with an electronic address."""
    by_country: dict[str, dict[str, Any]] = {
        "DE": {"vat_id": "DE987654321", "city": "Hamburg", "postal": "20095", "scheme": "9930"},
        "FR": {"vat_id": "FR23334175221", "city": "Paris", "postal": "75001", "scheme": "9957"},
        "GB": {"vat_id": "GB123456789", "city": "London", "postal": "EC1A 1BB", "scheme": "9932"},
        "US": {"vat_id": "", "city": "Springfield", "postal": "62701", "scheme": "0060"},
        "JP": {"vat_id": "", "city": "Tokyo", "postal": "100-0001", "scheme": "0088"},
    }
    known = by_country[country]
    values: dict[str, Any] = {
        "legal_name": "Acme Corp",
        "address": Address(
            name="Acme Corp",
            lines=("1 Main St",),
            city=known["city"],
            postal_code=known["postal"],
            country=country,
        ),
        "vat_id": known["vat_id"],
        "endpoint_id": known["vat_id"] or ("4000001000005" if country == "JP" else "123456789"),
        "endpoint_scheme": known["scheme"],
        "buyer_reference": "ACME-AP-7",
        "contact_email": "ap@acme.example",
    }
    values.update(overrides)
    return Party(**values)


def vat(rate: str, category: str = "S", **overrides: Any) -> LineTax:
    """A line's VAT: standard rate by default; give category and reason for the others."""
    return LineTax(category=TaxCategory(category), rate=None if rate == "" else Decimal(rate), **overrides)


def make_taxed_plan(
    n: int = 1,
    *,
    taxes: tuple[LineTax, ...] = (),
    currency: str = "EUR",
    price: str = "100.00",
    quantity: str = "2",
    buyer: Party | None = None,
    **overrides: Any,
) -> InvoicePlan:
    """make_plan with tax on every line (one line per tax, S 19% by default) and a buyer party."""
    base = make_plan(n, currency=currency, price=price, quantity=quantity)
    template = base.lines[0]
    lines = tuple(
        template.model_copy(
            update={"line_no": index, "po_line_no": index, "sku": f"PLAN-{index}", "tax": tax}
        )
        for index, tax in enumerate(taxes or (vat("19"),), start=1)
    )
    buyer = buyer or make_buyer("DE")
    bill_to = Address(
        name=buyer.legal_name,
        lines=buyer.address.lines if buyer.address else (),
        city=buyer.address.city if buyer.address else "",
        postal_code=buyer.address.postal_code if buyer.address else "",
        country=buyer.country,
    )
    values: dict[str, Any] = {"lines": lines, "buyer": buyer, "bill_to": bill_to}
    values.update(overrides)
    return InvoicePlan(**{**base.model_dump(), **values})


def vat_tax(rate: str, category: str = "S", *, amount: str | None = None, reason: str = "") -> LineTax:
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


def make_priced_plan(
    n: int = 1,
    *,
    sink: str = "files",
    customer_ref: str = "CUST-ACME",
    currency: str = "GBP",
    lines: Sequence[tuple[str, LineTax]] = (("100.00", vat_tax("20")),),
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
