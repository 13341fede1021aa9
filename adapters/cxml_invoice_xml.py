"""How the cXML invoice document writes its elements: child elements, `xml:lang` texts, dates,
and amounts, each amount signed the way cXML signs the document it is in (a credit memo's
amounts are negative: "negative amounts are credit given back to the buyer")."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from lxml import etree

from connector.model import Money
from connector.values import format_amount, format_price

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DEBIT = Decimal(1)  # an invoice: amounts the buyer owes
CREDIT = Decimal(-1)  # a credit memo: amounts given back


def sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    """A child element with its attributes and text."""
    element = etree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def lang(parent: etree._Element, tag: str, text: str, language: str) -> etree._Element:
    """A child element whose text is in `language`."""
    element = sub(parent, tag, text)
    element.set(XML_LANG, language)
    return element


def money(parent: etree._Element, tag: str, amount: Money, *, sign: Decimal = DEBIT) -> None:
    """`<tag><Money currency=..>amount</Money></tag>`: a final amount, signed (zero unsigned)."""
    sub(sub(parent, tag), "Money", amount_text(amount, sign), currency=amount.currency)


def amount_text(amount: Money, sign: Decimal = DEBIT) -> str:
    """A final amount's text, signed; a zero is never written "-0.00"."""
    text = format_amount(amount.times(sign))
    return text.lstrip("-") if Decimal(text) == 0 else text


def price(parent: etree._Element, tag: str, amount: Money) -> None:
    """A unit price: never signed (a credit memo credits positive quantities at positive prices)."""
    sub(sub(parent, tag), "Money", format_price(amount), currency=amount.currency)


def datetime_of(day: date) -> str:
    """A date as the cXML datetime of its midnight UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()
