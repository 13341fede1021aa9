"""A QuickBooks Online sandbox: OAuth with rotating refresh tokens, invoices, credit memos, query, batch.

Behaves like the Accounting API v3 as far as the sink needs it: `Fault` error bodies
(ValidationFault / AuthenticationFault / SystemFault, throttle code 003001), an `intuit_tid`
header on every answer, `DocNumber` uniqueness (6140), unknown references (2500), the
`requestid` replay window, `select * from Invoice where DocNumber in (...) | = '...'`, and
`/batch` with per-item results and injectable per-item faults. Credit memos (`/creditmemo`,
`select * from CreditMemo ...`, batch items `"CreditMemo"`) are validated, taxed and numbered
as invoices are, DocNumber unique among credit memos, and stored with `RemainingCredit`; like
QuickBooks they link to no invoice. Transport faults come from the
base `FaultPlan`; status faults are answered with QuickBooks-shaped bodies.

Tax, as a company of either model has it (`tax_mode`):
- "us": lines are `TaxCodeRef` TAX or NON; with automated sales tax on, an invoice that states
  no `TxnTaxDetail.TotalTax` gets tax ADDED at the sandbox's AST rate on its taxable lines, while
  a stated TotalTax is kept;
- "global": every line needs the Id of a TaxCode (none: 6000 "Make sure all your transactions
  have a VAT rate"; unknown: 2500 Invalid Reference Id); the server computes tax per line and
  rounds per line, unless `TxnTaxDetail` states TotalTax with a TaxLine per rate;
- `select * from TaxCode` / `TaxRate` list the company's codes and rates;
- `rerounds_tax`: the server ignores stated tax and rounds per line (to test read-back).
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.sandboxes.base import Fault, Reply, Request, Sandbox

TOKEN_PATH = "/oauth2/v1/tokens/bearer"
_COMPANY = re.compile(r"^/v3/company/(?P<realm>[^/]+)/(?P<entity>[a-z]+)(?:/(?P<id>[^/]+))?$")
_SELECT = re.compile(
    r"^\s*select\s+\*\s+from\s+(?P<entity>\w+)"
    r"(?:\s+where\s+(?P<where>.+?))?"
    r"(?:\s+startposition\s+(?P<start>\d+))?"
    r"(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
_WHERE_IN = re.compile(r"^DocNumber\s+in\s*\((?P<values>.*)\)$", re.IGNORECASE | re.DOTALL)
CENT = Decimal("0.01")
US_TAX_CODES = ("TAX", "NON")
UK_TAX_CODES: dict[str, dict[str, Any]] = {
    "2": {"Name": "20.0% S", "rates": ["4"]},
    "5": {"Name": "5.0% R", "rates": ["6"]},
    "6": {"Name": "0.0% Z", "rates": ["8"]},
    "9": {"Name": "Exempt", "rates": ["12"]},
    "14": {"Name": "0.0% ECS", "rates": ["16"]},
    "20": {"Name": "Old 17.5%", "rates": ["2"], "Active": False},
}
UK_TAX_RATES: dict[str, Decimal] = {
    "2": Decimal("17.5"),
    "4": Decimal(20),
    "6": Decimal(5),
    "8": Decimal(0),
    "12": Decimal(0),
    "16": Decimal(0),
}
_ENTITIES = {"invoice": "Invoice", "creditmemo": "CreditMemo"}  # URL entity -> entity name
_TXN_TYPES = {"Invoice": "Invoice", "CreditMemo": "Credit Memo"}
_WHERE_EQ = re.compile(r"^DocNumber\s*=\s*(?P<value>'(?:[^'\\]|\\.)*')$", re.IGNORECASE | re.DOTALL)


def fault_body(kind: str, code: str, message: str, detail: str = "", element: str = "") -> dict[str, Any]:
    """A QuickBooks `Fault` answer body."""
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail or message, "code": code, "element": element}],
            "type": kind,
        },
        "time": _now(),
    }


def validation_fault(code: str, message: str, detail: str = "", element: str = "") -> dict[str, Any]:
    return fault_body("ValidationFault", code, message, detail, element)


def system_fault() -> dict[str, Any]:
    return fault_body(
        "SystemFault",
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data.",
    )


def throttle_fault() -> dict[str, Any]:
    return fault_body(
        "SERVICE",
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _encode(value: Any) -> str:
    """JSON with Decimals written as numbers from their digits, as QuickBooks answers."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def _reply(status: int, body: Any) -> Reply:
    return Reply(status, _encode(body).encode("utf-8"))


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


