"""Parsers of single cells: exact decimals, dates, payment terms, codes; each raises ValueError."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from connector.currency import is_known_currency
from connector.model import PaymentTerms

_THOUSANDS = {".": ",' \u00a0\u202f", ",": ".' \u00a0\u202f"}
_DIGITS = re.compile(r"[0-9]+")


def parse_decimal(text: str, decimal_separator: Literal[".", ","], *, guessed: bool = False) -> Decimal:
    """A decimal number written with `decimal_separator`, tolerating thousands separators.

    When the separator was only guessed from the file's delimiter (`guessed`), a value such as
    "2,500" or "2.500" (one separator, three digits after it, nothing else) could be either a
    thousand-grouped integer or a decimal, so it is refused rather than guessed.
    """
    value = text.strip()
    reason = f"not a number (decimal separator {decimal_separator!r})"
    sign = ""
    if value[:1] in ("+", "-"):
        sign, value = value[0].replace("+", ""), value[1:].lstrip()
    whole, _, fraction = value.partition(decimal_separator)
    if fraction and not _DIGITS.fullmatch(fraction):
        raise ValueError(reason)
    separators = {char for char in whole if char in _THOUSANDS[decimal_separator]}
    if len(separators) > 1:
        raise ValueError(reason)
    if separators:
        mark = separators.pop()
        groups = whole.split(mark)
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise ValueError(f"{reason}: misplaced thousands separator")
        if groups[0].startswith("0"):
            raise ValueError(f"{reason}: a grouped number cannot start with 0")
        if guessed and len(groups) == 2 and not fraction and mark in ".,":
            raise ValueError(
                f"ambiguous: {text.strip()!r} may be a decimal or a grouped integer; "
                "set decimal_separator in the mapping profile"
            )
        whole = "".join(groups)
    if not (whole or fraction) or (whole and not _DIGITS.fullmatch(whole)):
        raise ValueError(reason)
    return Decimal(f"{sign}{whole or '0'}.{fraction or '0'}") if fraction else Decimal(sign + whole)


def parse_date(text: str, formats: Sequence[str]) -> date:
    """A date in the first of `formats` that fits."""
    value = text.strip()
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date in a known format ({', '.join(formats)})")


_TERMS_DUE = frozenset({"due on receipt", "due upon receipt", "immediate", "sofort", "cod"})
_TERMS_DISCOUNT = re.compile(
    r"(\d{1,2}(?:[.,]\d+)?)\s*%?\s*/\s*(\d{1,3})\s*(?:days?)?\s*,?\s*(?:net|netto)\s*(\d{1,4})"
    r"(?:\s*days?)?"
)
_TERMS_NET = re.compile(r"(?:net|netto|n)\s*(\d{1,4})(?:\s*(?:days?|tagen?|d))?")
_TERMS_DAYS = re.compile(r"(\d{1,4})(?:\s*(?:days?|tagen?|d))?(?:\s*(?:net|netto|rein))?")


def parse_payment_terms(text: str) -> PaymentTerms:
    """Payment terms such as "NET30", "Net 30", "30 days", "45 Tage netto" or "2/10 net 30"."""
    value = " ".join(text.replace("-", " ").replace("_", " ").split()).casefold()
    if value in _TERMS_DUE:
        return PaymentTerms(code="DUE_ON_RECEIPT", net_days=0)
    if match := _TERMS_DISCOUNT.fullmatch(value):
        percent, discount_days, net = match.groups()
        percent_value = Decimal(percent.replace(",", "."))
        return _terms(
            f"{percent_value}/{int(discount_days)} NET{int(net)}",
            int(net),
            discount_percent=percent_value,
            discount_days=int(discount_days),
        )
    if match := _TERMS_NET.fullmatch(value) or _TERMS_DAYS.fullmatch(value):
        days = int(match.group(1))
        return _terms(f"NET{days}", days)
    raise ValueError("not payment terms like NET30, Net 30, 30 days or 2/10 net 30")


def _terms(code: str, days: int, **discount: Any) -> PaymentTerms:
    if days > 3650:
        raise ValueError(f"{days} days is more than ten years")
    return PaymentTerms(code=code, net_days=days, **discount)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def plain_text(value: str) -> str:
    return value


def currency_code(value: str) -> str:
    code = value.upper()
    if not is_known_currency(code):
        raise ValueError("unknown ISO 4217 currency code")
    return code


def positive_int(value: str) -> int:
    if not _DIGITS.fullmatch(value) or int(value) < 1:
        raise ValueError("not a whole number of 1 or more")
    return int(value)


def revision_number(value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise ValueError("not a whole number")
    if len(value) > 9:
        raise ValueError("too large for a revision number")
    return int(value)


def email_address(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("not an e-mail address")
    return value


def country_code(value: str) -> str:
    return value.upper() if len(value) == 2 else value
