"""The credit-note endpoints of the loopback Xero sandbox (`tests.sandboxes.xero.XeroSandbox`).

What it models, as Xero's API does it:
- `PUT /CreditNotes` (create only, `summarizeErrors` as for invoices): the invoice checks on
  contact, currency, status and lines; tax computed per line exactly as for invoices; a
  CreditNoteNumber unique among ACCRECCREDIT ("Credit Note # must be unique."); stored with
  `RemainingCredit` = Total and no `Allocations`;
- `GET /CreditNotes` with `where` (comparisons `Field=="value"` joined by AND / OR, parentheses;
  strings compared case-insensitively) and `page` (100 a page); `GET /CreditNotes/{id}`;
- `PUT /CreditNotes/{CreditNoteID}/Allocations`: refused unless the credit note is AUTHORISED,
  the invoice exists, is an ACCREC of the same contact and currency and is AUTHORISED (a paid
  one "has already been paid off"), and the amount is positive and at most both the invoice's
  AmountDue and the credit note's RemainingCredit. An allocation lowers both; a document left
  with nothing becomes PAID.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.sandboxes.base import Reply, Request
from tests.sandboxes.xero_wire import (
    PAGE_SIZE,
    VALIDATION_EXCEPTION,
    day_of,
    exact_reply,
    invalid_json,
    ms_date,
    not_found,
)

CREDIT_NOTE_PATH = re.compile(r"^/api\.xro/2\.0/CreditNotes(?:/(?P<id>[^/]+)(?:/(?P<sub>Allocations))?)?/?$")
_TOKEN = re.compile(r'\s*(\(|\)|==|"(?:[^"\\]|\\.)*"|[A-Za-z_][\w.]*)')


class WhereError(ValueError):
    """A `where` filter this sandbox (like Xero) cannot parse."""


def where_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for a Xero `where` filter made of `Field=="value"`, AND, OR and parentheses."""
    tokens: list[str] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise WhereError(f"cannot parse the where filter at {text[position : position + 20]!r}")
        tokens.append(match.group(1))
        position = match.end()
    predicate, rest = _disjunction(tokens)
    if rest:
        raise WhereError(f"unexpected {rest[0]!r} in the where filter")
    return predicate


Parsed = tuple[Callable[[dict[str, Any]], bool], list[str]]


def _disjunction(tokens: list[str]) -> Parsed:
    left, rest = _conjunction(tokens)
    while rest and rest[0].upper() == "OR":
        right, rest = _conjunction(rest[1:])
        left = (lambda a, b: lambda doc: a(doc) or b(doc))(left, right)
    return left, rest


def _conjunction(tokens: list[str]) -> Parsed:
    left, rest = _atom(tokens)
    while rest and rest[0].upper() == "AND":
        right, rest = _atom(rest[1:])
        left = (lambda a, b: lambda doc: a(doc) and b(doc))(left, right)
    return left, rest


def _atom(tokens: list[str]) -> Parsed:
    if tokens and tokens[0] == "(":
        inner, rest = _disjunction(tokens[1:])
        if not rest or rest[0] != ")":
            raise WhereError("a parenthesis is not closed in the where filter")
        return inner, rest[1:]
    if len(tokens) < 3 or tokens[1] != "==" or not tokens[2].startswith('"'):
        raise WhereError(f'expected Field=="value" in the where filter, got {" ".join(tokens[:3])!r}')
    path, wanted = tokens[0].split("."), re.sub(r"\\(.)", r"\1", tokens[2][1:-1]).casefold()

    def compare(document: dict[str, Any]) -> bool:
        value: Any = document
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return isinstance(value, str) and value.casefold() == wanted

    return compare, tokens[3:]