class ItemFaults:
    """Per-item faults of `/batch`: queued ones first, then a seeded rate; no write happens."""

    def __init__(self, seed: int = 11) -> None:
        self._queue: list[tuple[Callable[[dict[str, Any]], bool], dict[str, Any]]] = []
        self._random = random.Random(seed)
        self.rate = 0.0
        self.choices: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def queue(
        self,
        fault: dict[str, Any],
        matches: Callable[[dict[str, Any]], bool] = lambda i: True,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._queue.extend([(matches, fault)] * times)

    def random(self, rate: float, choices: list[dict[str, Any]]) -> None:
        with self._lock:
            self.rate, self.choices = rate, choices

    def pick(self, invoice: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            for index, (matches, fault) in enumerate(self._queue):
                if matches(invoice):
                    del self._queue[index]
                    return fault
            if self.rate and self.choices and self._random.random() < self.rate:
                return self._random.choice(self.choices)
        return None


class QuickBooksSandbox(Sandbox):
    """QuickBooks Online on loopback, for one company (realm)."""

    def __init__(
        self,
        *,
        realm_id: str = "9130350000000001",
        client_id: str = "qbo-client-id",
        client_secret: str = "qbo-client-secret-0123456789",
        refresh_token: str = "qbo-initial-refresh-token-abcdef",
        customers: dict[str, str] | None = None,
        items: dict[str, str] | None = None,
        terms: dict[str, str] | None = None,
        custom_fields: dict[str, str] | None = None,
        requestid_window: float | None = 3600.0,
        access_ttl: int = 3600,
        max_batch: int = 30,
        tax_mode: str = "none",
        automated_sales_tax: bool = True,
        ast_rate: Decimal = Decimal("8.875"),
        tax_codes: dict[str, dict[str, Any]] | None = None,
        tax_rates: dict[str, Decimal] | None = None,
        rerounds_tax: bool = False,
    ) -> None:
        super().__init__()
        self.realm_id = realm_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.initial_refresh_token = refresh_token
        self.customers = customers or {"1": "Acme Corp", "2": "Globex Inc", "58": "Initech"}
        self.items = items or {"1": "Services", "2": "Seats"}
        self.terms = terms or {"1": "Due on receipt", "2": "Net 15", "3": "Net 30", "4": "Net 60"}
        self.custom_fields = custom_fields or {"1": "PO Number", "2": "Sales Rep", "3": "Project"}
        self.requestid_window = requestid_window  # None: remembered for ever; 0: not at all
        self.access_ttl = access_ttl
        self.max_batch = max_batch
        self.item_faults = ItemFaults()
        self.tax_mode = tax_mode  # "none" (as before tax), "us" or "global"
        self.automated_sales_tax = automated_sales_tax
        self.ast_rate = ast_rate
        self.tax_codes = copy.deepcopy(tax_codes if tax_codes is not None else UK_TAX_CODES)
        self.tax_rates = dict(tax_rates if tax_rates is not None else UK_TAX_RATES)
        self.rerounds_tax = rerounds_tax
        self.valid_refresh_tokens: set[str] = {refresh_token}
        self.spent_refresh_tokens: set[str] = set()
        self.refresh_requests: list[str] = []  # refresh tokens presented, in order
        self.issued_tokens: list[str] = []  # every access and refresh token handed out
        self._access: dict[str, float] = {}
        self._invoices: dict[str, dict[str, Any]] = {}
        self._credit_memos: dict[str, dict[str, Any]] = {}
        self._documents = {"Invoice": self._invoices, "CreditMemo": self._credit_memos}
        self._next_id = 100
        self._replies: dict[tuple[str, str], tuple[float, int, bytes]] = {}
        self.replayed = 0
        self.tids: list[str] = []

    # -- assertions -----------------------------------------------------------------------
    @property
    def invoices(self) -> list[dict[str, Any]]:
        """Every stored invoice (copies), in creation order."""
        with self.lock:
            return [json.loads(_encode(inv), parse_float=Decimal) for inv in self._invoices.values()]

    @property
    def credit_memos(self) -> list[dict[str, Any]]:
        """Every stored credit memo (copies), in creation order."""
        with self.lock:
            return [json.loads(_encode(memo), parse_float=Decimal) for memo in self._credit_memos.values()]

    def doc_number_counts(self) -> collections.Counter[str]:
        """How many stored invoices carry each DocNumber."""
        with self.lock:
            return collections.Counter(inv["DocNumber"] for inv in self._invoices.values())

    def api_calls(self) -> int:
        """Requests to the accounting API (not the token endpoint)."""
        return self.count(path_prefix="/v3/")

    # -- test controls --------------------------------------------------------------------
    def throttle(self, times: int, retry_after: str | None = None) -> None:
        """Answer the next `times` API requests with 429 and the throttle fault."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        self.faults.queue(
            Fault(kind="status", status=429, headers=headers),
            matches=lambda r: r.path.startswith("/v3/"),
            times=times,
        )

    def expire_access_tokens(self) -> None:
        with self.lock:
            self._access.clear()

    def add_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """Store an invoice as if created in the QuickBooks UI."""
        with self.lock:
            return self._store(json.loads(_encode(invoice), parse_float=Decimal))

    # -- HTTP -----------------------------------------------------------------------------
    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:  # type: ignore[override]
        tid = f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
        with self.lock:
            self.tids.append(tid)
        reply.headers.setdefault("intuit_tid", tid)
        Sandbox._send(handler, reply)

    def _fail(self, handler: BaseHTTPRequestHandler, fault: Fault, reply: Reply | None) -> None:
        if fault.kind != "status":
            super()._fail(handler, fault, reply)
            return
        if fault.status == 429:
            body = throttle_fault()
        elif fault.status == 503:
            body = fault_body("SystemFault", "10000", "Service Unavailable", "The service is unavailable.")
        elif fault.status >= 500:
            body = system_fault()
        else:
            body = validation_fault(str(fault.status), f"Injected {fault.status}")
        answer = _reply(fault.status, body)
        answer.headers.update(fault.headers)
        self._send(handler, answer)

    def handle(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        match = _COMPANY.match(request.path)
        if match is None:
            return _reply(404, {"error": f"no route {request.path}"})
        if not self._authorized(request):
            return _reply(
                401,
                fault_body(
                    "AuthenticationFault",
                    "3200",
                    "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "Token expired or invalid",
                ),
            )
        if match["realm"] != self.realm_id:
            return _reply(
                403,
                fault_body("AuthorizationFault", "003100", "message=ApplicationAuthorizationFailed"),
            )
        entity, method = match["entity"], request.method
        if entity == "query" and method in ("GET", "POST"):
            statement = request.arg("query") if method == "GET" else request.body.decode("utf-8")
            status, body = self._query(statement or "")
            return _reply(status, body)
        kind = _ENTITIES.get(entity)
        if kind is not None and method == "GET" and match["id"]:
            with self.lock:
                document = self._documents[kind].get(match["id"])
            if document is None:
                return _reply(400, validation_fault("610", "Object Not Found", f"{kind} {match['id']}"))
            return _reply(200, {kind: document, "time": _now()})
        if entity == "companyinfo" and method == "GET" and match["id"] == self.realm_id:
            country = "US" if self.tax_mode in ("us", "none") else "GB"
            return _reply(200, {"CompanyInfo": {"Id": "1", "Country": country}, "time": _now()})
        if entity in ("invoice", "creditmemo", "batch") and method == "POST" and not match["id"]:
            return self._write(request, entity)
        return _reply(400, validation_fault("2010", "Unsupported Operation", f"{method} {request.path}"))

    # -- OAuth ----------------------------------------------------------------------------
    def _token(self, request: Request) -> Reply:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.header("authorization") != f"Basic {expected}":
            return _reply(401, {"error": "invalid_client"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8")).items()}
        if form.get("grant_type") != "refresh_token":
            return _reply(400, {"error": "unsupported_grant_type"})
        presented = form.get("refresh_token", "")
        with self.lock:
            self.refresh_requests.append(presented)
            if presented not in self.valid_refresh_tokens:
                return _reply(400, {"error": "invalid_grant"})
            # Rotation: the presented token is spent, a new one replaces it.
            self.valid_refresh_tokens.discard(presented)
            self.spent_refresh_tokens.add(presented)
            access = "qbo-at-" + secrets.token_urlsafe(24)
            refresh = "qbo-rt-" + secrets.token_urlsafe(24)
            self.valid_refresh_tokens.add(refresh)
            self._access[access] = time.monotonic() + self.access_ttl
            self.issued_tokens.extend([access, refresh])
        return _reply(
            200,
            {
                "token_type": "bearer",
                "access_token": access,
                "expires_in": self.access_ttl,
                "refresh_token": refresh,
                "x_refresh_token_expires_in": 8726400,
            },
        )

    def _authorized(self, request: Request) -> bool:
        header = request.header("authorization")
        if not header.startswith("Bearer "):
            return False
        with self.lock:
            expiry = self._access.get(header[len("Bearer ") :])
        return expiry is not None and expiry > time.monotonic()

    # -- writes ---------------------------------------------------------------------------
    def _write(self, request: Request, entity: str) -> Reply:
        rid = request.arg("requestid")
        limit = 36 if entity == "batch" else 50
        if rid is not None and (not rid or len(rid) > limit):
            return _reply(
                400, validation_fault("2010", "Invalid requestid", f"requestid must be 1..{limit} characters")
            )
        with self.lock:
            if rid and self.requestid_window != 0:
                stored = self._replies.get((entity, rid))
                if stored is not None and (
                    self.requestid_window is None or time.monotonic() - stored[0] < self.requestid_window
                ):
                    self.replayed += 1
                    return Reply(stored[1], stored[2])
            try:
                body = json.loads(request.body.decode("utf-8"), parse_float=Decimal)
            except (ValueError, UnicodeDecodeError):
                body = None
            allow_dup = "allowduplicatedocnum" in (request.arg("include") or "")
            if not isinstance(body, dict):
                status, answer = 400, validation_fault("2010", "Request has invalid or unsupported property")
            elif entity in _ENTITIES:
                kind = _ENTITIES[entity]
                status, answer = self._create(body.get(kind, body), allow_dup, kind)
            else:
                status, answer = self._batch(body, with_requestid=bool(rid), allow_dup=allow_dup)
            payload = _encode(answer).encode("utf-8")
            if rid:
                self._replies[(entity, rid)] = (time.monotonic(), status, payload)
            return Reply(status, payload)

    def _batch(self, body: dict[str, Any], *, with_requestid: bool, allow_dup: bool) -> tuple[int, Any]:
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            return 400, validation_fault("2020", "Required param missing", "BatchItemRequest")
        if len(items) > self.max_batch:
            return 400, validation_fault(
                "6000",
                "A business validation error has occurred while processing your request",
                f"Batch size {len(items)} exceeds the maximum of {self.max_batch} items",
            )
        bids = [str(item.get("bId", "")) for item in items]
        if "" in bids or len(set(bids)) != len(bids):
            return 400, validation_fault("2010", "Invalid bId", "every item needs a unique bId")
        if with_requestid and any(len(b) > 10 for b in bids):
            return 400, validation_fault(
                "2010", "Invalid bId", "bId is limited to 10 characters with requestid"
            )
        results: list[dict[str, Any]] = []
        for bid, item in zip(bids, items, strict=True):
            if "Query" in item:
                _, answer = self._query(str(item["Query"]))
            elif item.get("operation") == "create" and (
                kind := next((k for k in self._documents if isinstance(item.get(k), dict)), None)
            ):
                fault = self.item_faults.pick(item[kind])
                if fault is not None:
                    results.append({"bId": bid, "Fault": fault["Fault"]})
                    continue
                _, answer = self._create(item[kind], allow_dup, kind)
            else:
                answer = validation_fault("2010", "Unsupported batch operation", str(bid))
            entry = {"bId": bid}
            entry.update({k: v for k, v in answer.items() if k != "time"})
            results.append(entry)
        return 200, {"BatchItemResponse": results, "time": _now()}

    def _create(self, invoice: Any, allow_dup: bool, kind: str = "Invoice") -> tuple[int, dict[str, Any]]:
        problem = self._invalid(invoice, allow_dup, kind)
        if problem is not None:
            return 400, problem
        stored = self._store(invoice, kind)
        return 200, {kind: stored, "time": _now()}

    def _invalid(self, invoice: Any, allow_dup: bool, kind: str = "Invoice") -> dict[str, Any] | None:
        if not isinstance(invoice, dict):
            return validation_fault("2010", "Request has invalid or unsupported property", kind)
        customer = (invoice.get("CustomerRef") or {}).get("value")
        if not customer:
            return validation_fault("6560", "CustomerRef is missing", "An invoice needs a customer")
        if str(customer) not in self.customers:
            return validation_fault(
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : CustomerRef {customer} does not exist or is inactive",
                "CustomerRef",
            )
        doc = invoice.get("DocNumber")
        if doc is not None and (not isinstance(doc, str) or len(doc) > 21):
            return validation_fault(
                "2050",
                "String length is either shorter or longer than supported by specification",
                f"String length specified does not match the supported length. Min:0 Max:21 supported. "
                f"Supplied length:{len(str(doc))}",
                "DocNumber",
            )
        if doc and not allow_dup:
            # Numbers are unique per transaction type: an invoice and a credit memo may share one.
            for existing in self._documents[kind].values():
                if existing.get("DocNumber") == doc:
                    return validation_fault(
                        "6140",
                        "Duplicate Document Number Error",
                        "Duplicate Document Number Error : You must specify a different number. This number "
                        f"has already been used. DocNumber={doc} is assigned to TxnType={_TXN_TYPES[kind]} "
                        f"with TxnId={existing['Id']}",
                    )
        lines = invoice.get("Line")
        if not isinstance(lines, list) or not lines:
            return validation_fault("2020", "Required param missing", "Line", "Line")
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict) or line.get("DetailType") != "SalesItemLineDetail":
                return validation_fault(
                    "2010", "Request has invalid or unsupported property", f"Line {number}"
                )
            detail = line.get("SalesItemLineDetail") or {}
            for value, name in (
                (line.get("Amount"), "Amount"),
                (detail.get("Qty"), "Qty"),
                (detail.get("UnitPrice"), "UnitPrice"),
            ):
                if value is not None and not _is_number(value):
                    return validation_fault("2010", "Invalid number", f"Line {number} {name}={value!r}", name)
            if not _is_number(line.get("Amount")):
                return validation_fault("2020", "Required param missing", f"Line {number} Amount", "Amount")
            item = str((detail.get("ItemRef") or {}).get("value", ""))
            if item not in self.items:
                return validation_fault(
                    "2500",
                    "Invalid Reference Id",
                    f"Invalid Reference Id : ItemRef {item} does not exist",
                    "ItemRef",
                )
        problem = self._invalid_tax(invoice, lines)
        if problem is not None:
            return problem
        term = (invoice.get("SalesTermRef") or {}).get("value")
        if term is not None and str(term) not in self.terms:
            return validation_fault("2500", "Invalid Reference Id", f"SalesTermRef {term} does not exist")
        for field in invoice.get("CustomField") or []:
            if str(field.get("DefinitionId")) not in self.custom_fields:
                return validation_fault(
                    "2010", "Invalid custom field", f"DefinitionId {field.get('DefinitionId')} is not defined"
                )
        return None

    def _invalid_tax(self, invoice: dict[str, Any], lines: list[Any]) -> dict[str, Any] | None:
        if self.tax_mode == "none":
            return None
        active = {cid for cid, code in self.tax_codes.items() if code.get("Active", True)}
        known = set(US_TAX_CODES) | active if self.tax_mode == "us" else active
        for number, line in enumerate(lines, start=1):
            ref = (line.get("SalesItemLineDetail") or {}).get("TaxCodeRef")
            value = str((ref or {}).get("value", ""))
            if not value and self.tax_mode == "global":
                return validation_fault(
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: Make sure all your transactions have a VAT rate "
                    "before you save.",
                )
            if value and value not in known:
                return validation_fault(
                    "2500",
                    "Invalid Reference Id",
                    f"Invalid Reference Id : Line {number} TaxCodeRef {value} does not exist or is inactive",
                    "Line.SalesItemLineDetail.TaxCodeRef",
                )
        detail = invoice.get("TxnTaxDetail") or {}
        txn_code = str((detail.get("TxnTaxCodeRef") or {}).get("value", ""))
        if txn_code and txn_code not in active:
            return validation_fault(
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : TxnTaxCodeRef {txn_code} does not exist",
                "TxnTaxDetail.TxnTaxCodeRef",
            )
        if "TotalTax" in detail and not _is_number(detail["TotalTax"]):
            return validation_fault("2010", "Invalid number", f"TotalTax={detail['TotalTax']!r}", "TotalTax")
        for tax_line in detail.get("TaxLine") or []:
            rate = str(((tax_line.get("TaxLineDetail") or {}).get("TaxRateRef") or {}).get("value", ""))
            if rate not in self.tax_rates:
                return validation_fault(
                    "2500", "Invalid Reference Id", f"Invalid Reference Id : TaxRate {rate}", "TaxRateRef"
                )
        return None

    def _tax_detail(self, invoice: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
        """The TxnTaxDetail the company stores: the stated tax where it is kept, else its own."""
        given = dict(invoice.get("TxnTaxDetail") or {})
        stated = given.get("TotalTax")
        if self.tax_mode == "us":
            if stated is not None and not self.rerounds_tax:
                return {**given, "TotalTax": _cents(Decimal(stated))}
            if not self.automated_sales_tax:
                return {**given, "TotalTax": _cents(Decimal(stated or 0))}
            taxable = [line for line in lines if _line_code(line) != "NON"]
            if self.rerounds_tax:
                tax = sum(
                    (_cents(Decimal(line["Amount"]) * self.ast_rate / 100) for line in taxable), Decimal(0)
                )
            else:
                tax = _cents(
                    sum((Decimal(line["Amount"]) for line in taxable), Decimal(0)) * self.ast_rate / 100
                )
            return {**given, "TotalTax": tax}
        if stated is not None and given.get("TaxLine") and not self.rerounds_tax:
            return {**given, "TotalTax": _cents(Decimal(stated))}
        by_rate: dict[str, list[Decimal]] = {}
        for line in lines:
            for rate_id in self.tax_codes.get(_line_code(line), {}).get("rates", []):
                by_rate.setdefault(rate_id, []).append(Decimal(line["Amount"]))
        tax_lines = []
        for rate_id, amounts in by_rate.items():
            percent = self.tax_rates[rate_id]
            tax_lines.append(
                {
                    "Amount": sum((_cents(a * percent / 100) for a in amounts), Decimal(0)),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": percent,
                        "NetAmountTaxable": sum(amounts, Decimal(0)),
                    },
                }
            )
        total = sum((t["Amount"] for t in tax_lines), Decimal(0))
        return {"TotalTax": _cents(total), "TaxLine": tax_lines}

    def _store(self, invoice: dict[str, Any], kind: str = "Invoice") -> dict[str, Any]:
        self._next_id += 1
        stored = dict(invoice)
        stored["Id"] = str(self._next_id)
        stored["SyncToken"] = "0"
        stored["domain"] = "QBO"
        stored["sparse"] = False
        stamp = _now()
        stored["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        customer = str((invoice.get("CustomerRef") or {}).get("value", ""))
        stored["CustomerRef"] = {"value": customer, "name": self.customers.get(customer, "")}
        stored.setdefault("CurrencyRef", {"value": "USD"})
        lines = [dict(line) for line in invoice.get("Line") or []]
        total = sum((Decimal(line.get("Amount", 0)) for line in lines), Decimal(0))
        for number, line in enumerate(lines, start=1):
            line["Id"] = str(number)
            line.setdefault("LineNum", number)
        tax = Decimal(0)
        if self.tax_mode != "none":
            stored["TxnTaxDetail"] = self._tax_detail(invoice, lines)
            tax = stored["TxnTaxDetail"]["TotalTax"]
        lines.append({"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        stored["Line"] = lines
        stored["TotalAmt"] = total + tax
        stored["Balance"] = total + tax
        if kind == "CreditMemo":
            stored["RemainingCredit"] = total + tax  # applied to no invoice yet
        stored["CustomField"] = [
            {
                "DefinitionId": str(f.get("DefinitionId")),
                "Name": self.custom_fields.get(str(f.get("DefinitionId")), ""),
                "Type": "StringType",
                "StringValue": f.get("StringValue", ""),
            }
            for f in invoice.get("CustomField") or []
        ]
        self._documents[kind][stored["Id"]] = stored
        return stored

    # -- query ----------------------------------------------------------------------------
    def _query(self, statement: str) -> tuple[int, dict[str, Any]]:
        match = _SELECT.match(statement)
        if match is None or match["entity"] not in ("Invoice", "CreditMemo", "TaxCode", "TaxRate"):
            return 400, self._parse_error(statement)
        where = (match["where"] or "").strip()
        kind = match["entity"]
        if kind not in self._documents:
            if where:
                return 400, self._parse_error(statement)
            listed = self._tax_entities(match["entity"])
            return 200, {
                "QueryResponse": {match["entity"]: listed, "startPosition": 1, "maxResults": len(listed)}
                if listed
                else {},
                "time": _now(),
            }
        if not where:
            wanted: set[str] | None = None
        elif (eq := _WHERE_EQ.match(where)) is not None:
            wanted = set(_literals(eq["value"]))
        elif (inn := _WHERE_IN.match(where)) is not None:
            values = inn["values"]
            if _LITERAL.sub("", values).replace(",", "").strip():
                return 400, self._parse_error(statement)
            wanted = set(_literals(values))
        else:
            return 400, self._parse_error(statement)
        start = int(match["start"] or 1)
        limit = min(int(match["max"] or 100), 1000)
        with self.lock:
            rows = [
                row
                for row in self._documents[kind].values()
                if wanted is None or row.get("DocNumber") in wanted
            ]
        page = rows[start - 1 : start - 1 + limit]
        response: dict[str, Any] = {}
        if page:
            response = {kind: page, "startPosition": start, "maxResults": len(page)}
        return 200, {"QueryResponse": response, "time": _now()}

    def _tax_entities(self, entity: str) -> list[dict[str, Any]]:
        if self.tax_mode == "none":
            return []
        if entity == "TaxRate":
            return [
                {"Id": rid, "Name": f"{percent}%", "RateValue": percent, "Active": True}
                for rid, percent in self.tax_rates.items()
            ]
        return [
            {
                "Id": cid,
                "Name": code.get("Name", cid),
                "Active": code.get("Active", True),
                "Taxable": True,
                "TaxGroup": len(code.get("rates", [])) > 1,
                "SalesTaxRateList": {
                    "TaxRateDetail": [
                        {"TaxRateRef": {"value": rid}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}
                        for rid in code.get("rates", [])
                    ]
                },
            }
            for cid, code in self.tax_codes.items()
        ]

    @staticmethod
    def _parse_error(statement: str) -> dict[str, Any]:
        return {
            "Fault": {
                "Error": [
                    {
                        "Message": "Error parsing query",
                        "Detail": f"QueryParserError: unsupported statement: {statement[:200]}",
                        "code": "4000",
                    }
                ],
                "type": "ValidationFault",
            },
            "time": _now(),
        }


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _line_code(line: dict[str, Any]) -> str:
    return str(((line.get("SalesItemLineDetail") or {}).get("TaxCodeRef") or {}).get("value", ""))


def _literals(text: str) -> Iterable[str]:
    for raw in _LITERAL.findall(text):
        yield re.sub(r"\\(.)", r"\1", raw)
