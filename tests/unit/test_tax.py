"""Line tax validation, the breakdown per category and rate, and invoice totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.model import InvoiceLine, Money
from connector.tax import (
    LineTax,
    TaxCategory,
    TaxProblem,
    TaxScheme,
    breakdown,
    category_of_exemption_code,
    computed_tax,
    tax_total,
)
from tests.support.factories import make_plan

S19 = LineTax(category=TaxCategory.STANDARD, rate=Decimal("19"))
REVERSE = LineTax(category=TaxCategory.REVERSE_CHARGE, rate=Decimal(0), exemption_reason_code="VATEX-EU-AE")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"category": "S", "rate": Decimal(0)}, "needs a rate above 0"),
        ({"category": "S", "rate": None}, "needs a rate"),
        ({"category": "S", "rate": Decimal(100)}, "out of range"),
        ({"category": "S", "rate": Decimal(-1)}, "out of range"),
        ({"category": "Z", "rate": Decimal(5)}, "charged at 0 percent"),
        ({"category": "AE", "rate": Decimal(0)}, "needs an exemption reason"),
        ({"category": "S", "rate": Decimal(20), "exemption_reason": "why"}, "must not carry"),
        ({"category": "O", "rate": Decimal(7), "exemption_reason": "Not subject"}, "has no rate"),
        (
            {"category": "E", "rate": Decimal(0), "exemption_reason_code": "VATEX-EU-AE"},
            "belongs to category AE",
        ),
        ({"scheme": "SALES_TAX", "category": "S", "rate": Decimal("8.875")}, "jurisdiction"),
        ({"category": "S", "rate": 19.0}, "floats"),
        (
            {
                "category": "AE",
                "rate": Decimal(0),
                "exemption_reason_code": "VATEX-EU-AE",
                "amount": Decimal(3),
            },
            "carries no tax",
        ),
    ],
)
def test_line_tax_refuses_what_the_rules_forbid(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LineTax.model_validate(fields)


def test_exemption_codes_belong_to_their_category() -> None:
    assert category_of_exemption_code("vatex-eu-ae") is TaxCategory.REVERSE_CHARGE
    assert category_of_exemption_code("VATEX-EU-132-1I") is TaxCategory.EXEMPT
    assert category_of_exemption_code("VATEX-EU-O") is TaxCategory.OUTSIDE_SCOPE
    assert category_of_exemption_code("LOCAL-123") is None


def test_group_tax_is_rounded_once_not_per_line() -> None:
    # Xero's rounding example: three lines at 15% give 11.44 summed per line, 11.45 once.
    tax = LineTax(category=TaxCategory.STANDARD, rate=Decimal(15))
    lines = [(Decimal("25.43"), tax), (Decimal("25.43"), tax), (Decimal("25.43"), tax)]
    (group,) = breakdown(lines, "NZD")
    assert group.taxable_amount == Decimal("76.29")
    assert group.tax_amount == Decimal("11.44")  # 76.29 x 15% = 11.4435
    per_line = sum(computed_tax(net, tax.rate, "NZD") for net, _ in lines)
    assert per_line == Decimal("11.43")


def test_trailing_zeros_do_not_make_a_new_group() -> None:
    a = LineTax(category=TaxCategory.STANDARD, rate=Decimal("25"))
    b = LineTax(category=TaxCategory.STANDARD, rate=Decimal("25.00"))
    assert len(breakdown([(Decimal(10), a), (Decimal(10), b)], "EUR")) == 1


def test_jpy_tax_has_no_minor_unit() -> None:
    jct = LineTax(category=TaxCategory.STANDARD, rate=Decimal(10))
    (group,) = breakdown([(Decimal(12345), jct)], "JPY")
    assert group.tax_amount == Decimal(1235)  # 1234.5 half-up


def test_stated_tax_within_rounding_is_carried_as_stated() -> None:
    stated = [
        (Decimal("25.43"), LineTax(category=TaxCategory.STANDARD, rate=Decimal(15), amount=Decimal("3.81"))),
        (Decimal("25.43"), LineTax(category=TaxCategory.STANDARD, rate=Decimal(15), amount=Decimal("3.81"))),
        (Decimal("25.43"), LineTax(category=TaxCategory.STANDARD, rate=Decimal(15), amount=Decimal("3.81"))),
    ]
    (group,) = breakdown(stated, "NZD")
    assert group.tax_amount == Decimal("11.43")  # what the billing system charged, to the cent


def test_stated_tax_beyond_rounding_is_tax_differs() -> None:
    wrong = LineTax(category=TaxCategory.STANDARD, rate=Decimal(19), amount=Decimal("20.00"))
    with pytest.raises(TaxProblem) as caught:
        breakdown([(Decimal("100.00"), wrong)], "EUR")
    assert caught.value.code == "tax_differs"
    assert "19.00 EUR" in caught.value.detail


def test_one_group_cannot_carry_two_exemption_reasons() -> None:
    one = LineTax(category=TaxCategory.EXEMPT, rate=Decimal(0), exemption_reason_code="VATEX-EU-132-1I")
    two = LineTax(category=TaxCategory.EXEMPT, rate=Decimal(0), exemption_reason_code="VATEX-EU-132-1J")
    with pytest.raises(TaxProblem) as caught:
        breakdown([(Decimal(1), one), (Decimal(2), two)], "EUR")
    assert caught.value.code == "tax_conflict"


def test_sales_tax_groups_by_jurisdiction() -> None:
    ny = LineTax(
        scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.875"), jurisdiction="US-NY"
    )
    tx = LineTax(
        scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.25"), jurisdiction="US-TX"
    )
    groups = breakdown([(Decimal(1000), ny), (Decimal(1000), tx)], "USD")
    assert [g.jurisdiction for g in groups] == ["US-NY", "US-TX"]
    assert tax_total(groups, "USD") == Decimal("171.25")


def test_plan_totals_are_net_plus_tax() -> None:
    plan = make_plan()
    lines = (
        plan.lines[0].model_copy(update={"tax": S19}),
        plan.lines[0].model_copy(
            update={"line_no": 2, "tax": LineTax(category=TaxCategory.STANDARD, rate=Decimal(7))}
        ),
    )
    taxed = type(plan).model_validate({**plan.model_dump(), "lines": [line.model_dump() for line in lines]})
    assert taxed.net_total == Money.of("400.00", "USD")
    assert taxed.tax_total == Money.of("52.00", "USD")  # 200 x 19% + 200 x 7%
    assert taxed.total == Money.of("452.00", "USD")
    assert [g.rate for g in taxed.tax_breakdown] == [Decimal(7), Decimal(19)]


def test_a_plan_taxes_every_line_or_none() -> None:
    plan = make_plan()
    lines = [
        plan.lines[0].model_copy(update={"tax": S19}).model_dump(),
        plan.lines[0].model_copy(update={"line_no": 2}).model_dump(),
    ]
    with pytest.raises(ValidationError, match="carry no tax"):
        type(plan).model_validate({**plan.model_dump(), "lines": lines})


def test_untaxed_plan_total_is_its_net() -> None:
    plan = make_plan()
    assert not plan.is_taxed
    assert plan.total == plan.net_total
    assert plan.tax_breakdown == ()


def test_stated_line_amount_wins_over_price_times_quantity() -> None:
    line = InvoiceLine(
        line_no=1,
        sku="X",
        quantity=Decimal(3),
        unit_price=Money.of("33.333333", "EUR"),
        line_amount=Money.of("100.00", "EUR"),
    )
    assert line.amount == Money.of("100.00", "EUR")


@dataclass(frozen=True)
class _Case:
    currency: str
    lines: list[tuple[Decimal, LineTax]]


_RATES = st.sampled_from(
    [Decimal(0), Decimal("5.5"), Decimal(7), Decimal(10), Decimal(19), Decimal(20), Decimal("8.875")]
)


@st.composite
def _cases(draw: st.DrawFn) -> _Case:
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD", "GBP", "USD"]))
    exponent = {"JPY": 0, "KWD": 3}.get(currency, 2)
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        rate = draw(_RATES)
        tax = (
            LineTax(category=TaxCategory.ZERO_RATED, rate=Decimal(0))
            if rate == 0
            else LineTax(category=TaxCategory.STANDARD, rate=rate)
        )
        net = Decimal(draw(st.integers(0, 10**9))).scaleb(-exponent)
        lines.append((net, tax))
    return _Case(currency, lines)


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_breakdown_adds_up_to_the_lines(case: _Case) -> None:
    groups = breakdown(case.lines, case.currency)
    assert sum(g.taxable_amount for g in groups) == sum(net for net, _ in case.lines)
    assert len(groups) == len({tax.group_key() for _, tax in case.lines})
    for group in groups:
        assert group.tax_amount == computed_tax(group.taxable_amount, group.rate, case.currency)
        assert group.tax_amount.as_tuple().exponent == -{"JPY": 0, "KWD": 3}.get(case.currency, 2)
    assert tax_total(groups, case.currency) == sum(g.tax_amount for g in groups)


def test_tax_code_map_picks_the_most_specific_key_and_names_the_missing_one() -> None:
    from connector.tax import TaxCodeMap

    codes = TaxCodeMap(
        {"s:20.00": "OUTPUT2", "S": "OUTPUT", "AE": "ECZROUTPUTSERVICES", "SALES_TAX:us-ny": "NY"}
    )
    assert codes.code_for(LineTax(category=TaxCategory.STANDARD, rate=Decimal("20.0"))) == "OUTPUT2"
    assert codes.code_for(LineTax(category=TaxCategory.STANDARD, rate=Decimal("5"))) == "OUTPUT"
    reverse = LineTax(
        category=TaxCategory.REVERSE_CHARGE, rate=Decimal(0), exemption_reason_code="VATEX-EU-AE"
    )
    assert codes.code_for(reverse) == "ECZROUTPUTSERVICES"
    sales = LineTax(
        scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.875"), jurisdiction="US-NY"
    )
    assert codes.code_for(sales) == "NY"
    exempt = LineTax(category=TaxCategory.EXEMPT, rate=Decimal(0), exemption_reason="Financial service")
    with pytest.raises(TaxProblem) as caught:
        codes.code_for(exempt)
    assert caught.value.code == "tax_code_unmapped"
    assert "E" in str(caught.value)


@pytest.mark.parametrize("key", ["X:19", "S:abc", "S:100", "S:-1", "S:NaN"])
def test_tax_code_map_refuses_a_key_that_names_no_treatment(key: str) -> None:
    from connector.tax import TaxCodeMap

    with pytest.raises(ValueError, match="tax code key"):
        TaxCodeMap({key: "CODE"})
