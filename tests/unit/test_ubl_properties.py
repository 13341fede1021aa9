"""Property: whatever lines, rates and currency a plan has, its invoice passes the EN 16931 and Peppol rules.

In a currency without minor unit (JPY) a line's net is whole yen, and PEPPOL-EN16931-R120 allows
0.02 between it and quantity x price: such lines get whole quantities and prices here.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.ubl import read_totals, render_invoice
from connector.model import InvoicePlan, Money
from connector.tax import LineTax
from tests.support.einvoice import assert_passes_rules, rules
from tests.support.factories import make_buyer, make_seller, make_taxed_plan, vat

CURRENCIES = ("EUR", "GBP", "SEK", "CHF", "USD", "JPY")
TAXES = (
    vat("19"),
    vat("7"),
    vat("20"),
    vat("5.5"),
    vat("8.1"),
    vat("12.5"),
    vat("0", "Z"),
    vat("0", "E", exemption_reason_code="VATEX-EU-132-1I", exemption_reason="Exempt: education"),
    vat("0", "AE", exemption_reason_code="VATEX-EU-AE", exemption_reason="Reverse charge"),
)


@st.composite
def plans(draw: st.DrawFn) -> InvoicePlan:
    currency = draw(st.sampled_from(CURRENCIES))
    count = draw(st.integers(min_value=1, max_value=6))
    taxes: tuple[LineTax, ...] = tuple(draw(st.sampled_from(TAXES)) for _ in range(count))
    plan = make_taxed_plan(taxes=taxes, currency=currency, buyer=make_buyer("FR"), bill_to=None)
    lines = []
    for line in plan.lines:
        whole = currency == "JPY"
        cents = draw(st.integers(min_value=1, max_value=5_000_000))
        places = 0 if whole else draw(st.sampled_from((0, 2, 4)))
        divisor = 1 if whole else draw(st.sampled_from((1, 10, 1000)))
        quantity = Decimal(draw(st.integers(min_value=1, max_value=10_000))) / divisor
        price = Money(amount=Decimal(cents).scaleb(-places), currency=currency)
        lines.append(line.model_copy(update={"unit_price": price, "quantity": quantity}))
    return InvoicePlan.model_validate({**plan.model_dump(), "lines": tuple(lines)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_any_taxed_plan_renders_an_invoice_without_a_fatal_rule_failure(plan: InvoicePlan) -> None:
    rules()  # compiled before the first example, not inside its time
    document = render_invoice(plan, make_seller())
    assert_passes_rules(document)
    totals = read_totals(document)
    assert (totals.total, totals.tax) == (plan.total, plan.tax_total)
