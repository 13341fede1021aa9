"""Reconciliation of billing periods against POs: each reason, each status, the example data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.maps import Customer, CustomerMap, SkuMap
from connector.model import (
    BillingLine,
    BillingPeriod,
    MatchResult,
    MatchStatus,
    Money,
    POLine,
    POStatus,
    PurchaseOrder,
)
from connector.reconcile import (
    CurrencyTolerances,
    PriorInvoice,
    ReconcileSettings,
    Tolerance,
    reconcile,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
YEAR_2026 = (date(2026, 1, 1), date(2026, 12, 31))
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))

CUSTOMERS = CustomerMap(
    [
        Customer("CUST-ACME", "Acme Corp", ("acme.example",)),
        Customer("CUST-INITECH", "Initech LLC", ("initech.example",)),
        Customer("CUST-HOOLI", "Hooli Inc", ("hooli.example",)),
    ]
)
SKUS = SkuMap({"PLAN-PRO": ["CLD-PRO-SEAT"]})
STRICT = ReconcileSettings()


def make_po(
    number: str,
    lines: list[tuple[str, str, str]],
    *,
    buyer: str = "acme.example",
    currency: str = "USD",
    term: tuple[date | None, date | None] = YEAR_2026,
    status: POStatus = POStatus.OPEN,
    revision: int = 1,
    external_id: str | None = None,
    source: str = "inbox",
) -> PurchaseOrder:
    """A PO with lines given as (sku, quantity, unit price)."""
    return PurchaseOrder(
        source=source,
        external_id=external_id or number,
        po_number=number,
        revision=revision,
        status=status,
        buyer_id=buyer,
        currency=currency,
        term_start=term[0],
        term_end=term[1],
        lines=tuple(
            POLine(
                line_no=index,
                sku=sku,
                quantity=Decimal(quantity),
                unit_price=Money.of(price, currency),
            )
            for index, (sku, quantity, price) in enumerate(lines, start=1)
        ),
    )


def make_period(
    customer: str,
    lines: list[tuple[str, str, str]],
    *,
    span: tuple[date, date] = NOVEMBER,
    po_number: str | None = None,
    currency: str = "USD",
    subscription: str = "SUB-1",
    source: str = "billing",
) -> BillingPeriod:
    """A billing period with lines given as (sku, quantity, unit price)."""
    return BillingPeriod(
        billing_source=source,
        subscription_id=subscription,
        period_start=span[0],
        period_end=span[1],
        customer_ref=customer,
        po_number=po_number,
        currency=currency,
        lines=tuple(
            BillingLine(sku=sku, quantity=Decimal(quantity), unit_price=Money.of(price, currency))
            for sku, quantity, price in lines
        ),
    )


def only(results: tuple[MatchResult, ...], status: MatchStatus) -> list[MatchResult]:
    return [result for result in results if result.status is status]


def one_result(
    pos: list[PurchaseOrder],
    period: BillingPeriod,
    settings: ReconcileSettings = STRICT,
    prior: tuple[PriorInvoice, ...] = (),
) -> MatchResult:
    outcome = reconcile(pos, [period], CUSTOMERS, SKUS, settings, prior)
    return next(result for result in outcome.results if result.billing_key == period.key)


def codes(result: MatchResult) -> list[str]:
    return [reason.code for reason in result.reasons]


# --- the example data -----------------------------------------------------------------------


def example_pos() -> list[PurchaseOrder]:
    acme = {"buyer": "purchasing@acme.example"}
    globex = {"buyer": "globex.example", "currency": "EUR", "term": (date(2026, 7, 1), date(2027, 6, 30))}
    return [
        make_po("ACME-PO-1001", [("PLAN-PRO", "600", "40.00")], **acme),
        make_po("ACME-PO-1002", [("ADDON-SSO", "12", "10.00")], **acme),
        make_po("ACME-PO-1003", [("ADDON-SSO", "12", "10.00")], **acme),
        make_po("4500012345", [("CLD-ENT-ANNUAL", "1", "24000.00")], **globex),
        make_po("4500012399", [("ADDON-SSO", "10", "5.00")], revision=1, **globex),
        make_po("4500012399", [("ADDON-SSO", "24", "5.00")], revision=2, **globex),
        # INI-7781 is not here: its file has a refused row, so the PO is held whole.
        make_po("UMB-2026-044", [("PLAN-ENT", "12", "1500.00")], buyer="umbrella.example"),
        make_po(
            "WE-PO-0077",
            [("PLAN-PRO", "300", "32.00"), ("WE-TRAIN-ADMIN", "2", "900.00")],
            buyer="wayne.example",
            currency="GBP",
            term=(None, None),  # a blanket order: Wayne's po_scope is "blanket"
        ),
    ]


def test_example_files_give_the_documented_statuses() -> None:
    from adapters.billing_csv import CsvBillingConfig, CsvBillingSource
    from connector.ports import AdapterContext

    source = CsvBillingSource(
        CsvBillingConfig(name="billing", path=Path("billing.csv")), AdapterContext(base_dir=EXAMPLES)
    )
    batch = source.read()
    assert batch.rejections == []
    outcome = reconcile(
        example_pos(),
        batch.records,
        CustomerMap.load(EXAMPLES / "customers.toml"),
        SkuMap.load(EXAMPLES / "skus.toml"),
        STRICT,
    )
    by_subject = {
        (
            result.customer_ref,
            result.billing_key and result.billing_key.split("/")[2],
            result.po_number,
        ): result.status
        for result in outcome.results
    }
    assert by_subject == {
        ("CUST-ACME", "SUB-ACME-PRO", "ACME-PO-1001"): MatchStatus.MATCHED,
        ("CUST-GLOBEX", "SUB-GLOBEX-ENT", "4500012345"): MatchStatus.MATCHED,
        ("CUST-GLOBEX", "SUB-GLOBEX-SSO", "4500012399"): MatchStatus.MATCHED,
        ("CUST-WAYNE", "SUB-WAYNE-PRO", "WE-PO-0077"): MatchStatus.MATCHED,
        ("CUST-ACME", "SUB-ACME-SSO", None): MatchStatus.AMBIGUOUS,
        ("CUST-UMBRELLA", "SUB-UMB-ENT", "UMB-2026-044"): MatchStatus.MISMATCH,
        # INI-7781 has a refused row, so it is held whole and Initech's period has no PO.
        ("CUST-INITECH", "SUB-INITECH-PRO", None): MatchStatus.MISSING_PO,
        # Hooli issues no POs (po_required = false): invoiced without one.
        ("CUST-HOOLI", "SUB-HOOLI-PRO", None): MatchStatus.MATCHED,
        ("CUST-ACME", None, "ACME-PO-1002"): MatchStatus.UNUSED_PO,
        ("CUST-ACME", None, "ACME-PO-1003"): MatchStatus.UNUSED_PO,
        ("CUST-UMBRELLA", None, "UMB-2026-044"): MatchStatus.UNUSED_PO,
    }
    # Two Acme PLAN-PRO periods (October names the PO, November does not) both match, and
    # Wayne's blanket PO takes October and November.
    assert len(outcome.results) == 13
    assert len(outcome.allocations) == 7
    wayne = [r for r in outcome.results if r.billing_key and "SUB-WAYNE-PRO" in r.billing_key]
    assert [(r.status, r.po_number) for r in wayne] == [(MatchStatus.MATCHED, "WE-PO-0077")] * 2
    # Under the default scope the same PO would cover only its first cycle.
    per_cycle = CustomerMap([Customer("CUST-WAYNE", "Wayne", ("wayne.example",))])
    wayne_only = [p for p in batch.records if p.customer_ref == "CUST-WAYNE"]
    again = reconcile(example_pos(), wayne_only, per_cycle, SkuMap.load(EXAMPLES / "skus.toml"), STRICT)
    assert [r.status for r in again.results if r.billing_key] == [MatchStatus.MATCHED, MatchStatus.MISSING_PO]
    acme_pro = [r for r in outcome.results if r.billing_key and "SUB-ACME-PRO" in r.billing_key]
    assert [r.status for r in acme_pro] == [MatchStatus.MATCHED, MatchStatus.MATCHED]
    mismatch = only(outcome.results, MatchStatus.MISMATCH)[0]
    assert [str(r) for r in mismatch.reasons] == [
        "price_differs: unit price 1500.00 USD on UMB-2026-044 line 1, billed 1550.00"
    ]
    ambiguous = only(outcome.results, MatchStatus.AMBIGUOUS)[0]
    assert [str(r) for r in ambiguous.reasons] == [
        "several_pos: ACME-PO-1002, ACME-PO-1003 all fit the period"
    ]
    missing = only(outcome.results, MatchStatus.MISSING_PO)[0]
    assert [str(r) for r in missing.reasons] == [
        "no_po_for_customer: no PO for customer CUST-INITECH (Initech LLC)"
    ]
    hooli = next(r for r in outcome.results if r.customer_ref == "CUST-HOOLI")
    assert hooli.po_number is None and [r.code for r in hooli.reasons] == ["invoiced_without_po"]
    globex_sso = outcome.allocations[next(k for k in outcome.allocations if "SUB-GLOBEX-SSO" in k)]
    assert globex_sso.po is not None and globex_sso.po.revision == 2


# --- one reason at a time -------------------------------------------------------------------


def test_unique_fitting_po_matches_and_allocates_each_billing_line() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40.00"), ("ADDON-SSO", "10", "10.00")])
    period = make_period("CUST-ACME", [("ADDON-SSO", "2", "10.00"), ("PLAN-PRO", "5", "40.00")])
    outcome = reconcile([po], [period], CUSTOMERS, SKUS, STRICT)
    result = outcome.results[0]
    assert result.status is MatchStatus.MATCHED
    assert (result.po_key, result.po_number, result.customer_ref) == (po.key, "PO-1", "CUST-ACME")
    assert result.amount == Money.of("220.00", "USD")
    allocation = outcome.allocations[period.key]
    assert [(b.sku, p.line_no) for b, p in allocation.lines] == [("ADDON-SSO", 2), ("PLAN-PRO", 1)]


def test_customer_without_any_po_is_missing_po() -> None:
    result = one_result(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")])], make_period("CUST-HOOLI", [("PLAN-PRO", "1", "40")])
    )
    assert result.status is MatchStatus.MISSING_PO
    assert codes(result) == ["no_po_for_customer"]


def test_missing_po_names_the_customer_from_the_period_when_the_map_does_not() -> None:
    period = make_period("CUST-NEW", [("PLAN-PRO", "1", "40")]).model_copy(update={"customer_name": "New Co"})
    unnamed = make_period("CUST-NEW", [("PLAN-PRO", "1", "40")])
    assert one_result([], period).reasons[0].detail == "no PO for customer CUST-NEW (New Co)"
    assert one_result([], unnamed).reasons[0].detail == "no PO for customer CUST-NEW"


def test_unlimited_is_how_a_config_file_writes_no_limit() -> None:
    tolerance = Tolerance.model_validate({"percent": "unlimited", "absolute": "0.01"})
    assert (tolerance.percent, tolerance.absolute) == (None, Decimal("0.01"))
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Tolerance(percent=Decimal(-1))


def test_named_po_that_does_not_exist_is_missing_po() -> None:
    pos = [make_po("PO-1", [("PLAN-PRO", "10", "40")])]
    result = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], po_number="PO-9"))
    assert result.status is MatchStatus.MISSING_PO
    assert [str(r) for r in result.reasons] == [
        "po_not_found: PO PO-9 named by the billing period is not among the POs of CUST-ACME"
    ]


def test_named_po_of_another_customer_says_whose_it_is() -> None:
    pos = [
        make_po("PO-1", [("PLAN-PRO", "10", "40")]),
        make_po("INI-1", [("PLAN-PRO", "10", "40")], buyer="initech.example"),
    ]
    result = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], po_number="INI-1"))
    assert result.status is MatchStatus.MISSING_PO
    assert result.reasons[0].detail.endswith("; it belongs to CUST-INITECH")


def test_named_po_number_is_the_only_candidate_even_when_another_fits() -> None:
    pos = [
        make_po("PO-1", [("PLAN-PRO", "10", "40")]),
        make_po("PO-2", [("PLAN-PRO", "10", "45")]),
    ]
    result = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], po_number="po-2 "))
    assert result.status is MatchStatus.MISMATCH
    assert (result.po_number, codes(result)) == ("PO-2", ["price_differs"])


def test_named_po_number_resolves_what_would_be_ambiguous() -> None:
    pos = [make_po("PO-1", [("PLAN-PRO", "10", "40")]), make_po("PO-2", [("PLAN-PRO", "10", "40")])]
    unnamed = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    named = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], po_number="PO-2"))
    assert unnamed.status is MatchStatus.AMBIGUOUS
    assert unnamed.po_key is None
    assert named.status is MatchStatus.MATCHED
    assert named.po_number == "PO-2"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (POStatus.CLOSED, "po_closed"),
        (POStatus.CANCELLED, "po_cancelled"),
        (POStatus.ON_HOLD, "po_on_hold"),
    ],
)
def test_po_that_is_not_open_is_a_mismatch_when_it_is_the_only_candidate(status: POStatus, code: str) -> None:
    result = one_result(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")], status=status)],
        make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]),
    )
    assert result.status is MatchStatus.MISMATCH
    assert [str(r) for r in result.reasons] == [f"{code}: PO-1 is {status.value}"]


def test_open_po_wins_over_a_closed_one() -> None:
    pos = [
        make_po("PO-1", [("PLAN-PRO", "10", "40")], status=POStatus.CLOSED),
        make_po("PO-2", [("PLAN-PRO", "10", "40")]),
    ]
    result = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    assert (result.status, result.po_number) == (MatchStatus.MATCHED, "PO-2")


def test_other_currency_is_currency_differs() -> None:
    result = one_result(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")], currency="EUR")],
        make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]),
    )
    assert result.status is MatchStatus.MISMATCH
    assert [str(r) for r in result.reasons] == ["currency_differs: PO-1 is in EUR, billed in USD"]


def test_period_after_every_term_is_missing_po_naming_the_expired_pos() -> None:
    pos = [
        make_po("PO-2025", [("PLAN-PRO", "10", "40")], term=(date(2025, 1, 1), date(2025, 12, 31))),
        make_po("PO-2026", [("PLAN-PRO", "10", "40")]),
    ]
    result = one_result(
        pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], span=(date(2027, 1, 1), date(2027, 1, 31)))
    )
    assert result.status is MatchStatus.MISSING_PO
    assert [str(r) for r in result.reasons] == [
        "po_expired: PO-2025 ended 2025-12-31, before the period starting 2027-01-01",
        "po_expired: PO-2026 ended 2026-12-31, before the period starting 2027-01-01",
    ]
    assert result.po_key is None


def test_period_before_the_term_starts_is_missing_po_with_term_not_covered() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40")], term=(date(2027, 1, 1), date(2027, 12, 31)))
    result = one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    assert result.status is MatchStatus.MISSING_PO
    assert [str(r) for r in result.reasons] == [
        "term_not_covered: period 2026-11-01..2026-11-30 is outside the term of PO-1 (2027-01-01..2027-12-31)"
    ]
    assert result.po_number == "PO-1"


def test_period_partly_inside_the_term_is_a_mismatch_never_prorated() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40")])
    result = one_result(
        [po],
        make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], span=(date(2026, 12, 15), date(2027, 1, 14))),
    )
    assert result.status is MatchStatus.MISMATCH
    assert [str(r) for r in result.reasons] == [
        "partial_period: period 2026-12-15..2027-01-14 is only partly inside the term of PO-1 "
        "(2026-01-01..2026-12-31); proration is not guessed"
    ]


def test_po_without_term_dates_covers_any_period() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40")], term=(None, None))
    assert one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])).status is MatchStatus.MATCHED


def test_billed_sku_without_a_po_line_is_sku_unmapped() -> None:
    result = one_result(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")])], make_period("CUST-ACME", [("PLAN-ENT", "1", "40")])
    )
    assert result.status is MatchStatus.MISMATCH
    assert [str(r) for r in result.reasons] == [
        "sku_unmapped: billed SKU PLAN-ENT has no line on PO-1 (accepted PO SKUs: PLAN-ENT)"
    ]


def test_sku_map_lets_a_billing_sku_match_the_buyers_sku_or_supplier_part_id() -> None:
    by_sku = make_po("PO-1", [("CLD-PRO-SEAT", "10", "40")])
    by_part = PurchaseOrder(
        source="inbox",
        external_id="PO-2",
        po_number="PO-2",
        buyer_id="acme.example",
        currency="USD",
        lines=(
            POLine(
                line_no=1,
                sku="BUYER-ITEM-7",
                supplier_part_aux_id="CLD-PRO-SEAT",
                quantity=Decimal(10),
                unit_price=Money.of("40", "USD"),
            ),
        ),
    )
    for po in (by_sku, by_part):
        assert (
            one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])).status
            is MatchStatus.MATCHED
        )


def test_price_outside_tolerance_is_price_differs_with_both_prices() -> None:
    po = make_po("INI-7781", [("PLAN-PRO", "120", "45.00")], buyer="initech.example")
    result = one_result([po], make_period("CUST-INITECH", [("PLAN-PRO", "10", "40.00")]))
    assert result.status is MatchStatus.MISMATCH
    assert [str(r) for r in result.reasons] == [
        "price_differs: unit price 45.00 USD on INI-7781 line 1, billed 40.00"
    ]


def test_price_detail_keeps_sub_cent_digits() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "1000", "0.0125")])
    result = one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "10", "0.013")]))
    assert result.reasons[0].detail == "unit price 0.0125 USD on PO-1 line 1, billed 0.013"


@pytest.mark.parametrize(
    ("tolerance", "billed", "status"),
    [
        (Tolerance(percent=Decimal(5), absolute=None), "41.99", MatchStatus.MATCHED),
        (Tolerance(percent=Decimal(5), absolute=None), "42.01", MatchStatus.MISMATCH),
        (Tolerance(percent=Decimal(5), absolute=None), "38.01", MatchStatus.MATCHED),
        (Tolerance(percent=None, absolute=Decimal("0.50")), "40.50", MatchStatus.MATCHED),
        (Tolerance(percent=None, absolute=Decimal("0.50")), "40.51", MatchStatus.MISMATCH),
        (Tolerance(percent=Decimal(5), absolute=Decimal("0.50")), "41.00", MatchStatus.MISMATCH),
        (Tolerance(percent=None, absolute=None), "400", MatchStatus.MATCHED),
        (Tolerance(percent=Decimal(5)), "40.01", MatchStatus.MISMATCH),
        (Tolerance(percent=None, absolute=None, direction="over"), "1", MatchStatus.MATCHED),
        (Tolerance(direction="over"), "39.00", MatchStatus.MATCHED),
        (Tolerance(direction="over"), "40.01", MatchStatus.MISMATCH),
    ],
)
def test_price_tolerance_follows_oracle_semantics(
    tolerance: Tolerance, billed: str, status: MatchStatus
) -> None:
    settings = ReconcileSettings(price=tolerance, total=Tolerance(percent=None, absolute=None))
    po = make_po("PO-1", [("PLAN-PRO", "10", "40.00")])
    assert one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", billed)]), settings).status is status


def test_per_currency_tolerance_replaces_the_general_one() -> None:
    settings = ReconcileSettings(
        per_currency={"JPY": CurrencyTolerances(price=Tolerance(percent=None, absolute=Decimal(1)))},
        total=Tolerance(percent=None, absolute=None),
    )
    yen = make_po("PO-JPY", [("PLAN-PRO", "10", "4000")], currency="JPY")
    dollars = make_po("PO-USD", [("PLAN-PRO", "10", "40")], buyer="initech.example")
    assert (
        one_result(
            [yen], make_period("CUST-ACME", [("PLAN-PRO", "1", "4001")], currency="JPY"), settings
        ).status
        is MatchStatus.MATCHED
    )
    assert (
        one_result([dollars], make_period("CUST-INITECH", [("PLAN-PRO", "1", "41")]), settings).status
        is MatchStatus.MISMATCH
    )


def test_quantity_above_what_is_left_is_quantity_exceeds_po() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40"), ("ADDON-SSO", "12", "10")])
    result = one_result([po], make_period("CUST-ACME", [("ADDON-SSO", "13", "10")]))
    assert result.status is MatchStatus.MISMATCH
    assert "quantity_exceeds_po" in codes(result)
    assert result.reasons[0].detail == "billed 13 ADDON-SSO, PO-1 line 2 has 12 left of 12"


def test_quantity_tolerance_allows_a_little_more_than_ordered() -> None:
    settings = ReconcileSettings(
        quantity=Tolerance(percent=Decimal(10), absolute=None), total=Tolerance(percent=None, absolute=None)
    )
    po = make_po("PO-1", [("ADDON-SSO", "10", "10")])
    assert (
        one_result([po], make_period("CUST-ACME", [("ADDON-SSO", "11", "10")]), settings).status
        is MatchStatus.MATCHED
    )
    assert (
        one_result([po], make_period("CUST-ACME", [("ADDON-SSO", "12", "10")]), settings).status
        is MatchStatus.MISMATCH
    )


def test_quantity_is_drawn_down_by_earlier_periods_and_prior_invoices() -> None:
    po = make_po("PO-1", [("ADDON-SSO", "12", "10")])
    prior = PriorInvoice(po.key, "elsewhere/1", Money.of("50", "USD"), True, 1, {1: Decimal(5)})
    periods = [
        make_period("CUST-ACME", [("ADDON-SSO", "4", "10")], span=(date(2026, 10, 1), date(2026, 10, 31))),
        make_period("CUST-ACME", [("ADDON-SSO", "4", "10")]),
    ]
    outcome = reconcile([po], periods, CUSTOMERS, SKUS, STRICT, [prior])
    assert [r.status for r in outcome.results] == [MatchStatus.MATCHED, MatchStatus.MISMATCH]
    assert outcome.results[1].reasons[0].detail == "billed 4 ADDON-SSO, PO-1 line 1 has 3 left of 12"


def test_two_billing_lines_on_one_po_line_are_added_up() -> None:
    po = make_po("PO-1", [("ADDON-SSO", "5", "10")])
    result = one_result([po], make_period("CUST-ACME", [("ADDON-SSO", "3", "10"), ("ADDON-SSO", "3", "10")]))
    assert codes(result) == ["quantity_exceeds_po", "po_exhausted"]


def test_second_line_of_the_same_sku_takes_over_when_the_first_is_used_up() -> None:
    po = make_po("PO-1", [("ADDON-SSO", "2", "10"), ("ADDON-SSO", "5", "10")])
    outcome = reconcile([po], [make_period("CUST-ACME", [("ADDON-SSO", "4", "10")])], CUSTOMERS, SKUS, STRICT)
    allocation = next(iter(outcome.allocations.values()))
    assert [p.line_no for _, p in allocation.lines] == [2]


def test_po_line_service_window_must_cover_the_period() -> None:
    po = PurchaseOrder(
        source="inbox",
        external_id="PO-1",
        po_number="PO-1",
        buyer_id="acme.example",
        currency="USD",
        lines=(
            POLine(
                line_no=1,
                sku="PLAN-PRO",
                quantity=Decimal(6),
                unit_price=Money.of("40", "USD"),
                service_start=date(2026, 1, 1),
                service_end=date(2026, 6, 30),
            ),
        ),
    )
    result = one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    assert [str(r) for r in result.reasons] == [
        "term_not_covered: PO-1 line 1 serves 2026-01-01..2026-06-30, billed 2026-11-01..2026-11-30"
    ]


def test_period_before_the_term_also_names_po_lines_serving_outside_it() -> None:
    po = PurchaseOrder(
        source="inbox",
        external_id="PO-1",
        po_number="PO-1",
        buyer_id="acme.example",
        currency="USD",
        term_start=date(2027, 1, 1),
        term_end=date(2027, 12, 31),
        lines=(
            POLine(
                line_no=1,
                sku="PLAN-PRO",
                quantity=Decimal(6),
                unit_price=Money.of("40", "USD"),
                service_start=date(2027, 1, 1),
                service_end=date(2027, 6, 30),
            ),
        ),
    )
    result = one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    assert result.status is MatchStatus.MISSING_PO
    assert [str(r) for r in result.reasons] == [
        "term_not_covered: period 2026-11-01..2026-11-30 is outside the term of PO-1 "
        "(2027-01-01..2027-12-31)",
        "term_not_covered: PO-1 line 1 serves 2027-01-01..2027-06-30, billed 2026-11-01..2026-11-30",
    ]


def test_balance_used_by_earlier_periods_gives_po_exhausted() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40.00")])
    settings = ReconcileSettings(quantity=Tolerance(percent=None, absolute=None))
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "60", "40.00")], span=(date(2026, 10, 1), date(2026, 10, 31))),
        make_period("CUST-ACME", [("PLAN-PRO", "60", "40.00")]),
    ]
    outcome = reconcile([po], periods, CUSTOMERS, SKUS, settings)
    assert [r.status for r in outcome.results] == [MatchStatus.MATCHED, MatchStatus.MISMATCH]
    assert [str(r) for r in outcome.results[1].reasons] == [
        "po_exhausted: period total 2400.00 USD, PO-1 has 1600.00 USD left of 4000.00 USD"
    ]


def test_total_tolerance_lets_the_balance_be_slightly_overdrawn() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40.00")])
    settings = ReconcileSettings(
        quantity=Tolerance(percent=None, absolute=None), total=Tolerance(percent=None, absolute=Decimal(40))
    )
    prior = PriorInvoice(po.key, "old/1", Money.of("3960.00", "USD"), True, 1)
    assert (
        one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "2", "40.00")]), settings, (prior,)).status
        is MatchStatus.MATCHED
    )
    assert (
        one_result([po], make_period("CUST-ACME", [("PLAN-PRO", "3", "40.00")]), settings, (prior,)).status
        is MatchStatus.MISMATCH
    )


def test_prior_invoice_of_a_period_in_this_run_is_not_counted_twice() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40.00")])
    period = make_period("CUST-ACME", [("PLAN-PRO", "10", "40.00")])
    own = PriorInvoice(po.key, period.key, Money.of("400.00", "USD"), True, 1, {1: Decimal(10)})
    other = PriorInvoice(
        po.key, "billing/SUB-0/2026-10-01", Money.of("400.00", "USD"), False, 1, {1: Decimal(10)}
    )
    assert one_result([po], period, prior=(own,)).status is MatchStatus.MATCHED
    assert one_result([po], period, prior=(other,)).status is MatchStatus.MISMATCH


def test_several_fitting_pos_are_ambiguous_and_consume_nothing() -> None:
    pos = [make_po("PO-B", [("PLAN-PRO", "10", "40")]), make_po("PO-A", [("PLAN-PRO", "10", "40")])]
    outcome = reconcile(pos, [make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])], CUSTOMERS, SKUS, STRICT)
    assert [str(r) for r in outcome.results[0].reasons] == ["several_pos: PO-A, PO-B all fit the period"]
    assert outcome.allocations == {}
    assert [r.po_number for r in only(outcome.results, MatchStatus.UNUSED_PO)] == ["PO-A", "PO-B"]


def test_mismatch_reports_the_candidate_with_fewest_reasons() -> None:
    pos = [
        make_po("PO-A", [("PLAN-PRO", "10", "45")], status=POStatus.ON_HOLD),
        make_po("PO-B", [("PLAN-PRO", "10", "45")]),
    ]
    result = one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]))
    assert (result.status, result.po_number, codes(result)) == (
        MatchStatus.MISMATCH,
        "PO-B",
        ["price_differs"],
    )


def test_mismatch_ties_are_broken_by_po_number() -> None:
    pos = [make_po("PO-B", [("PLAN-PRO", "10", "45")]), make_po("PO-A", [("PLAN-PRO", "10", "46")])]
    assert one_result(pos, make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])).po_number == "PO-A"


def test_latest_revision_of_a_po_is_the_one_reconciled() -> None:
    old = make_po("PO-1", [("ADDON-SSO", "10", "5")], revision=1)
    new = make_po("PO-1", [("ADDON-SSO", "24", "5")], revision=2)
    period = make_period("CUST-ACME", [("ADDON-SSO", "20", "5")])
    for pos in ([old, new], [new, old]):
        outcome = reconcile(pos, [period], CUSTOMERS, SKUS, STRICT)
        assert outcome.results[0].status is MatchStatus.MATCHED
        assert outcome.allocations[period.key].po.revision == 2
        assert len(outcome.results) == 1


def test_unused_open_po_is_reported_once_and_closed_ones_not_at_all() -> None:
    pos = [
        make_po("PO-1", [("PLAN-PRO", "10", "40")]),
        make_po("PO-1", [("PLAN-PRO", "10", "40")], revision=2),
        make_po("PO-2", [("PLAN-PRO", "10", "40")], status=POStatus.CLOSED),
    ]
    outcome = reconcile(pos, [], CUSTOMERS, SKUS, STRICT)
    assert len(outcome.results) == 1
    result = outcome.results[0]
    assert (result.status, result.po_number, result.customer_ref, result.billing_key) == (
        MatchStatus.UNUSED_PO,
        "PO-1",
        "CUST-ACME",
        None,
    )
    assert [str(r) for r in result.reasons] == ["no_billing_period: no billing period matched PO-1"]
    assert result.amount == Money.of("400", "USD")
    assert result.subject_key == f"po:{pos[1].key}"


def test_unused_po_of_an_unknown_buyer_says_customer_unknown() -> None:
    result = reconcile(
        [make_po("PO-X", [("PLAN-PRO", "1", "1")], buyer="nobody.example")], [], CUSTOMERS, SKUS, STRICT
    ).results[0]
    assert result.customer_ref is None
    assert [str(r) for r in result.reasons] == [
        "no_billing_period: no billing period matched PO-X",
        "customer_unknown: buyer nobody.example of PO-X is not in the customer map",
    ]


def test_po_already_invoiced_in_an_earlier_run_is_not_unused() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "10", "40")])
    prior = PriorInvoice(po.key, "billing/SUB-1/2026-01-01", Money.of("40", "USD"), True, 1, {1: Decimal(1)})
    assert reconcile([po], [], CUSTOMERS, SKUS, STRICT, [prior]).results == ()


def test_renewal_warning_when_the_term_ends_soon() -> None:
    settings = ReconcileSettings(as_of=date(2026, 12, 5))
    result = one_result(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")])],
        make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]),
        settings,
    )
    assert result.status is MatchStatus.MATCHED
    assert [str(w) for w in result.warnings] == [
        "renewal_due: PO-1 term ends 2026-12-31, 26 days after 2026-12-05"
    ]
    far = ReconcileSettings(as_of=date(2026, 11, 1))
    assert (
        one_result(
            [make_po("PO-1", [("PLAN-PRO", "10", "40")])],
            make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]),
            far,
        ).warnings
        == ()
    )


def test_renewal_warning_when_most_of_the_po_is_consumed() -> None:
    po = make_po("PO-1", [("PLAN-PRO", "100", "40.00")])
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "80", "40.00")], span=(date(2026, 10, 1), date(2026, 10, 31))),
        make_period("CUST-ACME", [("PLAN-PRO", "5", "40.00")]),
    ]
    outcome = reconcile([po], periods, CUSTOMERS, SKUS, STRICT)
    assert outcome.results[0].warnings == ()
    assert [str(w) for w in outcome.results[1].warnings] == [
        "renewal_due: PO-1 is 85.0% consumed (3400.00 USD of 4000.00 USD)"
    ]


def test_results_do_not_depend_on_input_order() -> None:
    pos = [
        make_po("PO-1", [("PLAN-PRO", "10", "40")]),
        make_po("INI-1", [("PLAN-PRO", "5", "40")], buyer="initech.example"),
    ]
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "6", "40")], subscription="B"),
        make_period("CUST-ACME", [("PLAN-PRO", "6", "40")], subscription="A"),
        make_period("CUST-INITECH", [("PLAN-PRO", "5", "40")], subscription="C"),
    ]
    forward = reconcile(pos, periods, CUSTOMERS, SKUS, STRICT)
    backward = reconcile(pos[::-1], periods[::-1], CUSTOMERS, SKUS, STRICT)
    assert forward == backward
    # Same start date: the key decides, so subscription A gets the balance.
    assert [r.status for r in forward.results[:2]] == [MatchStatus.MATCHED, MatchStatus.MISMATCH]
    assert "/A/" in (forward.results[0].billing_key or "")


def test_one_result_per_period_key_even_if_given_twice() -> None:
    period = make_period("CUST-ACME", [("PLAN-PRO", "1", "40")])
    outcome = reconcile(
        [make_po("PO-1", [("PLAN-PRO", "10", "40")])], [period, period], CUSTOMERS, SKUS, STRICT
    )
    assert len(outcome.results) == 1


def test_conflicting_records_under_one_key_are_resolved_the_same_whatever_the_order() -> None:
    pos = [make_po("PO-1", [("PLAN-PRO", "10", "40")]), make_po("PO-1", [("PLAN-PRO", "10", "45")])]
    periods = [
        make_period("CUST-ACME", [("PLAN-PRO", "1", "40")]),
        make_period("CUST-ACME", [("PLAN-PRO", "2", "40")]),
    ]
    forward = reconcile(pos, periods, CUSTOMERS, SKUS, STRICT)
    assert reconcile(pos[::-1], periods[::-1], CUSTOMERS, SKUS, STRICT) == forward
    assert len([r for r in forward.results if r.billing_key]) == 1


# --- the maps -------------------------------------------------------------------------------


def test_customer_map_finds_buyers_by_id_case_and_email_domain() -> None:
    customers = CustomerMap.load(EXAMPLES / "customers.toml")
    po = make_po("PO-1", [("PLAN-PRO", "1", "1")])
    assert customers.customer_for(po.model_copy(update={"buyer_id": "ACME.example"})) == "CUST-ACME"
    assert (
        customers.customer_for(po.model_copy(update={"buyer_id": "purchasing@Acme.Example"})) == "CUST-ACME"
    )
    assert customers.customer_for(po.model_copy(update={"buyer_id": "x@unknown.example"})) is None
    assert customers.customer_for(po.model_copy(update={"buyer_id": ""})) is None
    assert customers.customer_for(po.model_copy(update={"customer_ref": "CUST-SET"})) == "CUST-SET"
    assert customers.name_of("CUST-GLOBEX") == "Globex GmbH"
    assert customers.name_of("CUST-NONE") == ""


def test_customer_map_answers_a_buyer_id_it_has_seen_as_it_did_the_first_time() -> None:
    customers = CustomerMap.load(EXAMPLES / "customers.toml")
    po = make_po("PO-1", [("PLAN-PRO", "1", "1")])
    buyers = [" ACME.example ", "purchasing@Acme.Example", "x@unknown.example", "", "acme.example"]
    first = [customers.customer_for(po.model_copy(update={"buyer_id": buyer})) for buyer in buyers]
    assert first == ["CUST-ACME", "CUST-ACME", None, None, "CUST-ACME"]
    again = [customers.customer_for(po.model_copy(update={"buyer_id": buyer})) for buyer in reversed(buyers)]
    assert again == first[::-1]
    # A PO's own customer_ref still wins over the buyer id it shares with others.
    own = po.model_copy(update={"buyer_id": " ACME.example ", "customer_ref": "CUST-SET"})
    assert customers.customer_for(own) == "CUST-SET"


def test_sku_map_always_accepts_the_billing_sku_itself() -> None:
    skus = SkuMap.load(EXAMPLES / "skus.toml")
    assert skus.po_skus_for("PLAN-ENT") == {"PLAN-ENT", "CLD-ENT-ANNUAL"}
    assert skus.po_skus_for("OTHER") == {"OTHER"}
    assert SkuMap({"A": ["B"]}).po_skus_for("A") == {"A", "B"}
    assert SkuMap.load(None).po_skus_for("A") == {"A"}
    assert CustomerMap.load(None).customer_for(make_po("PO-1", [("A", "1", "1")])) is None


@pytest.mark.parametrize(
    ("loader", "text", "message"),
    [
        (
            CustomerMap.load,
            "[[customers]]\nname = 'x'\n",
            "customers[0].customer_ref: expected a non-empty string",
        ),
        (
            CustomerMap.load,
            "[[customers]]\ncustomer_ref = 'A'\nbuyer_ids = 'a.example'\n",
            "customers[0].buyer_ids: expected a list",
        ),
        (
            CustomerMap.load,
            "[[customers]]\ncustomer_ref = 'A'\nbuyer_ids = [3]\n",
            "customers[0].buyer_ids[0]",
        ),
        (
            CustomerMap.load,
            "[[customers]]\ncustomer_ref = 'A'\nbuyerids = []\n",
            "customers[0].buyerids: unknown key",
        ),
        (
            CustomerMap.load,
            "[[customers]]\ncustomer_ref = 'A'\nbuyer_ids = ['x']\n"
            "[[customers]]\ncustomer_ref = 'B'\nbuyer_ids = ['X']\n",
            "customers[1].buyer_ids: 'X' already maps to A",
        ),
        (CustomerMap.load, "customers = 'x'\n", "customers: expected [[customers]]"),
        (CustomerMap.load, "[customer]\n", "customer: unknown key"),
        (SkuMap.load, "[skus]\nA = 'B'\n", "skus.A: expected a list"),
        (SkuMap.load, "[sku]\n", "sku: unknown key"),
        (SkuMap.load, "[skus\n", "is not valid TOML"),
    ],
)
def test_bad_map_files_name_the_file_and_key(tmp_path: Path, loader: object, text: str, message: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        loader(path)  # type: ignore[operator]
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_map_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        SkuMap.load(tmp_path / "absent.toml")
