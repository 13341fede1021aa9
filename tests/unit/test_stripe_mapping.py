"""Stripe invoice JSON (basil shapes) -> BillingPeriod: periods, exact amounts, PO and customer refs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.stripe_fields import (
    DEFAULT_TAX_REASONS,
    MappingOptions,
    StripeMappingError,
    from_minor_units,
    stripe_exponent,
)
from adapters.stripe_mapping import map_invoice, service_dates
from adapters.stripe_tax import TaxRates, tax_rate_ids
from connector.currency import minor_unit_exponent
from connector.tax import LineTax, TaxCategory, TaxScheme


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


JAN, FEB, MAR = ts(2026, 1, 1), ts(2026, 2, 1), ts(2026, 3, 1)


def line(
    ident: str = "il_1",
    *,
    start: int = JAN,
    end: int = FEB,
    amount: int = 3998,
    unit: str | None = "1999",
    quantity: int = 2,
    currency: str = "usd",
    subscription: str | None = "sub_1",
    price: Any = "price_1",
    product: str = "prod_1",
    proration: bool = False,
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": "Pro plan",
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": subscription,
                "subscription_item": "si_1",
                "proration": proration,
            },
        },
        "period": {"start": start, "end": end},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price, "product": product},
            "unit_amount_decimal": unit,
        },
        "quantity": quantity,
    }


def invoice(lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "in_1",
        "object": "invoice",
        "created": ts(2026, 1, 1, 9, 30),
        "effective_at": None,
        "currency": "usd",
        "customer": "cus_1",
        "customer_name": "Acme Corp",
        "custom_fields": None,
        "metadata": {},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": "sub_1", "metadata": {}},
        },
        "period_start": ts(2025, 12, 1),
        "period_end": JAN,
        "status": "open",
        "lines": {"object": "list", "data": lines, "has_more": False},
    }
    data.update(extra)
    return data


def periods(data: dict[str, Any], **options: Any) -> list[Any]:
    return map_invoice(data, source="stripe", options=MappingOptions(**options))


@pytest.mark.parametrize(
    ("code", "stripe", "iso"),
    [("USD", 2, 2), ("JPY", 0, 0), ("KWD", 3, 3), ("CLF", 4, 4), ("MGA", 0, 2), ("ISK", 2, 0)],
)
def test_stripe_exponents_override_iso_only_where_stripe_differs(code: str, stripe: int, iso: int) -> None:
    assert stripe_exponent(code) == stripe
    assert minor_unit_exponent(code) == iso


@pytest.mark.parametrize(
    ("minor", "code", "amount"),
    [
        (1999, "USD", "19.99"),
        (1500, "JPY", "1500"),
        (12340, "KWD", "12.340"),
        (5000, "MGA", "5000"),
        (100, "ISK", "1.00"),
        (12345, "CLF", "1.2345"),
        (Decimal("0.5"), "USD", "0.005"),
    ],
)
def test_minor_units_become_exact_amounts(minor: Decimal | int, code: str, amount: str) -> None:
    value = from_minor_units(minor, code)
    assert value == Decimal(amount) and str(value) == amount


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        (JAN, FEB, date(2026, 1, 1), date(2026, 1, 31)),
        (ts(2025, 12, 1, 14, 23), ts(2026, 1, 1, 14, 23), date(2025, 12, 1), date(2025, 12, 31)),
        (JAN, ts(2026, 1, 31, 23, 59, 59), date(2026, 1, 1), date(2026, 1, 31)),
        (ts(2026, 1, 5, 10), ts(2026, 1, 5, 10), date(2026, 1, 5), date(2026, 1, 5)),
    ],
)
def test_a_line_period_ends_the_day_before_the_next_one_starts(
    start: int, end: int, first: date, last: date
) -> None:
    assert service_dates(start, end) == (first, last)


def test_periods_come_from_line_service_periods_not_the_invoice_period() -> None:
    [period] = periods(invoice([line()]))
    assert (period.period_start, period.period_end) == (date(2026, 1, 1), date(2026, 1, 31))
    assert period.subscription_id == "sub_1" and period.key == "default/stripe/sub_1/2026-01-01"
    assert period.customer_ref == "cus_1" and period.customer_name == "Acme Corp"
    assert period.invoice_date == date(2026, 1, 1) and period.status == "open"
    assert period.currency == "USD"
    [billing_line] = period.lines
    assert billing_line.sku == "prod_1" and billing_line.quantity == 2
    assert billing_line.unit_price.amount == Decimal("19.99") and billing_line.amount.amount == Decimal(
        "39.98"
    )


def test_lines_of_two_periods_or_subscriptions_on_one_invoice_give_separate_periods() -> None:
    data = invoice(
        [
            line("il_1"),
            line("il_2", start=FEB, end=MAR, amount=1999, quantity=1),
            line("il_3", subscription="sub_2", amount=1999, quantity=1),
        ]
    )
    keys = sorted(p.key for p in periods(data))
    assert keys == [
        "default/stripe/sub_1/2026-01-01",
        "default/stripe/sub_1/2026-02-01",
        "default/stripe/sub_2/2026-01-01",
    ]


@pytest.mark.parametrize(
    ("currency", "unit", "quantity", "amount", "price", "total"),
    [
        ("jpy", "1500", 3, 4500, "1500", "4500"),
        ("kwd", "12340", 2, 24680, "12.340", "24.680"),
        ("usd", "1999", 1, 1999, "19.99", "19.99"),
        ("usd", "0.5", 1000, 500, "0.005", "5.000"),
    ],
)
def test_amounts_are_exact_in_each_currency(
    currency: str, unit: str, quantity: int, amount: int, price: str, total: str
) -> None:
    data = invoice([line(currency=currency, unit=unit, quantity=quantity, amount=amount)], currency=currency)
    [period] = periods(data)
    [billing_line] = period.lines
    assert period.currency == currency.upper()
    assert billing_line.unit_price.amount == Decimal(price) and str(billing_line.unit_price.amount) == price
    assert billing_line.amount.amount == Decimal(total)


def test_a_proration_bills_the_amount_stripe_charged_not_the_full_unit_price() -> None:
    credit = line("il_p", amount=-1000, unit="1999", quantity=2, proration=True)
    odd = line("il_q", amount=1000, unit="1999", quantity=3, price="price_2", product="prod_2")
    [period] = periods(invoice([credit, odd]))
    by_sku = {billing_line.sku: billing_line for billing_line in period.lines}
    assert by_sku["prod_1"].quantity == 2 and by_sku["prod_1"].unit_price.amount == Decimal("-5.00")
    assert by_sku["prod_2"].quantity == 1 and by_sku["prod_2"].unit_price.amount == Decimal("10.00")


def test_a_line_that_bills_nothing_is_left_out() -> None:
    empty = line("il_0", amount=0, quantity=0, price="price_m", product="prod_metered")
    [period] = periods(invoice([line(), empty]))
    assert [billing_line.sku for billing_line in period.lines] == ["prod_1"]


def test_po_number_from_the_custom_field_by_name_case_insensitively() -> None:
    fields = [{"name": "Cost centre", "value": "CC-9"}, {"name": "po number", "value": " PO-123 "}]
    [period] = periods(invoice([line()], custom_fields=fields))
    assert period.po_number == "PO-123"
    [period] = periods(invoice([line()], custom_fields=fields), po_custom_field="Purchase order")
    assert period.po_number is None


def test_po_number_from_invoice_metadata_then_subscription_metadata() -> None:
    [period] = periods(invoice([line()], metadata={"po_number": "PO-INV"}), po_number_source="metadata")
    assert period.po_number == "PO-INV"
    parent = {
        "type": "subscription_details",
        "subscription_details": {"subscription": "sub_1", "metadata": {"po_number": "PO-SUB"}},
    }
    [period] = periods(invoice([line()], parent=parent), po_number_source="metadata")
    assert period.po_number == "PO-SUB"
    [period] = periods(
        invoice([line()], custom_fields=[{"name": "PO Number", "value": "X"}]), po_number_source="metadata"
    )
    assert period.po_number is None


def test_customer_ref_from_customer_metadata_needs_the_expanded_customer() -> None:
    customer = {"id": "cus_1", "object": "customer", "name": "Acme", "metadata": {"erp_id": "ERP-7"}}
    [period] = periods(invoice([line()], customer=customer), customer_metadata_key="erp_id")
    assert period.customer_ref == "ERP-7"
    with pytest.raises(StripeMappingError) as missing:
        periods(invoice([line()], customer=dict(customer, metadata={})), customer_metadata_key="erp_id")
    assert missing.value.field == "customer.metadata.erp_id"
    with pytest.raises(StripeMappingError, match="not expanded"):
        periods(invoice([line()]), customer_metadata_key="erp_id")


def test_sku_from_the_price_lookup_key() -> None:
    prices = {"price_1": {"id": "price_1", "lookup_key": "plan-pro"}}
    data = invoice([line()])
    [period] = map_invoice(data, source="s", options=MappingOptions(sku_source="lookup_key"), prices=prices)
    assert period.lines[0].sku == "plan-pro"
    expanded = invoice([line(price={"id": "price_1", "lookup_key": "plan-x"})])
    [period] = map_invoice(expanded, source="s", options=MappingOptions(sku_source="lookup_key"))
    assert period.lines[0].sku == "plan-x"
    with pytest.raises(StripeMappingError) as error:
        map_invoice(
            data,
            source="s",
            options=MappingOptions(sku_source="lookup_key"),
            prices={"price_1": {"id": "price_1", "lookup_key": None}},
        )
    assert error.value.line_id == "il_1" and error.value.field == "pricing.price_details.price.lookup_key"
    assert error.value.value == "price_1"


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"period": {"start": JAN, "end": "soon"}}, "period.end", "soon"),
        ({"quantity": -1}, "quantity", "-1"),
        ({"currency": "eur"}, "currency", "eur"),
        (
            {
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": "p", "product": "x"},
                    "unit_amount_decimal": "12,5",
                }
            },
            "pricing.unit_amount_decimal",
            "12,5",
        ),
    ],
)
def test_a_bad_line_names_the_line_the_field_and_the_value(
    change: dict[str, Any], field: str, value: str
) -> None:
    bad = dict(line("il_bad"), **change)
    with pytest.raises(StripeMappingError) as error:
        periods(invoice([line(), bad]))
    assert (error.value.line_id, error.value.field, error.value.value) == ("il_bad", field, value)


def test_an_unknown_currency_is_refused() -> None:
    with pytest.raises(StripeMappingError) as error:
        periods(invoice([line(currency="zzz")], currency="zzz"))
    assert (error.value.field, error.value.value) == ("currency", "zzz")


def test_invoice_date_prefers_effective_at_and_status_can_be_overridden() -> None:
    data = invoice([line()], effective_at=ts(2026, 1, 3, 23, 59))
    [period] = map_invoice(data, source="s", options=MappingOptions(), status="upcoming")
    assert period.invoice_date == date(2026, 1, 3) and period.status == "upcoming"


def test_a_one_off_invoice_item_without_subscription_is_grouped_under_the_invoice() -> None:
    item = line(subscription=None)
    item["parent"] = {"type": "invoice_item_details", "invoice_item_details": {"subscription": None}}
    [period] = periods(invoice([item], parent=None))
    assert period.subscription_id == "in_1"


@pytest.mark.parametrize("end", [2**70, 10**5000, 253402300800], ids=["2^70", "5001-digits", "year-10000"])
def test_a_period_end_past_the_last_date_is_a_mapping_error_naming_the_field(end: int) -> None:
    with pytest.raises(StripeMappingError) as refused:
        periods(invoice([line(end=end)]))
    assert refused.value.field == "period.end" and refused.value.line_id == "il_1"
    assert "last representable date" in refused.value.reason


def test_an_invoice_created_past_the_last_date_is_a_mapping_error() -> None:
    with pytest.raises(StripeMappingError) as refused:
        periods(invoice([line()], created=2**62))
    assert refused.value.field == "created"


# -- tax -----------------------------------------------------------------------------------

VAT_DE = {"id": "txr_de", "object": "tax_rate", "percentage": 19.0, "country": "DE", "state": None,
          "tax_type": "vat", "inclusive": False}  # fmt: skip
VAT_ZERO = dict(VAT_DE, id="txr_zero", percentage=0.0)
NY_STATE = {"id": "txr_ny", "object": "tax_rate", "percentage": 4.0, "country": "US", "state": "NY",
            "tax_type": "sales_tax", "inclusive": False}  # fmt: skip
NY_CITY = dict(NY_STATE, id="txr_nyc", percentage=4.875)
RATES = TaxRates(found={rate["id"]: rate for rate in (VAT_DE, VAT_ZERO, NY_STATE, NY_CITY)})


def tax(
    amount: int,
    rate: Any = "txr_de",
    *,
    reason: str | None = "standard_rated",
    behavior: str = "exclusive",
    taxable: int | None = None,
) -> dict[str, Any]:
    return {
        "amount": amount,
        "taxable_amount": taxable,
        "tax_behavior": behavior,
        "type": "tax_rate_details",
        "tax_rate_details": {"tax_rate": rate},
        "taxability_reason": reason,
    }


def taxed(*entries: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return dict(line(amount=10000, unit="5000", quantity=2), taxes=list(entries), **changes)


def tax_of(item: dict[str, Any], rates: TaxRates = RATES, **extra: Any) -> Any:
    [period] = map_invoice(
        invoice([item], **extra), source="stripe", options=MappingOptions(), tax_rates=rates
    )
    [billing_line] = period.lines
    return billing_line


def test_standard_rated_exclusive_vat_is_s_at_the_tax_rates_percentage() -> None:
    billing_line = tax_of(taxed(tax(1900, taxable=10000), currency="eur"), currency="eur")
    assert billing_line.tax == LineTax(
        scheme=TaxScheme.VAT, category=TaxCategory.STANDARD, rate=Decimal("19.0"),
        amount=Decimal("19.00"), origin="billing",
    )  # fmt: skip
    assert billing_line.amount.amount == Decimal("100.00") and billing_line.line_amount is None


def test_an_inclusive_price_is_converted_to_net() -> None:
    billing_line = tax_of(taxed(tax(1597, behavior="inclusive", taxable=8403)))
    assert billing_line.tax is not None and billing_line.tax.amount == Decimal("15.97")
    assert billing_line.amount.amount == Decimal("84.03")
    assert billing_line.unit_price.amount == Decimal("42.015") and billing_line.quantity == 2


def test_sales_tax_of_state_and_city_adds_up_in_the_states_jurisdiction() -> None:
    billing_line = tax_of(taxed(tax(400, "txr_ny"), tax(488, "txr_nyc")))
    assert billing_line.tax.scheme is TaxScheme.SALES_TAX and billing_line.tax.jurisdiction == "US-NY"
    assert billing_line.tax.rate == Decimal("8.875") and billing_line.tax.amount == Decimal("8.88")


def test_an_expanded_tax_rate_needs_no_lookup() -> None:
    billing_line = tax_of(taxed(tax(400, dict(NY_STATE, percentage=Decimal("4")))), rates=TaxRates())
    assert billing_line.tax.rate == Decimal(4) and billing_line.tax.jurisdiction == "US-NY"


@pytest.mark.parametrize(
    ("reason", "category", "code", "text"),
    [
        ("zero_rated", TaxCategory.ZERO_RATED, "", ""),
        ("reverse_charge", TaxCategory.REVERSE_CHARGE, "VATEX-EU-AE", "Reverse charge"),
        ("product_exempt", TaxCategory.EXEMPT, "", "Exempt product"),
        ("customer_exempt", TaxCategory.EXEMPT, "", "Exempt customer"),
        ("not_subject_to_tax", TaxCategory.OUTSIDE_SCOPE, "", "Not subject to tax"),
        ("not_collecting", TaxCategory.OUTSIDE_SCOPE, "", "Not collecting tax (seller not registered)"),
    ],
)
def test_each_zero_tax_reason_maps_to_its_category(
    reason: str, category: TaxCategory, code: str, text: str
) -> None:
    line_tax = tax_of(taxed(tax(0, "txr_zero", reason=reason))).tax
    assert (line_tax.category, line_tax.exemption_reason_code, line_tax.exemption_reason) == (
        category,
        code,
        text,
    )
    assert line_tax.amount == 0 and line_tax.rate == (None if category is TaxCategory.OUTSIDE_SCOPE else 0)


@pytest.mark.parametrize("reason", ["standard_rated", "reduced_rated"])
def test_standard_and_reduced_rated_take_the_rate(reason: str) -> None:
    line_tax = tax_of(taxed(tax(700, dict(VAT_DE, percentage=7), reason=reason))).tax
    assert (line_tax.category, line_tax.rate) == (TaxCategory.STANDARD, Decimal(7))


def test_the_mapping_of_reasons_is_configurable() -> None:
    item = taxed(tax(0, "txr_zero", reason="not_collecting"))
    options = MappingOptions(tax_reasons={**DEFAULT_TAX_REASONS, "not_collecting": "E"})
    [period] = map_invoice(invoice([item]), source="s", options=options, tax_rates=RATES)
    assert period.lines[0].tax.category is TaxCategory.EXEMPT


def test_jpy_tax_has_no_minor_unit() -> None:
    item = dict(
        line(amount=4500, unit="1500", quantity=3, currency="jpy"),
        taxes=[tax(450, dict(VAT_DE, percentage=10, country="JP", tax_type="jct"))],
    )
    billing_line = tax_of(item, currency="jpy")
    assert billing_line.tax.amount == Decimal(450) and billing_line.amount.amount == Decimal(4500)
    assert billing_line.tax.scheme is TaxScheme.VAT and billing_line.tax.rate == Decimal(10)


def test_a_reverse_charge_customer_makes_untaxed_lines_ae() -> None:
    for item in (line(), taxed(tax(0, "txr_zero", reason=None))):
        line_tax = tax_of(item, customer_tax_exempt="reverse").tax
        assert (
            line_tax.category is TaxCategory.REVERSE_CHARGE
            and line_tax.exemption_reason_code == "VATEX-EU-AE"
        )
    with pytest.raises(StripeMappingError) as refused:
        tax_of(taxed(tax(1900)), customer_tax_exempt="reverse")
    assert (refused.value.field, refused.value.line_id) == ("customer_tax_exempt", "il_1")


def test_an_exempt_customer_makes_untaxed_lines_e() -> None:
    assert tax_of(line(), customer_tax_exempt="exempt").tax.category is TaxCategory.EXEMPT


def test_a_line_without_taxes_carries_no_billing_tax() -> None:
    assert tax_of(line()).tax is None
    assert tax_of(dict(line(), taxes=[]), automatic_tax={"enabled": False}).tax is None


def test_a_credit_line_carries_its_negative_tax() -> None:
    credit = dict(line(amount=-1000, quantity=1, unit="1999", proration=True), taxes=[tax(-190)])
    assert tax_of(credit).tax.amount == Decimal("-1.90")


@pytest.mark.parametrize(
    ("entries", "field", "value"),
    [
        ([tax(-5)], "taxes[0].amount", "-5"),
        ([tax(10001)], "taxes[0].amount", "10001"),
        ([tax(6000), tax(6000)], "taxes", "12000"),
        ([tax(1900, reason="made_up")], "taxes[0].taxability_reason", "made_up"),
        ([tax(1900, reason="not_available")], "taxes[0].taxability_reason", "not_available"),
        ([tax(1900, dict(VAT_DE, percentage=150))], "taxes[0].tax_rate_details.tax_rate.percentage", "150"),
        ([tax(1900, dict(VAT_DE, percentage=-1))], "taxes[0].tax_rate_details.tax_rate.percentage", "-1"),
        ([tax(1900, "txr_gone")], "taxes[0].tax_rate_details.tax_rate", "txr_gone"),
        ([tax(1900, behavior="sometimes")], "taxes[0].tax_behavior", "sometimes"),
        ([tax(0, "txr_zero", reason=None)], "taxes[0].taxability_reason", ""),
        ([tax(190, "txr_zero", reason="zero_rated")], "taxes[0].amount", "190"),
        ([tax(1900), tax(700, dict(VAT_DE, id="txr_7", percentage=7))],
         "taxes[1].tax_rate_details.tax_rate", "7%"),
        ([tax(400, dict(NY_STATE, state=None))], "taxes[0].tax_rate_details.tax_rate.state", ""),
        ([tax(400, dict(VAT_DE, percentage=0.0), reason="standard_rated")],
         "taxes[0].tax_rate_details.tax_rate.percentage", "0.0"),
    ],
)  # fmt: skip
def test_a_bad_tax_value_names_the_line_and_the_field(
    entries: list[dict[str, Any]], field: str, value: str
) -> None:
    with pytest.raises(StripeMappingError) as refused:
        tax_of(taxed(*entries, id="il_tax"))
    assert (refused.value.line_id, refused.value.field, refused.value.value) == ("il_tax", field, value)


def test_an_unreadable_tax_rate_is_named_with_why() -> None:
    rates = TaxRates(unreadable={"txr_de": "Stripe 404 resource_missing: No such tax rate: 'txr_de'"})
    with pytest.raises(StripeMappingError, match="No such tax rate") as refused:
        tax_of(taxed(tax(1900)), rates=rates)
    assert (refused.value.field, refused.value.value) == ("taxes[0].tax_rate_details.tax_rate", "txr_de")


def test_total_taxes_must_be_the_lines_taxes_and_customer_tax_exempt_one_of_three() -> None:
    assert tax_of(taxed(tax(1900)), total_taxes=[tax(1900)]).tax is not None
    with pytest.raises(StripeMappingError) as refused:
        tax_of(taxed(tax(1900)), total_taxes=[tax(1800)])
    assert refused.value.field == "total_taxes"
    with pytest.raises(StripeMappingError) as refused:
        tax_of(line(), customer_tax_exempt="sometimes")
    assert refused.value.field == "customer_tax_exempt"


def test_tax_rate_ids_are_listed_once() -> None:
    lines = [taxed(tax(400, "txr_ny"), tax(488, "txr_nyc")), taxed(tax(400, "txr_ny")), taxed(tax(1, VAT_DE))]
    assert tax_rate_ids(lines) == ["txr_ny", "txr_nyc"]
    assert tax_rate_ids("nonsense") == [] and tax_rate_ids([{"taxes": "x"}, 3]) == []
