"""A loopback Xero Accounting API (`/api.xro/2.0/Invoices`) that behaves like the real one.

What it models, from the reference notes on Xero:
- `Authorization: Bearer` and `xero-tenant-id` on every call (401 / 403 otherwise) and a
  `Xero-Correlation-Id` on every answer, injected faults included;
- per-tenant budgets checked before anything else: calls in flight, a rolling minute and a
  rolling day; the budget headers on every answer and 429 with `Retry-After` and
  `X-Rate-Limit-Problem` (`concurrent`, `minute`, `day`) past them;
- `Idempotency-Key` on PUT/POST: a repeat inside the window replays the stored answer, the
  same key with a different request is a 400;
- `PUT /Invoices`: create only, InvoiceNumber unique among ACCREC ("Invoice # must be unique."),
  contacts by ContactID or ContactNumber (an unknown number gives "Contact Name cannot be
  empty." under the Contact), `summarizeErrors=false` -> 200 with a status per element, the
  default -> 400 ValidationException while the valid elements are still created;
- `GET /Invoices` with `InvoiceNumbers`, `IDs`, `Statuses` and `page` (100 a page); dates as
  `/Date(ms+0000)/` beside `DateString`;
- tax per line, as Xero's tax guide says: a line's TaxType (else the account's default rate,
  `tax_rate`) gives its rate, its tax is computed and rounded per line unless the line states a
  TaxAmount, which is kept ("The tax amount cannot be greater than the line amount" past it);
  TotalTax is the sum of the lines' tax, Total = SubTotal + TotalTax; an unknown TaxType is the
  line's validation error; `GET /TaxRates` lists the organisation's tax rates;
- `rerounds_tax`: stated TaxAmounts are ignored and every line re-rounded (to test read-back);
- credit notes (`tests.sandboxes.xero_credit_notes`): `PUT /CreditNotes` validated and taxed as
  invoices are, CreditNoteNumber unique among ACCRECCREDIT ("Credit Note # must be unique."),
  `GET /CreditNotes?where=...`, and allocations to invoices that lower both documents' balance.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.sandboxes.base import Reply, Request, Sandbox
from tests.sandboxes.xero_credit_notes import CreditNotes
from tests.sandboxes.xero_wire import (
    API,
    PAGE_SIZE,
    VALIDATION_EXCEPTION,
    day_of,
    exact_reply,
    invalid_json,
    ms_date,
    not_found,
    validation_reply,
)

CENT = Decimal("0.01")
UK_TAX_RATES: tuple[dict[str, Any], ...] = (
    {"Name": "20% (VAT on Income)", "TaxType": "OUTPUT2", "EffectiveRate": Decimal("20.0000")},
    {"Name": "5% (VAT on Income)", "TaxType": "RROUTPUT", "EffectiveRate": Decimal("5.0000")},
    {"Name": "Zero Rated Income", "TaxType": "ZERORATEDOUTPUT", "EffectiveRate": Decimal(0)},
    {"Name": "Exempt Income", "TaxType": "EXEMPTOUTPUT", "EffectiveRate": Decimal(0)},
    {"Name": "No VAT", "TaxType": "NONE", "EffectiveRate": Decimal(0)},
    {"Name": "Zero Rated EC Services", "TaxType": "ECZROUTPUTSERVICES", "EffectiveRate": Decimal(0)},
    {
        "Name": "20% (VAT on Expenses)",
        "TaxType": "INPUT2",
        "EffectiveRate": Decimal(20),
        "CanApplyToRevenue": False,
    },
    {"Name": "17.5% (old rate)", "TaxType": "TAX001", "EffectiveRate": Decimal("17.5"), "Status": "DELETED"},
)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# What tells an invoice from a credit note: its number field, its types, the sales type whose
# numbers are unique, and the message a taken number gets.
DOCUMENTS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "Invoice": ("InvoiceNumber", ("ACCREC", "ACCPAY"), "ACCREC", "Invoice # must be unique."),
    "CreditNote": (
        "CreditNoteNumber",
        ("ACCRECCREDIT", "ACCPAYCREDIT"),
        "ACCRECCREDIT",
        "Credit Note # must be unique.",
    ),
}


class XeroSandbox(CreditNotes, Sandbox):
    """One Xero organisation (tenant) on 127.0.0.1; `invoices` holds what was created."""

    def __init__(
        self,
        *,
        tenant_id: str = "tenant-1",
        access_token: str = "sandbox-token",
        contacts: dict[str, str] | None = None,
        account_codes: Iterable[str] = ("200", "400"),
        item_codes: Iterable[str] = (),
        currencies: Iterable[str] = ("EUR", "USD", "GBP", "NZD", "AUD"),
        tax_rate: Decimal = Decimal(0),
        tax_rates: Iterable[dict[str, Any]] = UK_TAX_RATES,
        rerounds_tax: bool = False,
        minute_limit: int = 60,
        day_limit: int = 5000,
        app_minute_limit: int = 10000,
        concurrent_limit: int = 5,
        idempotency_window: float = 360.0,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.access_token = access_token
        self.contacts: dict[str, str] = {}  # ContactID -> ContactNumber
        for number, contact_id in (contacts or {}).items():
            self.add_contact(number, contact_id)
        self.account_codes = set(account_codes)
        self.item_codes = set(item_codes)
        self.currencies = set(currencies)
        self.tax_rate = tax_rate  # the accounts' default rate, a fraction, for lines without TaxType
        self.tax_rates = [
            {"Status": "ACTIVE", "CanApplyToRevenue": True, **copy.deepcopy(rate)} for rate in tax_rates
        ]
        self.rerounds_tax = rerounds_tax
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.app_minute_limit = app_minute_limit
        self.concurrent_limit = concurrent_limit
        self.idempotency_window = idempotency_window
        self.latency = latency
        self.clock = clock
        self._invoices: list[dict[str, Any]] = []
        self._credit_notes: list[dict[str, Any]] = []
        self._calls_minute: deque[float] = deque()
        self._calls_day: deque[float] = deque()
        self._in_flight = 0
        self._replays: dict[str, tuple[tuple[Any, ...], Reply, float]] = {}
        self._next_number = 1
        self.rate_limited = 0
        self.replayed = 0
        self._flight_lock = threading.Lock()

    # -- set-up and assertions ------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.url}{API}"

    @property
    def invoices(self) -> list[dict[str, Any]]:
        """Every invoice the organisation holds (copies), in creation order."""
        with self.lock:
            return copy.deepcopy(self._invoices)

    def add_contact(self, number: str, contact_id: str | None = None) -> str:
        contact_id = contact_id or str(uuid.uuid4())
        with self.lock:
            self.contacts[contact_id] = number
        return contact_id

    def add_invoice(self, **fields: Any) -> dict[str, Any]:
        """Seed an invoice as if made in Xero's UI (no validation)."""
        element: dict[str, Any] = {
            "Type": "ACCREC",
            "Contact": {"ContactID": next(iter(self.contacts), str(uuid.uuid4()))},
            "Date": "2024-01-01",
            "DueDate": "2024-01-31",
            "CurrencyCode": "EUR",
            "Status": "AUTHORISED",
            "LineAmountTypes": "Exclusive",
            "LineItems": [{"Description": "seeded", "Quantity": Decimal(1), "UnitAmount": Decimal(10)}],
        }
        element.update(fields)
        with self.lock:
            return self._create(element)

    # -- the API --------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        with self._flight_lock:
            self._in_flight += 1
            crowded = self._in_flight > self.concurrent_limit
        try:
            with self.lock:
                throttled = self._throttle(concurrent=crowded)
                if throttled is not None:
                    return throttled
            if self.latency:
                time.sleep(self.latency)
            with self.lock:
                reply = self._replay_or_route(request)
                reply.headers.update(self._budget_headers())
                return reply
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def _send(self, handler: Any, reply: Reply) -> None:  # type: ignore[override]
        # Every answer, an injected fault as much as a real one, carries a correlation id.
        reply.headers.setdefault("Xero-Correlation-Id", str(uuid.uuid4()))
        Sandbox._send(handler, reply)

    def _authenticate(self, request: Request) -> Reply | None:
        if request.header("authorization") != f"Bearer {self.access_token}":
            return Reply(
                401, {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired"}
            )
        if request.header("xero-tenant-id") != self.tenant_id:
            return Reply(
                403,
                {"Type": None, "Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"},
            )
        return None

    def _throttle(self, *, concurrent: bool) -> Reply | None:
        now = self.clock()
        while self._calls_minute and self._calls_minute[0] <= now - 60:
            self._calls_minute.popleft()
        while self._calls_day and self._calls_day[0] <= now - 86400:
            self._calls_day.popleft()
        if concurrent:
            return self._too_many("concurrent", 1)
        if len(self._calls_day) >= self.day_limit:
            oldest = self._calls_day[0] if self._calls_day else now
            return self._too_many("day", oldest + 86400 - now)
        if len(self._calls_minute) >= self.minute_limit:
            oldest = self._calls_minute[0] if self._calls_minute else now
            return self._too_many("minute", oldest + 60 - now)
        self._calls_minute.append(now)
        self._calls_day.append(now)
        return None

    def _too_many(self, problem: str, wait: float) -> Reply:
        self.rate_limited += 1
        headers = {"Retry-After": str(max(1, math.ceil(wait))), "X-Rate-Limit-Problem": problem}
        headers.update(self._budget_headers())
        return Reply(429, {"Title": "Too Many Requests", "Status": 429}, headers)

    def _budget_headers(self) -> dict[str, str]:
        return {
            "X-MinLimit-Remaining": str(max(0, self.minute_limit - len(self._calls_minute))),
            "X-DayLimit-Remaining": str(max(0, self.day_limit - len(self._calls_day))),
            "X-AppMinLimit-Remaining": str(max(0, self.app_minute_limit - len(self._calls_minute))),
        }

    def _replay_or_route(self, request: Request) -> Reply:
        key = request.header("idempotency-key")
        if not key or request.method not in ("PUT", "POST", "PATCH"):
            return self._route(request)
        if len(key) > 128:
            return validation_reply(["Idempotency-Key must be at most 128 characters"])
        fingerprint = (request.method, request.path, sorted(request.query.items()), request.body)
        now = self.clock()
        stored = self._replays.get(key)
        if stored is not None and stored[2] > now - self.idempotency_window:
            if stored[0] != fingerprint:
                return validation_reply(["The Idempotency-Key was already used with a different request"])
            self.replayed += 1
            return Reply(stored[1].status, stored[1].body, dict(stored[1].headers))
        reply = self._route(request)
        self._replays[key] = (fingerprint, Reply(reply.status, reply.body, dict(reply.headers)), now)
        return reply

    def _route(self, request: Request) -> Reply:
        if request.path.rstrip("/") == f"{API}/TaxRates" and request.method == "GET":
            envelope = {k: v for k, v in self._envelope([]).items() if k != "Invoices"}
            return exact_reply(200, {**envelope, "TaxRates": copy.deepcopy(self.tax_rates)})
        if request.path.startswith(f"{API}/CreditNotes"):
            return self._route_credit_notes(request)
        if request.path.rstrip("/") != f"{API}/Invoices":
            return not_found()
        if request.method == "PUT":
            return self._put_invoices(request)
        if request.method == "GET":
            return self._get_invoices(request)
        return Reply(405, {"Title": "Method Not Allowed", "Status": 405})

    def _put_invoices(self, request: Request) -> Reply:
        try:
            document = json.loads(request.body, parse_float=Decimal)
        except ValueError:
            return invalid_json()
        elements = document.get("Invoices", [document]) if isinstance(document, dict) else document
        results: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for element in elements:
            result = self._validate(element)
            if result is None:
                results.append({**self._create(element), "StatusAttributeString": "OK"})
            else:
                results.append(result)
                failed.append(result)
        summarize = (request.arg("summarizeErrors") or "true").lower() != "false"
        if summarize and failed:
            # The real quirk: the valid elements were created, yet the answer is a 400 without them.
            return exact_reply(400, {**VALIDATION_EXCEPTION, "Elements": failed})
        return exact_reply(200, self._envelope(results))

    def _validate(self, element: dict[str, Any], document: str = "Invoice") -> dict[str, Any] | None:
        """The element marked ERROR with its ValidationErrors, or None when it may be created."""
        errors: list[str] = []
        contact_errors: list[str] = []
        number_field, kinds, sales, taken = DOCUMENTS[document]
        label = "Credit Note" if document == "CreditNote" else "Invoice"
        kind = element.get("Type")
        if kind not in kinds:
            errors.append(f"{label} Type must be specified")
        contact = element.get("Contact") or {}
        if self._contact_id(contact) is None:
            if contact.get("ContactID"):
                contact_errors.append(f"The Contact with ContactID {contact['ContactID']} could not be found")
            else:
                contact_errors.append("Contact Name cannot be empty.")
        number = element.get(number_field)
        if kind == sales and number and self._numbered(number, document):
            errors.append(taken)
        if element.get("CurrencyCode", "EUR") not in self.currencies:
            errors.append(
                f"The currency {element.get('CurrencyCode')} is not subscribed to in this organisation"
            )
        if element.get("Status", "DRAFT") not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"{label} status {element.get('Status')} is not valid for a new {label.lower()}")
        lines = element.get("LineItems") or []
        if not lines:
            errors.append("At least one line item is required")
        line_errors: list[list[str]] = []
        for line in lines:
            problems = self._line_problems(line)
            line_errors.append(problems)
            errors.extend(problems)
        if not errors and not contact_errors:
            return None
        result = {**element, "StatusAttributeString": "ERROR", "HasErrors": True}
        result["ValidationErrors"] = [{"Message": m} for m in errors]
        result["Contact"] = {**contact, "ValidationErrors": [{"Message": m} for m in contact_errors]}
        return result

    def _line_problems(self, line: dict[str, Any]) -> list[str]:
        problems = []
        if not line.get("Description") and not line.get("ItemCode"):
            problems.append("Description needs to be at least 1 char long")
        if line.get("AccountCode") is not None and line["AccountCode"] not in self.account_codes:
            problems.append(f"Account code '{line['AccountCode']}' is not a valid code for this document.")
        if line.get("ItemCode") is not None and line["ItemCode"] not in self.item_codes:
            problems.append(f"Item code '{line['ItemCode']}' is not valid")
        quantity = Decimal(str(line.get("Quantity", 1)))
        unit = Decimal(str(line.get("UnitAmount", 0)))
        expected = _money(quantity * unit)
        if "LineAmount" in line and Decimal(str(line["LineAmount"])) != expected:
            problems.append(
                f"The line total {line['LineAmount']} does not match the expected line total {expected}"
            )
        tax_type = line.get("TaxType")
        if tax_type is not None and self._revenue_rate(str(tax_type)) is None:
            problems.append(
                f"The TaxType code {tax_type} does not exist or cannot be used for this type of transaction."
            )
        if "TaxAmount" in line:
            stated = line["TaxAmount"]
            if not isinstance(stated, Decimal | int) or isinstance(stated, bool):
                problems.append(f"TaxAmount {stated!r} is not a number")
            elif abs(Decimal(stated)) > abs(expected):
                problems.append("The tax amount cannot be greater than the line amount")
        return problems

    def _revenue_rate(self, tax_type: str) -> Decimal | None:
        """The percent of an active revenue TaxType, None when the organisation has none such."""
        for rate in self.tax_rates:
            if rate["TaxType"] == tax_type and rate["Status"] == "ACTIVE" and rate["CanApplyToRevenue"]:
                return Decimal(str(rate["EffectiveRate"]))
        return None

    def _line_tax(self, line: dict[str, Any], amount: Decimal, kind_of_amounts: str) -> Decimal:
        """One line's tax, rounded per line as Xero rounds it; a stated TaxAmount is kept."""
        if kind_of_amounts == "NoTax":
            return Decimal(0)
        if "TaxAmount" in line and not self.rerounds_tax:
            return _money(Decimal(str(line["TaxAmount"])))
        tax_type = line.get("TaxType")
        percent = self._revenue_rate(str(tax_type)) if tax_type else None
        rate = percent / 100 if percent is not None else self.tax_rate
        if kind_of_amounts == "Inclusive":
            return _money(amount - amount / (1 + rate))
        return _money(amount * rate)

    def _contact_id(self, contact: dict[str, Any]) -> str | None:
        contact_id = contact.get("ContactID")
        if contact_id:
            return contact_id if contact_id in self.contacts else None
        number = contact.get("ContactNumber")
        return next((cid for cid, n in self.contacts.items() if number and n == number), None)

    def _numbered(self, number: str, document: str = "Invoice") -> bool:
        number_field, _, sales, _ = DOCUMENTS[document]
        store = self._invoices if document == "Invoice" else self._credit_notes
        wanted = number.casefold()
        return any(d["Type"] == sales and d[number_field].casefold() == wanted for d in store)

    def _priced(self, element: dict[str, Any]) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """The stored lines (each with its LineAmount and TaxAmount), the SubTotal and the TotalTax."""
        kind_of_amounts = element.get("LineAmountTypes", "Exclusive")
        lines = []
        for line in element.get("LineItems") or []:
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = Decimal(str(line.get("UnitAmount", 0)))
            amount = _money(quantity * unit)
            line_tax = self._line_tax(line, amount, kind_of_amounts)
            lines.append(
                {**line, "LineItemID": str(uuid.uuid4()), "LineAmount": amount, "TaxAmount": line_tax}
            )
        amounts = sum((line["LineAmount"] for line in lines), Decimal(0))
        tax = sum((line["TaxAmount"] for line in lines), Decimal(0))
        return lines, amounts - tax if kind_of_amounts == "Inclusive" else amounts, tax

    def _create(self, element: dict[str, Any]) -> dict[str, Any]:
        kind = element.get("Type", "ACCREC")
        number = element.get("InvoiceNumber") or ""
        if kind == "ACCREC" and not number:
            number = f"INV-{self._next_number:04d}"
            self._next_number += 1
        kind_of_amounts = element.get("LineAmountTypes", "Exclusive")
        lines, subtotal, tax = self._priced(element)
        contact = element.get("Contact") or {}
        contact_id = self._contact_id(contact) or contact.get("ContactID") or str(uuid.uuid4())
        issued = day_of(str(element.get("Date") or "2024-01-01"))
        due = day_of(str(element.get("DueDate") or element.get("Date") or "2024-01-01"))
        stored = {
            "Type": kind,
            "InvoiceID": str(uuid.uuid4()),
            "InvoiceNumber": number,
            "Reference": element.get("Reference", ""),
            "Contact": {"ContactID": contact_id, "ContactNumber": self.contacts.get(contact_id, "")},
            "Date": ms_date(issued),
            "DateString": issued.strftime("%Y-%m-%dT%H:%M:%S"),
            "DueDate": ms_date(due),
            "DueDateString": due.strftime("%Y-%m-%dT%H:%M:%S"),
            "Status": element.get("Status", "DRAFT"),
            "LineAmountTypes": kind_of_amounts,
            "LineItems": lines,
            "SubTotal": subtotal,
            "TotalTax": tax,
            "Total": subtotal + tax,
            "AmountDue": subtotal + tax,
            "AmountPaid": Decimal(0),
            "CurrencyCode": element.get("CurrencyCode", "EUR"),
            "UpdatedDateUTC": ms_date(datetime.now(UTC)),
        }
        self._invoices.append(stored)
        return dict(stored)

    def _get_invoices(self, request: Request) -> Reply:
        selected = list(self._invoices)
        numbers = request.arg("InvoiceNumbers")
        if numbers:
            wanted = {n.casefold() for n in numbers.split(",") if n}
            selected = [i for i in selected if i["InvoiceNumber"].casefold() in wanted]
        ids = request.arg("IDs")
        if ids:
            wanted_ids = set(ids.split(","))
            selected = [i for i in selected if i["InvoiceID"] in wanted_ids]
        statuses = request.arg("Statuses")
        if statuses:
            wanted_statuses = set(statuses.split(","))
            selected = [i for i in selected if i["Status"] in wanted_statuses]
        page = request.arg("page")
        if page is not None:
            start = (int(page) - 1) * PAGE_SIZE
            selected = selected[start : start + PAGE_SIZE]
        return exact_reply(200, self._envelope(selected))

    @staticmethod
    def _envelope(elements: list[dict[str, Any]], key: str = "Invoices") -> dict[str, Any]:
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "po-connector sandbox",
            "DateTimeUTC": ms_date(datetime.now(UTC)),
            key: elements,
        }
