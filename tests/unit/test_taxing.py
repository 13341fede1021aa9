"""Tax resolution: billing, SKU override and customer master in order; periods held with reasons."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.maps import Customer, CustomerMaster, SkuMap
from connector.model import BillingLine, BillingPeriod, Money, Party
from connector.tax import LineTax, TaxCategory, TaxScheme
from connector.taxing import TaxResolver

STANDARD_19 = LineTax(category=TaxCategory.STANDARD, rate=Decimal(19))
REVERSE = LineTax(category=TaxCategory.REVERSE_CHARGE, rate=Decimal(0), exemption_reason_code="VATEX-EU-AE")
EXEMPT = LineTax(category=TaxCategory.EXEMPT, rate=Decimal(0), exemption_reason="Exempt training")
SUPPLIER = Party(legal_name="Vendor Inc.", vat_id="GB123456789", tax_registration_id="12-3456789")


def period(*lines: BillingLine, currency: str = "EUR") -> BillingPeriod:
    return BillingPeriod(
        billing_source="billing",
        subscription_id="SUB-1",
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        customer_ref="C1",
        currency=currency,
        lines=lines,
    )


def line(
    sku: str = "PLAN", price: str = "100.00", tax: LineTax | None = None, currency: str = "EUR"
) -> BillingLine:
    return BillingLine(sku=sku, quantity=Decimal(1), unit_price=Money.of(price, currency), tax=tax)


def customer(tax: LineTax | None = None, vat_id: str = "DE123456788") -> Customer:
    return Customer(customer_ref="C1", name="Globex", master=CustomerMaster(vat_id=vat_id, tax=tax))


def resolver(order: tuple[str, ...] = ("billing", "sku", "customer"), **kwargs: object) -> TaxResolver:
    skus = SkuMap({}, {"TRAINING": EXEMPT})
    return TaxResolver(order, skus, supplier=SUPPLIER, **kwargs)  # type: ignore[arg-type]


def test_first_place_in_the_order_that_states_tax_wins_per_line() -> None:
    billed = period(line("PLAN", tax=STANDARD_19), line("TRAINING"), line("SSO"))
    found = resolver().resolve(billed, customer(REVERSE))
    assert found.reasons == ()
    assert found.period is not None
    taxes = [billed_line.tax for billed_line in found.period.lines]
    assert [t.category if t else None for t in taxes] == ["S", "E", "AE"]
    assert [t.origin if t else None for t in taxes] == ["", "sku", "customer"]


def test_the_order_is_configurable() -> None:
    billed = period(line("TRAINING", tax=STANDARD_19))
    found = resolver(order=("sku", "billing")).resolve(billed, customer())
    assert found.period is not None and found.period.lines[0].tax is not None
    assert found.period.lines[0].tax.category is TaxCategory.EXEMPT


def test_a_line_no_place_states_is_held_as_tax_unknown() -> None:
    found = resolver().resolve(period(line("PLAN", tax=STANDARD_19), line("SSO")), customer(None))
    assert found.period is None
    assert [r.code for r in found.reasons] == ["tax_unknown"]
    assert "line SSO" in found.reasons[0].detail and "C1" in found.reasons[0].detail


def test_untaxed_periods_go_on_only_when_tax_is_not_required() -> None:
    untaxed = period(line("SSO"))
    assert resolver(required=False).resolve(untaxed, customer(None)).period == untaxed
    assert resolver(required=True).resolve(untaxed, customer(None)).period is None
    mixed = period(line("SSO"), line("PLAN", tax=STANDARD_19))
    assert [r.code for r in resolver(required=False).resolve(mixed, None).reasons] == ["tax_unknown"]


def test_a_stated_amount_that_is_not_rate_times_base_is_tax_differs() -> None:
    stated = STANDARD_19.model_copy(update={"amount": Decimal("20.00")})
    found = resolver().resolve(period(line("PLAN", tax=stated)), customer())
    assert [r.code for r in found.reasons] == ["tax_differs"]
    assert "20.00 EUR" in found.reasons[0].detail and "19.00 EUR" in found.reasons[0].detail
    within = STANDARD_19.model_copy(update={"amount": Decimal("19.01")})
    assert resolver().resolve(period(line("PLAN", tax=within)), customer()).period is not None


def test_reverse_charge_needs_the_buyers_vat_id() -> None:
    found = resolver().resolve(period(line()), customer(REVERSE, vat_id=""))
    assert [r.code for r in found.reasons] == ["tax_needs_buyer_vat_id"]
    assert "vat_id" in found.reasons[0].detail


def test_outside_scope_with_vat_ids_is_held() -> None:
    outside = LineTax(category=TaxCategory.OUTSIDE_SCOPE, rate=None, exemption_reason="Not subject to VAT")
    found = resolver().resolve(period(line()), customer(outside))
    assert [r.code for r in found.reasons] == ["tax_outside_scope_with_vat_ids"]


def test_a_supplier_without_any_tax_id_cannot_charge_tax() -> None:
    skus = SkuMap()
    bare = TaxResolver(("customer",), skus, supplier=Party(legal_name="Vendor"))
    found = bare.resolve(period(line()), customer(STANDARD_19))
    assert [r.code for r in found.reasons] == ["tax_seller_unregistered"]


def test_two_exemption_reasons_in_one_group_conflict() -> None:
    other = EXEMPT.model_copy(update={"exemption_reason": "Exempt financial service"})
    found = resolver().resolve(period(line("TRAINING"), line("FIN", tax=other)), customer())
    assert [r.code for r in found.reasons] == ["tax_conflict"]


@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_us_sales_tax_from_billing_passes_in_any_currency(currency: str) -> None:
    sales = LineTax(
        scheme=TaxScheme.SALES_TAX,
        category=TaxCategory.STANDARD,
        rate=Decimal("8.875"),
        jurisdiction="US-NY",
        amount=Decimal("177.50") if currency == "USD" else Decimal(178),
    )
    price = "2000.00" if currency == "USD" else "2000"
    found = resolver().resolve(
        period(line(price=price, tax=sales, currency=currency), currency=currency), customer(vat_id="")
    )
    assert found.reasons == ()
