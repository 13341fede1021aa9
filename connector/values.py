"""Values as adapters read and write them at the edges, in one place for every adapter.

- Config: an http(s) URL (`http_url`), and the key of a table from our tax treatments to a
  system's codes (`tax_table_key`).
- Read: an exact, finite decimal (`finite_decimal`) and an amount a remote system answered
  (`answer_money`); neither ever goes through a float.
- Written: amounts, unit prices and rates as invoice documents state them (UBL, cXML, NetSuite).

Readers raise ValueError with a short reason (or give None, for answers); the caller names the
field, the line or the config key the value came from.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from connector.currency import minor_unit
from connector.model import Money
from connector.tax import TaxCodeMap


def http_url(value: str, *, example: str = "", keep_trailing_slash: bool = False) -> str:
    """A configured http(s) URL with a host, without surrounding space or trailing slashes.

    `example` shows a good value in the error; `keep_trailing_slash` keeps the URL's path as
    written (an endpoint a document is posted to, rather than a base other paths are joined to).
    """
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        such = f" such as {example}" if example else ""
        raise ValueError(f"must be an http(s) URL{such}, got {value!r}")
    return url if keep_trailing_slash else url.rstrip("/")


def tax_table_key(table: str, key: str, value: object) -> str:
    """A key of the config table `table` (our tax treatment -> a system's code), canonical.

    "s:19.00" gives "S:19"; a key that is no treatment raises ValueError naming the entry
    (`table[key] = value: why`).
    """
    try:
        return TaxCodeMap.normalise_key(key)
    except ValueError as exc:
        raise ValueError(f"{table}[{key!r}] = {value!r}: {exc}") from None


def finite_decimal(value: str | int | Decimal) -> Decimal:
    """The exact Decimal of a decimal string (space around it allowed), an int or a Decimal.

    Raises ValueError "is not a decimal number", "is not a finite number" for NaN and
    infinities, or "is out of range" from 10**21 up (no amount or quantity is that large, and
    an exponent like 1E999997 would overflow the arithmetic done with it). Which other types a
    field may hold (never a float) is the caller's to check.
    """
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError, OverflowError):
        raise ValueError("is not a decimal number") from None
    if not number.is_finite():
        raise ValueError("is not a finite number")
    if number and number.adjusted() > MAX_DECIMAL_DIGITS:
        raise ValueError("is out of range")
    return number


# The largest decimal exponent an input number may have (10**21 and up is refused).
MAX_DECIMAL_DIGITS = 20


def answer_money(raw: Any, currency: str) -> Money | None:
    """An amount a remote system answered, as exact Money in `currency`.

    None when the amount is absent or unreadable, when it is a bool, or when it is a float
    (an answer parsed without exact decimals: its digits are already lost).
    """
    if raw is None or isinstance(raw, float | bool):
        return None
    try:
        return Money(amount=Decimal(str(raw)), currency=currency)
    except (InvalidOperation, ValueError):
        return None


def format_amount(money: Money) -> str:
    """A final amount with exactly the currency's minor-unit digits (JPY 0, USD 2, KWD 3)."""
    quantum = minor_unit(money.currency)
    return f"{money.amount.quantize(quantum, ROUND_HALF_UP):f}"


def format_price(money: Money) -> str:
    """A unit price: at least the currency's digits, more when the price has them (never rounded)."""
    quantum = minor_unit(money.currency)
    quantized = money.amount.quantize(quantum, ROUND_HALF_UP)
    if quantized == money.amount:
        return f"{quantized:f}"
    return f"{money.amount.normalize():f}"


def format_percent(rate: Decimal) -> str:
    """A rate as the rules compare it: 19 for 19.00, 8.875 as is."""
    return f"{rate.normalize():f}" if rate else "0"
