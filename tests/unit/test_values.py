"""The shared value readers and writers of connector.values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.model import Money
from connector.values import (
    answer_money,
    finite_decimal,
    format_amount,
    format_percent,
    format_price,
    http_url,
    tax_table_key,
)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("19.995", "EUR", "20.00"),
        ("1000", "JPY", "1000"),
        ("20.25", "KWD", "20.250"),
        ("-0.005", "USD", "-0.01"),
    ],
)
def test_an_amount_has_exactly_the_currency_digits(amount: str, currency: str, text: str) -> None:
    assert format_amount(Money.of(amount, currency)) == text


def test_a_price_keeps_digits_beyond_the_currency_and_is_never_rounded() -> None:
    assert format_price(Money.of("12.5", "EUR")) == "12.50"
    assert format_price(Money.of("0.12345", "EUR")) == "0.12345"
    assert format_price(Money.of("7", "JPY")) == "7"


def test_a_rate_is_written_as_the_rules_compare_it() -> None:
    assert format_percent(Decimal("19.00")) == "19"
    assert format_percent(Decimal("8.875")) == "8.875"
    assert format_percent(Decimal("0.00")) == "0"


def test_an_http_url_loses_surrounding_space_and_trailing_slashes() -> None:
    assert http_url(" https://acme.example.test/api// ") == "https://acme.example.test/api"
    assert http_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_an_endpoint_url_can_keep_its_trailing_slash() -> None:
    url = "https://buyer.example.test/cxml/invoices/"
    assert http_url(url, keep_trailing_slash=True) == url


@pytest.mark.parametrize(
    "value", ["ftp://acme.example.test", "acme.example.test", "https://", "http://:80/x", ""]
)
def test_anything_but_an_http_url_with_a_host_is_refused_with_an_example(value: str) -> None:
    with pytest.raises(ValueError, match=r"must be an http\(s\) URL such as https://x\.test, got "):
        http_url(value, example="https://x.test")


def test_without_an_example_the_refusal_names_the_value_only() -> None:
    with pytest.raises(ValueError, match=r"^must be an http\(s\) URL, got 'mailto:a@b.test'$"):
        http_url("mailto:a@b.test")


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (" 12.50 ", Decimal("12.50")),
        ("-0.001", Decimal("-0.001")),
        (7, Decimal(7)),
        (Decimal("1E+3"), Decimal("1E+3")),
        ("999999999999999999999.99", Decimal("999999999999999999999.99")),
        ("1E-999999", Decimal("1E-999999")),
    ],
)
def test_a_finite_decimal_is_exactly_what_was_written(value: str | int | Decimal, number: Decimal) -> None:
    parsed = finite_decimal(value)
    assert parsed == number and str(parsed) == str(number)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12,50", "is not a decimal number"),
        ("", "is not a decimal number"),
        ("NaN", "is not a finite number"),
        ("-Infinity", "is not a finite number"),
        (Decimal("sNaN"), "is not a finite number"),
        ("1E999997", "is out of range"),
        ("-1000000000000000000000", "is out of range"),
    ],
)
def test_what_is_no_finite_decimal_is_refused_with_the_reason(value: str | Decimal, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{reason}$"):
        finite_decimal(value)


def test_an_answered_amount_is_exact_money() -> None:
    assert answer_money(Decimal("120.10"), "EUR") == Money.of("120.10", "EUR")
    assert answer_money("99.995", "USD") == Money.of("99.995", "USD")
    assert answer_money(42, "JPY") == Money.of("42", "JPY")


@pytest.mark.parametrize("raw", [None, 12.5, True, "", "twelve", {"value": "1"}])
def test_an_answered_amount_that_is_absent_a_float_or_no_number_is_none(raw: object) -> None:
    assert answer_money(raw, "EUR") is None


def test_an_answered_amount_in_an_unknown_currency_is_none() -> None:
    assert answer_money("10", "XYZ") is None


def test_a_tax_table_key_is_made_canonical() -> None:
    assert tax_table_key("tax_codes", " s:19.00 ", "7") == "S:19"
    assert tax_table_key("taxes", "sales_tax:us-ny", "NY") == "SALES_TAX:US-NY"
    assert tax_table_key("tax_types", "AE", "ECZROUTPUTSERVICES") == "AE"


def test_a_tax_table_key_that_is_no_treatment_names_the_entry() -> None:
    with pytest.raises(
        ValueError, match=r"^tax_types\['VAT'\] = 'OUTPUT2': tax code key 'VAT': 'VAT' is not"
    ):
        tax_table_key("tax_types", "VAT", "OUTPUT2")
