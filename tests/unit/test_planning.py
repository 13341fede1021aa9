"""Invoice planning: stable keys and numbers, and a plan built from the PO and the period."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest

from connector.maps import SkuMap
from connector.model import Address, BillingLine, BillingPeriod, Money, PaymentTerms, POLine, PurchaseOrder
from connector.planning import idempotency_key, invoice_number, plan_invoice
from connector.reconcile import Allocation, ReconcileSettings, reconcile
from tests.unit.test_reconcile import CUSTOMERS

BILL_TO = Address(name="Acme Corp AP", lines=("1 Main St",), city="Springfield", country="US")


def acme_po(payment_terms: PaymentTerms | None = PaymentTerms(code="NET45", net_days=45)) -> PurchaseOrder:
    return PurchaseOrder(
        source="inbox",
        external_id="ext-1001",
        po_number="ACME-PO-1001",
        revision=3,
        buyer_id="acme.example",
        currency="USD",
        payment_terms=payment_terms,
        bill_to=BILL_TO,
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        lines=(
            POLine(
                line_no=1,
                sku="CLD-PRO-SEAT",
                description="Pro seat",
                quantity=Decimal(600),
                unit_price=Money.of("40.00", "USD"),
                unit_of_measure="EA",
            ),
            POLine(
                line_no=2,
                sku="ADDON-SSO",
                quantity=Decimal(12),
                unit_price=Money.of("10.00", "USD"),
                unit_of_measure="MON",
            ),
        ),
    )


def period(invoice_date: date | None = date(2026, 11, 3)) -> BillingPeriod:
    return BillingPeriod(
        billing_source="billing",
        subscription_id="SUB-ACME-PRO",
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        customer_ref="CUST-ACME",
        currency="USD",
        invoice_date=invoice_date,
        lines=(
            BillingLine(sku="ADDON-SSO", quantity=Decimal(1), unit_price=Money.of("10.00", "USD")),
            BillingLine(
                sku="PLAN-PRO",
                description="Pro plan seats",
                quantity=Decimal(50),
                unit_price=Money.of("40.00", "USD"),
            ),
        ),
    )


def allocation_for(po: PurchaseOrder, billing: BillingPeriod) -> Allocation:
    outcome = reconcile(
        [po], [billing], CUSTOMERS, SkuMap({"PLAN-PRO": ["CLD-PRO-SEAT"]}), ReconcileSettings()
    )
    return outcome.allocations[billing.key]


def test_idempotency_key_is_the_sha256_of_the_joined_parts() -> None:
    expected = hashlib.sha256(b"t1|files|CUST-ACME|po/key|billing/key").hexdigest()
    assert idempotency_key("t1", "files", "CUST-ACME", "po/key", "billing/key") == expected


def test_idempotency_key_differs_per_sink_but_the_invoice_number_does_not() -> None:
    assert idempotency_key("t", "xero", "C", "P", "B") != idempotency_key("t", "files", "C", "P", "B")
    number = invoice_number("t", "C", "P", "B")
    assert number == "INV-" + hashlib.sha256(b"t|C|P|B").hexdigest()[:12].upper()
    assert len(number) <= 21
    assert number != invoice_number("t", "C", "P", "B2")


def test_plan_takes_billed_quantities_and_prices_onto_the_matched_po_lines() -> None:
    po, billing = acme_po(), period()
    plan = plan_invoice(
        allocation_for(po, billing), billing, sink="files", tenant="t1", customer_name="Acme Corp"
    )
    assert [
        (
            line.line_no,
            line.po_line_no,
            line.sku,
            line.supplier_part_id,
            line.quantity,
            line.unit_price.amount,
            line.unit_of_measure,
        )
        for line in plan.lines
    ] == [
        (1, 2, "ADDON-SSO", "ADDON-SSO", Decimal(1), Decimal("10.00"), "MON"),
        (2, 1, "PLAN-PRO", "CLD-PRO-SEAT", Decimal(50), Decimal("40.00"), "EA"),
    ]
    assert [line.description for line in plan.lines] == ["", "Pro plan seats"]
    assert all(
        (line.service_start, line.service_end) == (date(2026, 11, 1), date(2026, 11, 30))
        for line in plan.lines
    )
    assert plan.total == Money.of("2010.00", "USD")


def test_plan_carries_the_po_and_period_identity_dates_and_parties() -> None:
    po, billing = acme_po(), period()
    plan = plan_invoice(
        allocation_for(po, billing), billing, sink="files", tenant="t1", customer_name="Acme Corp"
    )
    assert plan.idempotency_key == idempotency_key("t1", "files", "CUST-ACME", po.key, billing.key)
    assert plan.invoice_number == invoice_number("t1", "CUST-ACME", po.key, billing.key)
    assert (plan.sink, plan.tenant, plan.customer_ref, plan.customer_name) == (
        "files",
        "t1",
        "CUST-ACME",
        "Acme Corp",
    )
    assert (plan.po_number, plan.po_key, plan.po_revision, plan.billing_key) == (
        "ACME-PO-1001",
        po.key,
        3,
        billing.key,
    )
    assert (plan.issue_date, plan.due_date) == (date(2026, 11, 3), date(2026, 12, 18))
    assert plan.payment_terms == po.payment_terms
    assert (plan.bill_to, plan.ship_to) == (BILL_TO, None)
    assert (plan.period_start, plan.period_end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert plan.memo == "PO ACME-PO-1001, service period 2026-11-01 to 2026-11-30"


def test_issue_date_falls_back_to_the_period_start_and_terms_to_the_default() -> None:
    po, billing = acme_po(payment_terms=None), period(invoice_date=None)
    plan = plan_invoice(
        allocation_for(po, billing), billing, sink="files", tenant="t1", customer_name="", default_net_days=14
    )
    assert (plan.issue_date, plan.due_date) == (date(2026, 11, 1), date(2026, 11, 15))
    assert plan.payment_terms == PaymentTerms(code="NET14", net_days=14)


def test_planning_twice_gives_the_same_plan() -> None:
    po, billing = acme_po(), period()
    allocation = allocation_for(po, billing)
    first = plan_invoice(allocation, billing, sink="files", tenant="t1", customer_name="Acme Corp")
    assert plan_invoice(allocation, billing, sink="files", tenant="t1", customer_name="Acme Corp") == first


def test_an_allocation_of_another_period_is_refused() -> None:
    po, billing = acme_po(), period()
    other = billing.model_copy(update={"subscription_id": "SUB-OTHER"})
    with pytest.raises(ValueError, match="allocation is for"):
        plan_invoice(allocation_for(po, billing), other, sink="files", tenant="t1", customer_name="")
