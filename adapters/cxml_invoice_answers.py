"""Reading cXML invoicing back: the Status of the buyer's Response (and whether it says our
invoice number is already used), and what an archived InvoiceDetailRequest (an invoice or a
credit memo) states."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from lxml import etree

from adapters.safe_xml import parse_xml
from connector.errors import InputError
from connector.model import Money
from connector.values import answer_money

# Coupa: "invoice number has already been used for this supplier". The phrase must be about the
# invoice number itself (adjacent words); a number named in it must be ours (checked by the sink).
_ALREADY_USED = re.compile(
    r"\binvoice\s+(?:number|id)(?:\s+(?!has\b|is\b|already\b)(?P<number>[^\s,;:]+))?"
    r"\s+(?:has\s+already\s+been|is\s+already|already)\s+(?:used|submitted|taken|exists?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CxmlStatus:
    """The `Status` of a cXML Response: code, text and the element's own content."""

    code: int
    text: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.code} {self.text}" + (f": {self.detail}" if self.detail else "")


def read_status(body: bytes, *, document: str = "buyer response") -> CxmlStatus | None:
    """The Status of a cXML Response, or None when the body is not one."""
    try:
        root = parse_xml(body, source="cxml-invoice", document=document)
    except InputError:
        return None
    status = root.find("Response/Status")
    if status is None:
        return None
    try:
        code = int(status.get("code", ""))
    except ValueError:
        return None
    return CxmlStatus(
        code=code, text=status.get("text", ""), detail=" ".join("".join(status.itertext()).split())
    )


def is_already_used(status: CxmlStatus) -> bool:
    """True when the buyer refuses the invoice number because it already holds it."""
    return 400 <= status.code < 500 and _ALREADY_USED.search(f"{status.text} {status.detail}") is not None


def named_number(status: CxmlStatus) -> str | None:
    """The invoice number an "already used" answer names, if it names one."""
    found = _ALREADY_USED.search(f"{status.text} {status.detail}")
    return found.group("number") if found else None


class ArchivedInvoice(NamedTuple):
    """What an archived InvoiceDetailRequest says: its payloadID, DueAmount (gross) and tax,
    positive for a credit memo too (whose document signs them negative)."""

    payload_id: str
    total: Money | None
    tax: Money | None


_CREDITS = frozenset({"creditMemo", "lineLevelCreditMemo"})


def _summary_money(root: etree._Element, path: str, *, credit: bool) -> Money | None:
    money = root.find(f"Request/InvoiceDetailRequest/InvoiceDetailSummary/{path}")
    if money is None:
        return None
    amount = answer_money((money.text or "").strip(), money.get("currency", ""))
    if amount is None or not credit:
        return amount
    return Money(amount=-amount.amount, currency=amount.currency)


def read_archived(data: bytes, *, document: str) -> ArchivedInvoice:
    """The payloadID, DueAmount and summary Tax of an archived InvoiceDetailRequest."""
    root = parse_xml(data, source="cxml-invoice", document=document)
    head = root.find("Request/InvoiceDetailRequest/InvoiceDetailRequestHeader")
    credit = head is not None and head.get("purpose") in _CREDITS
    return ArchivedInvoice(
        root.get("payloadID", ""),
        _summary_money(root, "DueAmount/Money", credit=credit),
        _summary_money(root, "Tax/Money", credit=credit),
    )