class CreditNotes:
    """The credit-note half of the Xero sandbox; the sandbox class supplies the invoice machinery."""

    _credit_notes: list[dict[str, Any]]
    _invoices: list[dict[str, Any]]
    contacts: dict[str, str]
    lock: Any

    @property
    def credit_notes(self) -> list[dict[str, Any]]:
        """Every credit note the organisation holds (copies), in creation order."""
        with self.lock:
            return copy.deepcopy(self._credit_notes)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """One stored invoice (a copy), by InvoiceID."""
        with self.lock:
            return copy.deepcopy(next(i for i in self._invoices if i["InvoiceID"] == invoice_id))

    # -- routing --------------------------------------------------------------------------
    def _route_credit_notes(self, request: Request) -> Reply:
        match = CREDIT_NOTE_PATH.match(request.path)
        if match is None:
            return not_found()
        credit_note_id, sub = match["id"], match["sub"]
        if sub and request.method == "PUT":
            return self._allocate(request, credit_note_id)
        if credit_note_id and not sub and request.method == "GET":
            found = [c for c in self._credit_notes if c["CreditNoteID"] == credit_note_id]
            return self._answer(200, found, "CreditNotes") if found else not_found()
        if not credit_note_id and request.method == "PUT":
            return self._put_credit_notes(request)
        if not credit_note_id and request.method == "GET":
            return self._get_credit_notes(request)
        return Reply(405, {"Title": "Method Not Allowed", "Status": 405})

    def _answer(self, status: int, elements: list[dict[str, Any]], key: str) -> Reply:
        return exact_reply(status, self._envelope(elements, key))  # type: ignore[attr-defined]

    # -- create ---------------------------------------------------------------------------
    def _put_credit_notes(self, request: Request) -> Reply:
        try:
            document = json.loads(request.body, parse_float=Decimal)
        except ValueError:
            return invalid_json()
        elements = document.get("CreditNotes", [document]) if isinstance(document, dict) else document
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for element in elements:
            problem = self._validate(element, "CreditNote")  # type: ignore[attr-defined]
            if problem is None:
                results.append({**self._create_credit_note(element), "StatusAttributeString": "OK"})
            else:
                results.append(problem)
                failed.append(problem)
        if (request.arg("summarizeErrors") or "true").lower() != "false" and failed:
            return exact_reply(400, {**VALIDATION_EXCEPTION, "Elements": failed})
        return self._answer(200, results, "CreditNotes")

    def _create_credit_note(self, element: dict[str, Any]) -> dict[str, Any]:
        lines, subtotal, tax = self._priced(element)  # type: ignore[attr-defined]
        contact = element.get("Contact") or {}
        contact_id = self._contact_id(contact) or contact.get("ContactID")  # type: ignore[attr-defined]
        issued = day_of(str(element.get("Date") or "2024-01-01"))
        stored = {
            "Type": element.get("Type"),
            "CreditNoteID": str(uuid.uuid4()),
            "CreditNoteNumber": element.get("CreditNoteNumber") or f"CN-{len(self._credit_notes) + 1:04d}",
            "Reference": element.get("Reference", ""),
            "Contact": {"ContactID": contact_id, "ContactNumber": self.contacts.get(contact_id, "")},
            "Date": ms_date(issued),
            "DateString": issued.strftime("%Y-%m-%dT%H:%M:%S"),
            "Status": element.get("Status", "DRAFT"),
            "LineAmountTypes": element.get("LineAmountTypes", "Exclusive"),
            "LineItems": lines,
            "SubTotal": subtotal,
            "TotalTax": tax,
            "Total": subtotal + tax,
            "RemainingCredit": subtotal + tax,
            "Allocations": [],
            "CurrencyCode": element.get("CurrencyCode", "EUR"),
            "UpdatedDateUTC": ms_date(datetime.now(UTC)),
        }
        self._credit_notes.append(stored)
        return copy.deepcopy(stored)

    # -- read -----------------------------------------------------------------------------
    def _get_credit_notes(self, request: Request) -> Reply:
        selected = list(self._credit_notes)
        where = request.arg("where")
        if where:
            try:
                matches = where_filter(where)
            except WhereError as exc:
                return Reply(400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(exc)})
            selected = [c for c in selected if matches(c)]
        page = request.arg("page")
        if page is not None:
            start = (int(page) - 1) * PAGE_SIZE
            selected = selected[start : start + PAGE_SIZE]
        return self._answer(200, copy.deepcopy(selected), "CreditNotes")

    # -- allocate -------------------------------------------------------------------------
    def _allocate(self, request: Request, credit_note_id: str) -> Reply:
        credit = next((c for c in self._credit_notes if c["CreditNoteID"] == credit_note_id), None)
        if credit is None:
            return not_found()
        try:
            document = json.loads(request.body, parse_float=Decimal)
        except ValueError:
            return invalid_json()
        wanted = document.get("Allocations", [document]) if isinstance(document, dict) else document
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for allocation in wanted if isinstance(wanted, list) else []:
            errors, invoice = self._allocation_problems(credit, allocation)
            if errors or invoice is None:
                result = {**allocation, "StatusAttributeString": "ERROR", "HasErrors": True}
                result["ValidationErrors"] = [{"Message": m} for m in errors]
                results.append(result)
                failed.append(result)
                continue
            results.append(
                self._apply(credit, invoice, Decimal(allocation["Amount"]), str(allocation["Date"]))
            )
        if (request.arg("summarizeErrors") or "true").lower() != "false" and failed:
            return exact_reply(400, {**VALIDATION_EXCEPTION, "Elements": failed})
        return self._answer(200, results, "Allocations")

    def _allocation_problems(
        self, credit: dict[str, Any], allocation: Any
    ) -> tuple[list[str], dict[str, Any] | None]:
        if not isinstance(allocation, dict):
            return ["An allocation must be an object"], None
        errors: list[str] = []
        if credit["Status"] != "AUTHORISED":
            errors.append(f"Credit Note must be AUTHORISED to be allocated, it is {credit['Status']}")
        invoice_id = str((allocation.get("Invoice") or {}).get("InvoiceID", ""))
        invoice = next((i for i in self._invoices if i["InvoiceID"] == invoice_id), None)
        if invoice is None:
            return [*errors, f"The Invoice with InvoiceID {invoice_id or '(none)'} could not be found"], None
        if invoice["Type"] != "ACCREC" or credit["Type"] != "ACCRECCREDIT":
            errors.append("Credit Note cannot be allocated to an incorrect invoice type")
        if invoice["Status"] == "PAID":
            errors.append("The invoice you are trying to allocate to has already been paid off")
        elif invoice["Status"] != "AUTHORISED":
            errors.append(f"Credit Note cannot be allocated to an invoice that is {invoice['Status']}")
        if invoice["Contact"]["ContactID"] != credit["Contact"]["ContactID"]:
            errors.append("The Credit Note and the Invoice must be for the same Contact")
        if invoice["CurrencyCode"] != credit["CurrencyCode"]:
            errors.append("The Credit Note and the Invoice must be in the same currency")
        if not allocation.get("Date"):
            errors.append("Date is required")
        amount = allocation.get("Amount")
        if not isinstance(amount, Decimal | int) or isinstance(amount, bool) or Decimal(amount) <= 0:
            errors.append("Amount must be greater than zero")
        elif Decimal(amount) > invoice["AmountDue"]:
            errors.append("Credit Note cannot be allocated as amount is greater than amount outstanding")
        elif Decimal(amount) > credit["RemainingCredit"]:
            errors.append("Credit Note cannot be allocated as amount is greater than the remaining credit")
        return errors, invoice

    def _apply(
        self, credit: dict[str, Any], invoice: dict[str, Any], amount: Decimal, day: str
    ) -> dict[str, Any]:
        allocation_id, dated = str(uuid.uuid4()), ms_date(day_of(day))
        credit["RemainingCredit"] -= amount
        credit["Allocations"].append(
            {
                "AllocationID": allocation_id,
                "Amount": amount,
                "Date": dated,
                "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            }
        )
        invoice["AmountDue"] -= amount
        invoice["AmountCredited"] = invoice.get("AmountCredited", Decimal(0)) + amount
        invoice.setdefault("CreditNotes", []).append(
            {
                "CreditNoteID": credit["CreditNoteID"],
                "CreditNoteNumber": credit["CreditNoteNumber"],
                "AppliedAmount": amount,
            }
        )
        for document, left in ((credit, credit["RemainingCredit"]), (invoice, invoice["AmountDue"])):
            if not left:
                document["Status"] = "PAID"
        return {
            "AllocationID": allocation_id,
            "Amount": amount,
            "Date": dated,
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            "CreditNote": {
                "CreditNoteID": credit["CreditNoteID"],
                "CreditNoteNumber": credit["CreditNoteNumber"],
            },
            "StatusAttributeString": "OK",
        }
