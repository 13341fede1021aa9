"""Pure mapping between invoice plans and the Xero Accounting API's JSON.

No I/O here: `invoice_payload` turns a plan into one element of `PUT /Invoices`,
`credit_note_payload` a credit note into one of `PUT /CreditNotes` and `allocation_payload`
sets it against its invoice; `dumps_exact` writes JSON with every Decimal as an exact number
(never through float), and the readers turn Xero's answer elements back into what the sink
reports.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.model import InvoicePlan, Money
from connector.tax import TaxCodeMap, TaxProblem
from connector.tax import line_tax_amounts as shared_line_tax_amounts
from connector.values import answer_money

MAX_INVOICE_NUMBER = 255  # Xero's InvoiceNumber and Reference field length
MAX_DESCRIPTION = 4000
MAX_PLACES = 4  # Xero keeps Quantity and UnitAmount to 4 decimals (with unitdp=4)
UNIQUE_NUMBER_MARKER = "must be unique"  # "Invoice # must be unique.", "Credit Note # must be unique."
CREDIT_NOTE_TYPE = "ACCRECCREDIT"  # a sales credit note (ACCPAYCREDIT is a supplier's)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class PayloadProblem(ValueError):
    """A plan that cannot be expressed as a Xero invoice; the message names the field.

    `code` is the problem's reason code when it has one (``tax_code_unmapped``).
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InvoiceMapping:
    """The sink's configuration that shapes every invoice it sends."""

    contact_ids: Mapping[str, str] = field(default_factory=dict)
    account_code: str = "200"
    item_codes: Mapping[str, str] = field(default_factory=dict)
    status: str = "AUTHORISED"
    line_amount_types: str = "Exclusive"
    tax_types: TaxCodeMap = field(default_factory=TaxCodeMap)


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise PayloadProblem(f"amount {value} is not a finite number")
    return format(value, "f")


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def dumps_exact(value: Any) -> str:
    """JSON text in which Decimals are written digit for digit as JSON numbers."""
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(key))}:{dumps_exact(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_exact(item) for item in value) + "]"
    return json.dumps(value)


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON keeping every fractional number as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def contact_of(plan: InvoicePlan, mapping: InvoiceMapping) -> dict[str, str]:
    """The Contact element: a mapped ContactID, else our customer ref as the ContactNumber."""
    contact_id = mapping.contact_ids.get(plan.customer_ref)
    if contact_id:
        return {"ContactID": contact_id}
    return {"ContactNumber": plan.customer_ref}


def _check_number(field_name: str, number: str) -> None:
    if not number or len(number) > MAX_INVOICE_NUMBER:
        raise PayloadProblem(f"{field_name} {number!r} must be 1 to {MAX_INVOICE_NUMBER} characters")


def invoice_payload(plan: InvoicePlan, mapping: InvoiceMapping) -> dict[str, Any]:
    """One ACCREC invoice element for `PUT /Invoices`; raises PayloadProblem when impossible."""
    number = plan.invoice_number
    _check_number("InvoiceNumber", number)
    if "," in number:
        # GET /Invoices?InvoiceNumbers= is a comma list, so such a number could never be found.
        raise PayloadProblem(f"InvoiceNumber {number!r} contains a comma")
    if len(plan.po_number) > MAX_INVOICE_NUMBER:
        raise PayloadProblem(f"Reference (PO number) {plan.po_number!r} is longer than {MAX_INVOICE_NUMBER}")
    return {
        "Type": "ACCREC",
        "InvoiceNumber": number,
        "Reference": plan.po_number,
        "Contact": contact_of(plan, mapping),
        "Date": plan.issue_date.isoformat(),
        "DueDate": plan.due_date.isoformat(),
        "CurrencyCode": plan.currency,
        "Status": mapping.status,
        # Plan amounts are net: a taxed plan's lines are tax exclusive whatever the default.
        "LineAmountTypes": "Exclusive" if plan.is_taxed else mapping.line_amount_types,
        "LineItems": _line_items(plan, mapping),
    }


def credit_note_payload(plan: InvoicePlan, mapping: InvoiceMapping) -> dict[str, Any]:
    """One ACCRECCREDIT element for `PUT /CreditNotes`: the credited invoice's lines and tax.

    Amounts stay positive (the type makes it a credit). It is AUTHORISED whatever status
    invoices are sent in, as only an authorised credit note can be allocated; `Reference`
    names the credited invoice (and the PO), the allocation links it.
    """
    if plan.credits is None:
        raise PayloadProblem(f"CreditNoteNumber {plan.invoice_number!r} is not a credit note")
    number = plan.invoice_number
    _check_number("CreditNoteNumber", number)
    if '"' in number:
        raise PayloadProblem(f"CreditNoteNumber {number!r} contains a double quote")  # see the where filter
    credited = plan.credits.invoice_number
    reference = f"{credited} PO {plan.po_number}" if plan.po_number else credited
    return {
        "Type": CREDIT_NOTE_TYPE,
        "CreditNoteNumber": number,
        "Reference": reference[:MAX_INVOICE_NUMBER],
        "Contact": contact_of(plan, mapping),
        "Date": plan.issue_date.isoformat(),
        "CurrencyCode": plan.currency,
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive" if plan.is_taxed else mapping.line_amount_types,
        "LineItems": _line_items(plan, mapping),
    }


def allocation_payload(amount: Decimal, invoice_id: str, day: date) -> dict[str, Any]:
    """The body of `PUT /CreditNotes/{CreditNoteID}/Allocations`: `amount` set against one invoice."""
    return {
        "Allocations": [{"Amount": amount, "Invoice": {"InvoiceID": invoice_id}, "Date": day.isoformat()}]
    }


def credit_note_where(numbers: Sequence[str]) -> str:
    """The `where` filter of `GET /CreditNotes` for these numbers (the endpoint has no optimised
    number filter as `InvoiceNumbers` is for invoices)."""
    if not numbers:
        raise ValueError("no credit note numbers to look up")
    listed = " OR ".join(f'CreditNoteNumber=="{number}"' for number in numbers)
    return f'Type=="{CREDIT_NOTE_TYPE}" AND ({listed})'


def _line_items(plan: InvoicePlan, mapping: InvoiceMapping) -> list[dict[str, Any]]:
    lines = []
    taxes = line_tax_amounts(plan) if plan.is_taxed else {}
    for line in plan.lines:
        description = (line.description or line.sku).strip()
        if not description:
            raise PayloadProblem(f"line {line.line_no}: Description is empty and there is no SKU")
        if line.quantity <= 0:
            raise PayloadProblem(f"line {line.line_no}: Quantity {line.quantity} must be positive")
        for name, value in (("Quantity", line.quantity), ("UnitAmount", line.unit_price.amount)):
            if _places(value) > MAX_PLACES:
                # Xero would round it and then find the line total wrong.
                raise PayloadProblem(
                    f"line {line.line_no}: {name} {value} has more than {MAX_PLACES} decimals"
                )
        element: dict[str, Any] = {
            "Description": description[:MAX_DESCRIPTION],
            "Quantity": line.quantity,
            "UnitAmount": line.unit_price.amount,
            "AccountCode": mapping.account_code,
            "LineAmount": line.amount.amount,
        }
        item_code = mapping.item_codes.get(line.sku)
        if item_code:
            element["ItemCode"] = item_code
        if line.tax is not None:
            try:
                element["TaxType"] = mapping.tax_types.code_for(line.tax)
            except TaxProblem as exc:
                raise PayloadProblem(f"line {line.line_no}: {exc.detail}", code=exc.code) from None
            element["TaxAmount"] = taxes[line.line_no]
        lines.append(element)
    return lines


def line_tax_amounts(plan: InvoicePlan) -> dict[int, Decimal]:
    """Each line's TaxAmount, by line number, so that Xero's TotalTax is the plan's.

    Stated line amounts, else net x rate rounded per line (what Xero would do), with each
    group's rounding remainder on its largest line (`connector.tax.line_tax_amounts`).
    """
    return shared_line_tax_amounts(
        ((line.line_no, line.amount.amount, line.tax) for line in plan.lines if line.tax is not None),
        plan.tax_breakdown,
        plan.currency,
    )


def request_key(idempotency_keys: Sequence[str], body: str) -> str:
    """The Idempotency-Key of one call: the same batch sent again gets the same key.

    The body is part of it because Xero answers 400 to a key reused with a different request;
    a plan whose content changed before it was ever created is a new request, not a retry.
    """
    digest = hashlib.sha256()
    for key in idempotency_keys:
        digest.update(key.encode("utf-8") + b"\n")
    digest.update(body.encode("utf-8"))
    return f"po-connector-{digest.hexdigest()}"


def parse_xero_date(value: str) -> datetime:
    """A Xero date: `/Date(1518685950940+0000)/` (ms since the epoch) or an ISO 8601 text."""
    match = _MS_DATE.match(value.strip())
    if match:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def element_date(element: Mapping[str, Any]) -> date | None:
    """The invoice date of an answer element, from `DateString` or `Date`, if readable."""
    for key in ("DateString", "Date"):
        raw = element.get(key)
        if isinstance(raw, str) and raw:
            try:
                return parse_xero_date(raw).date()
            except ValueError:
                continue
    return None


def element_total(element: Mapping[str, Any]) -> Money | None:
    """The Total Xero computed for an invoice element, as exact Money, if present."""
    total = element.get("Total")
    currency = element.get("CurrencyCode")
    return answer_money(total, currency) if isinstance(currency, str) else None


def element_tax(element: Mapping[str, Any]) -> Money | None:
    """The TotalTax Xero computed for an invoice element, as exact Money, if present."""
    tax = element.get("TotalTax")
    currency = element.get("CurrencyCode")
    return answer_money(tax, currency) if isinstance(currency, str) else None


def remaining_credit(element: Mapping[str, Any]) -> Money | None:
    """What is left to allocate of a credit note element (`RemainingCredit`), if present."""
    left = element.get("RemainingCredit")
    currency = element.get("CurrencyCode")
    return answer_money(left, currency) if isinstance(currency, str) else None


def allocated_to(element: Mapping[str, Any], invoice_id: str, invoice_number: str) -> bool:
    """True when a credit note element carries an allocation to this invoice (by id or number)."""
    allocations = element.get("Allocations")
    for allocation in allocations if isinstance(allocations, list) else []:
        invoice = allocation.get("Invoice") if isinstance(allocation, Mapping) else None
        if not isinstance(invoice, Mapping) or is_error_element(allocation):
            continue
        if invoice_id and invoice.get("InvoiceID") == invoice_id:
            return True
        number = str(invoice.get("InvoiceNumber") or "")
        if number and number.casefold() == invoice_number.casefold():
            return True
    return False


def _own_messages(element: Any) -> list[str]:
    errors = element.get("ValidationErrors") if isinstance(element, Mapping) else None
    if not isinstance(errors, list):
        return []
    return [str(e["Message"]) for e in errors if isinstance(e, Mapping) and e.get("Message")]


def validation_messages(element: Mapping[str, Any]) -> list[str]:
    """The `ValidationErrors[].Message` texts of an answer element and of its parts.

    Xero often files a contact's or a line's problem under that part (e.g. an unknown
    ContactNumber gives `Contact.ValidationErrors` "Contact Name cannot be empty.").
    """
    messages = _own_messages(element) + _own_messages(element.get("Contact"))
    lines = element.get("LineItems")
    for line in lines if isinstance(lines, list) else []:
        messages += _own_messages(line)
    return messages


def is_error_element(element: Mapping[str, Any]) -> bool:
    """True when Xero marked this element failed (`StatusAttributeString` ERROR or HasErrors)."""
    status = str(element.get("StatusAttributeString", "")).upper()
    return status == "ERROR" or bool(element.get("HasErrors"))


def is_duplicate_number(messages: Sequence[str]) -> bool:
    """True when Xero says the invoice number is taken ("Invoice # must be unique.").

    Other messages beside it do not matter: an invoice with our number exists either way.
    """
    return any(UNIQUE_NUMBER_MARKER in m.lower() for m in messages)
