"""Building a UBL 2.1 Invoice or CreditNote: their namespaces and the element builders they use."""

from __future__ import annotations

from datetime import date

from lxml import etree

from connector.model import Money
from connector.values import format_amount

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NSMAP = {None: INVOICE_NS, "cac": CAC_NS, "cbc": CBC_NS}
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CREDIT_NOTE_NSMAP = {None: CREDIT_NOTE_NS, "cac": CAC_NS, "cbc": CBC_NS}


def cac(parent: etree._Element, tag: str) -> etree._Element:
    """A new aggregate component `cac:tag` under `parent`."""
    return etree.SubElement(parent, f"{{{CAC_NS}}}{tag}")


def cbc(parent: etree._Element, tag: str, text: str, **attributes: str) -> etree._Element:
    """A new basic component `cbc:tag` under `parent`, holding `text`."""
    element = etree.SubElement(parent, f"{{{CBC_NS}}}{tag}", attributes)
    element.text = text
    return element


def amount(parent: etree._Element, tag: str, money: Money) -> None:
    """A final amount at the currency's minor unit, with its currencyID."""
    cbc(parent, tag, format_amount(money), currencyID=money.currency)


def period(parent: etree._Element, tag: str, start: date | None, end: date | None) -> None:
    """A period with the dates it has."""
    element = cac(parent, tag)
    if start is not None:
        cbc(element, "StartDate", start.isoformat())
    if end is not None:
        cbc(element, "EndDate", end.isoformat())
