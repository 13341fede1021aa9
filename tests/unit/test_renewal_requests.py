"""Which renewal PO requests the stored results ask for, and what the next cycle needs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.model import BillingLine, BillingPeriod, Money, PurchaseOrder, Reason
from connector.reconcile import ReconcileSettings, renewal_reason, renewal_warnings
from connector.renewal_requests import find_requests, lines_table, next_span
from tests.support.factories import make_po


def period(
    start: date, end: date, *, sub: str = "SUB-ACME-PRO", qty: str = "50", customer: str = "CUST-ACME"
) -> BillingPeriod:
    return BillingPeriod(
        billing_source="billing",
        subscription_id=sub,
        period_start=start,
        period_end=end,
        customer_ref=customer,
        currency="USD",
        lines=(
            BillingLine(
                sku="PLAN-PRO",
                description="Pro plan seats",
                quantity=Decimal(qty),
                unit_price=Money.of("40.00", "USD"),
            ),
        ),
    )


def matched(p: BillingPeriod, po: PurchaseOrder, warnings: tuple[Reason, ...] = ()) -> dict[str, Any]:
    return {
        "status": "matched",
        "billing_key": p.key,
        "po_key": po.key,
        "customer_ref": p.customer_ref,
        "reasons": [],
        "warnings": [w.model_dump() for w in warnings],
    }


def settings(as_of: date) -> ReconcileSettings:
    return ReconcileSettings(as_of=as_of, renewal_warning_days=30, renewal_warning_percent=Decimal(85))


@pytest.mark.parametrize(
    ("start", "end", "following"),
    [
        (date(2026, 11, 1), date(2026, 11, 30), (date(2026, 12, 1), date(2026, 12, 31))),
        (date(2026, 12, 1), date(2026, 12, 31), (date(2027, 1, 1), date(2027, 1, 31))),
        (date(2027, 1, 1), date(2027, 1, 31), (date(2027, 2, 1), date(2027, 2, 28))),
        (date(2026, 7, 1), date(2027, 6, 30), (date(2027, 7, 1), date(2028, 6, 30))),
        (date(2026, 10, 1), date(2026, 12, 31), (date(2027, 1, 1), date(2027, 3, 31))),
        (date(2026, 11, 15), date(2026, 12, 14), (date(2026, 12, 15), date(2027, 1, 13))),
    ],
)
def test_the_next_cycle_is_as_long_as_the_last_in_whole_months_or_days(
    start: date, end: date, following: tuple[date, date]
) -> None:
    assert next_span(start, end) == following


def test_a_renewal_reason_is_stable_across_runs_and_new_for_a_new_ask() -> None:
    po = make_po("ACME-PO-1001")  # term ends 2026-12-31, total 1200.00 USD
    early = renewal_warnings(po, Decimal("1100"), settings(date(2026, 12, 7)))
    later = renewal_warnings(po, Decimal("1150"), settings(date(2026, 12, 20)))
    assert [w.detail for w in early] != [w.detail for w in later]  # the numbers in the text move on
    assert [renewal_reason(po, w) for w in early] == [renewal_reason(po, w) for w in later]
    assert [renewal_reason(po, w) for w in early] == [
        ("term_end", "term_end:2026-12-31"),
        ("consumed", "consumed:1200.00"),
    ]
    extended = po.model_copy(update={"term_end": date(2027, 12, 31)})
    (term,) = renewal_warnings(extended, Decimal(0), settings(date(2027, 12, 10)))
    assert renewal_reason(extended, term) == ("term_end", "term_end:2027-12-31")


def test_one_request_per_po_and_reason_for_the_first_cycle_after_the_term() -> None:
    po = make_po("ACME-PO-1001", quantity="100", price="40.00")
    warnings = renewal_warnings(po, Decimal("3500"), settings(date(2026, 12, 7)))  # term + 87.5%
    oct_, nov = period(date(2026, 10, 1), date(2026, 10, 31)), period(date(2026, 11, 1), date(2026, 11, 30))
    stored = [matched(oct_, po, warnings), matched(nov, po, warnings)]
    found = find_requests(stored, {oct_.key: oct_, nov.key: nov}, {po.key: po})
    assert [(r.subject_key, r.reason, r.kind) for r in found] == [
        (po.key, "term_end:2026-12-31", "term_end"),
        (po.key, "consumed:4000.00", "consumed"),
    ]
    term, consumed = found
    # The term ends 2026-12-31: December is still on this PO, the new one starts in January.
    assert (term.cycle.start, term.cycle.end) == (date(2027, 1, 1), date(2027, 1, 31))
    assert (consumed.cycle.start, consumed.cycle.end) == (date(2026, 12, 1), date(2026, 12, 31))
    assert term.cycle.amount == Money.of("2000.00", "USD")
    assert term.last_cycle is not None and term.last_cycle.start == date(2026, 11, 1)
    assert [(line.sku, line.quantity) for line in term.cycle.lines] == [("PLAN-PRO", Decimal(50))]
    assert term.customer_ref == "CUST-ACME" and term.po is po


def test_a_cycle_spans_every_subscription_invoiced_on_the_po_last() -> None:
    po = make_po("ACME-PO-1001", quantity="100", price="40.00")
    (term,) = renewal_warnings(po, Decimal(0), settings(date(2026, 12, 7)))
    pro = period(date(2026, 11, 1), date(2026, 11, 30))
    seats = period(date(2026, 11, 1), date(2026, 11, 30), sub="SUB-ACME-EXTRA", qty="5")
    stored = [matched(pro, po, (term,)), matched(seats, po)]
    (request,) = find_requests(stored, {pro.key: pro, seats.key: seats}, {po.key: po})
    assert request.cycle.amount == Money.of("2200.00", "USD")
    assert request.cycle.subscriptions == ("SUB-ACME-PRO", "SUB-ACME-EXTRA")


def test_a_missing_po_period_is_asked_for_as_billed() -> None:
    nov = period(date(2026, 11, 1), date(2026, 11, 30), customer="CUST-INITECH", qty="10")
    stored = [
        {
            "status": "missing_po",
            "billing_key": nov.key,
            "po_key": None,
            "customer_ref": "CUST-INITECH",
            "reasons": [{"code": "no_po_for_customer", "detail": "no PO for customer CUST-INITECH"}],
            "warnings": [],
        },
        {"status": "mismatch", "billing_key": "x", "po_key": None, "reasons": [], "warnings": []},
    ]
    (request,) = find_requests(stored, {nov.key: nov}, {})
    assert (request.subject_key, request.reason, request.kind) == (nov.key, "missing_po", "missing_po")
    assert (request.cycle.start, request.cycle.end, request.cycle.amount) == (
        date(2026, 11, 1),
        date(2026, 11, 30),
        Money.of("400.00", "USD"),
    )
    assert request.why == "no PO for customer CUST-INITECH" and request.po is None


def test_no_request_without_a_warning_or_without_the_po() -> None:
    po = make_po("ACME-PO-1001")
    nov = period(date(2026, 11, 1), date(2026, 11, 30))
    assert find_requests([matched(nov, po)], {nov.key: nov}, {po.key: po}) == []
    (term,) = renewal_warnings(po, Decimal(0), settings(date(2026, 12, 7)))
    assert find_requests([matched(nov, po, (term,))], {nov.key: nov}, {}) == []


def test_the_lines_table_lines_up_and_keeps_exact_amounts() -> None:
    lines = (
        BillingLine(
            sku="PLAN-PRO",
            description="Pro plan seats",
            quantity=Decimal("50"),
            unit_price=Money.of("40.00", "USD"),
        ),
        BillingLine(
            sku="ADDON-SSO", description="SSO", quantity=Decimal("1.5"), unit_price=Money.of("10.005", "USD")
        ),
    )
    table = lines_table(lines, "USD").splitlines()
    assert table[0].split() == ["SKU", "Description", "Quantity", "Unit", "price", "Amount", "(USD)"]
    assert table[1].split() == ["PLAN-PRO", "Pro", "plan", "seats", "50", "40.00", "2000.00"]
    assert table[2].split() == ["ADDON-SSO", "SSO", "1.5", "10.005", "15.01"]
    assert len({len(row) for row in table}) == 1  # right-aligned numbers: every row as wide
