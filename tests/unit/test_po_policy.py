"""Per-customer PO policy: a customer that needs no PO, one PO per cycle or blanket, the PO-number pattern."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.maps import Customer, CustomerMap, CustomerMaster
from connector.model import Address, BillingPeriod, MatchStatus, Money, Party
from connector.planning import plan_invoice
from connector.reconcile import PriorInvoice, reconcile
from tests.unit.test_reconcile import SKUS, STRICT, codes, make_period, make_po

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
OPEN_ENDED = (date(2026, 1, 1), None)


def monthly_periods() -> list[BillingPeriod]:
    return [make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], span=span) for span in (OCTOBER, NOVEMBER)]


def customers(**policy: object) -> CustomerMap:
    return CustomerMap([Customer("CUST-ACME", "Acme Corp", ("acme.example",), CustomerMaster(**policy))])


def two_cycles(**policy: object) -> list[MatchStatus]:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")], term=OPEN_ENDED)
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], span=span) for span in (OCTOBER, NOVEMBER)
    ]
    outcome = reconcile([po], periods, customers(**policy), SKUS, STRICT)
    return [result.status for result in outcome.results if result.billing_key]


def test_per_cycle_po_without_a_term_end_covers_its_first_cycle_only() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")], term=OPEN_ENDED)
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], span=span) for span in (OCTOBER, NOVEMBER)
    ]
    outcome = reconcile([po], periods, customers(), SKUS, STRICT)
    october, november = (r for r in outcome.results if r.billing_key)
    assert october.status is MatchStatus.MATCHED
    assert november.status is MatchStatus.MISSING_PO
    assert codes(november) == ["po_cycle_used"]
    assert november.reasons[0].detail == (
        "PO-1 has no term end and was invoiced for the cycle 2026-10-01..2026-10-31; this customer's "
        "POs cover one billing cycle each (po_scope = per_cycle), so 2026-11-01..2026-11-30 needs a new PO"
    )


def test_blanket_po_covers_every_cycle_until_its_balance_runs_out() -> None:
    assert two_cycles(po_scope="blanket") == [MatchStatus.MATCHED, MatchStatus.MATCHED]


def test_a_po_with_a_term_covers_the_cycles_inside_it_under_either_scope() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")])  # 2026 whole year
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], span=span) for span in (OCTOBER, NOVEMBER)
    ]
    for scope in ("per_cycle", "blanket"):
        outcome = reconcile([po], periods, customers(po_scope=scope), SKUS, STRICT)
        assert [r.status for r in outcome.results] == [MatchStatus.MATCHED] * 2


def test_per_cycle_counts_the_cycle_of_an_invoice_sent_in_an_earlier_run() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")], term=OPEN_ENDED)
    prior = PriorInvoice(po.key, "billing/oct", Money.of("400", "USD"), True, 1, {1: 10}, cycle=OCTOBER)
    period = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], span=NOVEMBER)
    (result,) = reconcile([po], [period], customers(), SKUS, STRICT, [prior]).results
    assert result.status is MatchStatus.MISSING_PO and codes(result) == ["po_cycle_used"]
    (blanket,) = reconcile([po], [period], customers(po_scope="blanket"), SKUS, STRICT, [prior]).results
    assert blanket.status is MatchStatus.MATCHED


def test_two_subscriptions_of_one_cycle_share_a_per_cycle_po() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")], term=OPEN_ENDED)
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "5", "40")], span=NOVEMBER, subscription=f"SUB-{n}")
        for n in (1, 2)
    ]
    outcome = reconcile([po], periods, customers(), SKUS, STRICT)
    assert [r.status for r in outcome.results] == [MatchStatus.MATCHED] * 2


def test_customer_that_needs_no_po_is_invoiced_without_one() -> None:
    period = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")])
    outcome = reconcile([], [period], customers(po_required=False), SKUS, STRICT)
    (result,) = outcome.results
    assert result.status is MatchStatus.MATCHED
    assert result.po_key is None and codes(result) == ["invoiced_without_po"]
    allocation = outcome.allocations[period.key]
    assert allocation.po is None and [line for _, line in allocation.lines] == [None]

    buyer = Party(
        legal_name="Acme Corporation",
        address=Address(name="Acme Corporation", lines=("1 Main St",), city="NYC", country="US"),
    )
    plan = plan_invoice(allocation, period, sink="books", tenant="t", customer_name="Acme Corp", buyer=buyer)
    assert (plan.po_number, plan.po_key, plan.po_revision) == ("", "", 0)
    assert plan.bill_to == buyer.address
    assert plan.memo == "Service period 2026-11-01 to 2026-11-30"
    assert plan.lines[0].po_line_no is None and plan.net_total == Money.of("400", "USD")
    again = plan_invoice(allocation, period, sink="books", tenant="t", customer_name="Acme Corp", buyer=buyer)
    assert again.idempotency_key == plan.idempotency_key  # the same period plans the same invoice


def test_customer_that_needs_no_po_still_uses_a_po_that_fits() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")])
    fits = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")])
    off_price = make_period("CUST-ACME", [("PLAN-PRO", "10", "45")], subscription="SUB-2")
    outcome = reconcile([po], [fits, off_price], customers(po_required=False), SKUS, STRICT)
    by_key = {r.billing_key: r for r in outcome.results}
    assert by_key[fits.key].po_key == po.key
    assert by_key[off_price.key].status is MatchStatus.MATCHED
    assert by_key[off_price.key].po_key is None
    assert by_key[off_price.key].reasons[0].detail.startswith("no PO of the customer fits the period")


def test_a_period_naming_a_po_is_held_to_it_even_when_no_po_is_required() -> None:
    period = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], po_number="PO-9")
    (result,) = reconcile([], [period], customers(po_required=False), SKUS, STRICT).results
    assert result.status is MatchStatus.MISSING_PO and codes(result) == ["po_not_found"]


def test_customer_that_needs_a_po_is_missing_po_without_one() -> None:
    (result,) = reconcile(
        [], [make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])], customers(), SKUS, STRICT
    ).results
    assert result.status is MatchStatus.MISSING_PO and codes(result) == ["no_po_for_customer"]


def test_a_po_number_off_the_buyers_pattern_is_a_mismatch_naming_it() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40")])
    period = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], po_number="PO-1")
    result, _unused = reconcile([po], [period], customers(po_pattern=r"45\d{8}"), SKUS, STRICT).results
    assert result.status is MatchStatus.MISMATCH
    assert codes(result) == ["po_number_pattern"]
    assert result.reasons[0].detail == r"PO number PO-1 does not follow CUST-ACME's PO number pattern 45\d{8}"
    good = make_po("4500012345", [("PLAN-PRO", "100", "40")])
    named = make_period("CUST-ACME", [("PLAN-PRO", "10", "40")], po_number=" 4500012345 ")
    (matched,) = reconcile([good], [named], customers(po_pattern=r"45\d{8}"), SKUS, STRICT).results
    assert matched.status is MatchStatus.MATCHED


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        (
            'po_pattern = "45[0-9"',
            "customers[0].po_pattern: Value error, po_pattern is not a regular expression",
        ),
        ('po_scope = "monthly"', "customers[0].po_scope: Input should be 'per_cycle' or 'blanket'"),
        ('po_required = "maybe"', "customers[0].po_required: Input should be a valid boolean"),
    ],
)
def test_a_bad_policy_in_the_customer_map_names_file_entry_and_key(
    tmp_path: Path, line: str, wanted: str
) -> None:
    path = tmp_path / "customers.toml"
    path.write_text(f'[[customers]]\ncustomer_ref = "CUST-ACME"\n{line}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        CustomerMap.load(path)
    assert str(caught.value).startswith(f"{path}: {wanted}")
