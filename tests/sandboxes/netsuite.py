"""A NetSuite SuiteTalk REST sandbox: invoice records, external-id upsert, SuiteQL, governance.

Behaves like the real service where the connector depends on it:
- `PUT /services/rest/record/v1/invoice/eid:{id}` upserts: creates when absent, updates when
  present, answers `204 No Content` with `Location: .../record/v1/invoice/{internal id}`. On an
  update the `item` sublist is APPENDED to the existing lines unless the query says
  `replace=item`, as NetSuite does for non-keyed sublists;
- `GET .../record/v1/invoice/eid:{id}` or `/{internal id}`: the record with its `total`;
- `POST /services/rest/query/v1/suiteql` (header `Prefer: transient`): `SELECT cols FROM
  transaction WHERE col = 'v' AND col IN ('a', 'b')`, values answered as strings;
- errors in NetSuite's shape (`o:errorDetails[].detail`, `o:errorCode`): unknown customer or item
  -> 400 `USER_ERROR`, unknown record -> 404 `NONEXISTENT_ID`, bad token -> 401 `INVALID_LOGIN`;
- SuiteTax: `GET .../record/v1/salesTaxItem/{id}` reads a tax code; an invoice with
  `taxDetailsOverride: true` keeps the `taxDetails` lines it states (each must name an item
  line's `taxDetailsReference` and an active tax code, else 400 `USER_ERROR`); without the
  override the account's tax engine computes the tax itself, per line at the rate of
  `default_tax_code` (the nexus default), rounded per line, so an invoice sent without its tax
  gains one; `taxTotal` is the sum of the tax lines and `total` = subtotal + taxTotal;
- account governance: more than `concurrency_limit` requests in flight -> 429
  `CONCURRENCY_LIMIT_EXCEEDED`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.sandboxes.base import Reply, Request, Sandbox

PREFIX = "/services/rest"
_INVOICE = re.compile(r"^/services/rest/record/v1/invoice/(?:eid:(?P<eid>[^/]+)|(?P<id>\d+))$")
_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+transaction(?:\s+WHERE\s+(?P<where>.+?))?\s*$", re.I | re.S
)
_EQUALS = re.compile(r"^(?P<col>\w+)\s*=\s*'(?P<value>[^']*)'$")
_IN = re.compile(r"^(?P<col>\w+)\s+IN\s*\((?P<values>.*)\)$", re.I | re.S)
_TAX_CODE = re.compile(r"^/services/rest/record/v1/salesTaxItem/(?P<id>\d+)$")
_TYPE_URL = "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1"

# The tax codes of a SuiteTax account that invoices the example's customers (rates in percent).
TAX_CODES: dict[str, dict[str, Any]] = {
    "11": {"name": "US-NY Sales Tax", "rate": Decimal("8.875")},
    "12": {"name": "US-TX Sales Tax", "rate": Decimal("8.25")},
    "13": {"name": "US-CA Sales Tax", "rate": Decimal("7.25")},
    "14": {"name": "US-MA Sales Tax", "rate": Decimal("6.25")},
    "20": {"name": "UK Standard 20%", "rate": Decimal("20")},
    "30": {"name": "EU Reverse Charge", "rate": Decimal("0")},
    "90": {"name": "Retired 17.5%", "rate": Decimal("17.5"), "isInactive": True},
}


def ns_error(status: int, title: str, detail: str, code: str, path: str = "") -> Reply:
    """A reply in NetSuite's REST error shape."""
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    body = {"type": _TYPE_URL, "title": title, "status": status, "o:errorDetails": [item]}
    return Reply(status, body, content_type="application/vnd.oracle.resource+json; type=error")


class NetSuiteSandbox(Sandbox):
    """In-memory NetSuite account: `invoices` maps internal id -> invoice record."""

    def __init__(
        self,
        *,
        token: str = "ns-token-1234",
        customers: set[str] | None = None,
        items: set[str] | None = None,
        concurrency_limit: int = 5,
        latency: float = 0.0,
        tax_codes: dict[str, dict[str, Any]] | None = None,
        default_tax_code: str | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.customers = customers if customers is not None else {"101", "102"}
        self.items = items if items is not None else {"501", "502"}
        self.concurrency_limit = concurrency_limit
        self.latency = latency
        self.invoices: dict[str, dict[str, Any]] = {}
        # salesTaxItem internal id -> {"name", "rate" (percent), "isInactive"}
        self.tax_codes = tax_codes if tax_codes is not None else dict(TAX_CODES)
        self.default_tax_code = default_tax_code
        self.concurrency_rejections = 0
        self._in_flight = 0
        self._next_id = 1001
        self._gate = threading.Lock()

    # -- helpers for assertions --------------------------------------------------------
    def by_external_id(self, external_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((r for r in self.invoices.values() if r["externalId"] == external_id), None)

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        if request.header("authorization") != f"Bearer {self.token}":
            return ns_error(
                401,
                "Unauthorized",
                "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
                "at Setup > Users/Roles > User Management > View Login Audit Trail.",
                "INVALID_LOGIN",
            )
        with self._gate:
            if self._in_flight >= self.concurrency_limit:
                self.concurrency_rejections += 1
                return ns_error(
                    429,
                    "Too Many Requests",
                    "Concurrent request limit exceeded. Request blocked.",
                    "CONCURRENCY_LIMIT_EXCEEDED",
                )
            self._in_flight += 1
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._route(request)
        finally:
            with self._gate:
                self._in_flight -= 1

    def _route(self, request: Request) -> Reply:
        match = _INVOICE.match(request.path)
        if match and request.method == "PUT" and match["eid"]:
            return self._upsert(match["eid"], request)
        if match and request.method == "GET":
            return self._get(match["eid"], match["id"])
        tax_code = _TAX_CODE.match(request.path)
        if tax_code and request.method == "GET":
            return self._get_tax_code(tax_code["id"])
        if request.path == f"{PREFIX}/query/v1/suiteql" and request.method == "POST":
            return self._suiteql(request)
        return ns_error(404, "Not Found", f"Unknown resource {request.method} {request.path}.", "INVALID_URL")

    # -- records -------------------------------------------------------------------------
    def _upsert(self, external_id: str, request: Request) -> Reply:
        try:
            body = json.loads(request.body.decode("utf-8"), parse_float=Decimal)
        except ValueError as exc:
            return ns_error(400, "Bad Request", f"Invalid JSON: {exc}.", "INVALID_CONTENT")
        entity = str((body.get("entity") or {}).get("id", ""))
        if entity not in self.customers:
            return ns_error(
                400,
                "Bad Request",
                f"Error while accessing a resource. You have entered an Invalid Field Value {entity} "
                "for the following field: entity",
                "USER_ERROR",
                "entity",
            )
        lines = []
        for index, line in enumerate((body.get("item") or {}).get("items", [])):
            item = str((line.get("item") or {}).get("id", ""))
            if item not in self.items:
                return ns_error(
                    400,
                    "Bad Request",
                    f"Error while accessing a resource. You have entered an Invalid Field Value {item} "
                    "for the following field: item",
                    "USER_ERROR",
                    f"item.items[{index}].item",
                )
            quantity = Decimal(str(line.get("quantity", "1")))
            rate = Decimal(str(line.get("rate", "0")))
            amount = Decimal(str(line["amount"])) if "amount" in line else quantity * rate
            lines.append(
                {
                    "item": item,
                    "quantity": quantity,
                    "rate": rate,
                    "amount": amount,
                    "description": line.get("description", ""),
                    "taxDetailsReference": str(line.get("taxDetailsReference", "")),
                }
            )
        override = body.get("taxDetailsOverride") is True
        stated = self._stated_tax(body, lines) if override else []
        if isinstance(stated, Reply):
            return stated
        replace = {name.strip() for value in request.query.get("replace", []) for name in value.split(",")}
        header = {k: v for k, v in body.items() if k not in ("item", "taxDetails")}
        with self.lock:
            record = self.by_external_id(external_id)
            if record is None:
                record = {"id": str(self._next_id), "externalId": external_id, "lines": []}
                self._next_id += 1
                self.invoices[record["id"]] = record
            record.update(header)
            record["externalId"] = external_id
            record["lines"] = lines if "item" in replace else record["lines"] + lines
            record["taxDetails"] = stated if override else self._engine_tax(record["lines"])
            record["subtotal"] = sum((line["amount"] for line in record["lines"]), Decimal(0))
            record["taxTotal"] = sum((tax["taxAmount"] for tax in record["taxDetails"]), Decimal(0))
            record["total"] = record["subtotal"] + record["taxTotal"]
            internal_id = record["id"]
        return Reply(204, b"", {"Location": f"{self.url}{PREFIX}/record/v1/invoice/{internal_id}"})

    # -- SuiteTax -------------------------------------------------------------------------
    def _stated_tax(self, body: dict[str, Any], lines: list[dict[str, Any]]) -> list[dict[str, Any]] | Reply:
        """The override's tax lines, checked as NetSuite checks them."""
        references = {line["taxDetailsReference"] for line in lines if line["taxDetailsReference"]}
        taxes = []
        for index, tax in enumerate((body.get("taxDetails") or {}).get("items", [])):
            path = f"taxDetails.items[{index}]"
            reference = str(tax.get("taxDetailsReference", ""))
            if reference not in references:
                return ns_error(
                    400,
                    "Bad Request",
                    f"Invalid taxDetailsReference {reference!r}: no item line has it.",
                    "USER_ERROR",
                    f"{path}.taxDetailsReference",
                )
            code = str((tax.get("taxCode") or {}).get("id", ""))
            known = self.tax_codes.get(code)
            if known is None or known.get("isInactive"):
                return ns_error(
                    400,
                    "Bad Request",
                    "Error while accessing a resource. You have entered an Invalid Field Value "
                    f"{code} for the following field: taxCode",
                    "USER_ERROR",
                    f"{path}.taxCode",
                )
            try:
                amount = Decimal(str(tax["taxAmount"]))
                basis = Decimal(str(tax.get("taxBasis", "0")))
            except (KeyError, ArithmeticError):
                return ns_error(400, "Bad Request", f"{path}: taxAmount is required.", "USER_ERROR", path)
            taxes.append(
                {
                    "taxDetailsReference": reference,
                    "taxCode": code,
                    "taxBasis": basis,
                    "taxRate": Decimal(str(tax.get("taxRate", known["rate"]))),
                    "taxAmount": amount,
                }
            )
        return taxes

    def _engine_tax(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the account's tax engine adds to an invoice that states no tax of its own."""
        if self.default_tax_code is None:
            return []
        rate = Decimal(str(self.tax_codes[self.default_tax_code]["rate"]))
        return [
            {
                "taxDetailsReference": line["taxDetailsReference"],
                "taxCode": self.default_tax_code,
                "taxBasis": line["amount"],
                "taxRate": rate,
                "taxAmount": (line["amount"] * rate / 100).quantize(Decimal("0.01"), ROUND_HALF_UP),
            }
            for line in lines
        ]

    def _get_tax_code(self, code: str) -> Reply:
        known = self.tax_codes.get(code)
        if known is None:
            return ns_error(
                404,
                "Record Not Found",
                "The record instance does not exist. Provide a valid record instance ID.",
                "NONEXISTENT_ID",
            )
        body = {"id": code, "itemType": "TaxItem", "isInactive": False, **known}
        return Reply(200, json.dumps(body, default=_number))

    def _get(self, external_id: str | None, internal_id: str | None) -> Reply:
        with self.lock:
            record = self.by_external_id(external_id) if external_id else self.invoices.get(internal_id or "")
            if record is None:
                return ns_error(
                    404,
                    "Record Not Found",
                    "The record instance does not exist. Provide a valid record instance ID.",
                    "NONEXISTENT_ID",
                )
            body = {k: v for k, v in record.items() if k not in ("lines", "taxDetails")}
            link = f"{self.url}{PREFIX}/record/v1/invoice/{record['id']}"
            body["links"] = [{"rel": "self", "href": link}]
            body["item"] = {"links": [{"rel": "self", "href": f"{link}/item"}]}
        return Reply(200, json.dumps(body, default=_number))

    # -- SuiteQL --------------------------------------------------------------------------
    def _suiteql(self, request: Request) -> Reply:
        if request.header("prefer").lower() != "transient":
            return ns_error(
                400, "Bad Request", "The request header 'Prefer' must be 'transient'.", "INVALID_HEADER"
            )
        try:
            query = str(request.json()["q"])
        except (ValueError, KeyError, TypeError):
            return ns_error(400, "Bad Request", "The request body must have a 'q' field.", "INVALID_CONTENT")
        parsed = _SELECT.match(query)
        if parsed is None:
            return ns_error(400, "Bad Request", f"Invalid search query: {query}", "INVALID_PARAMETER")
        columns = [c.strip().lower() for c in parsed["cols"].split(",")]
        try:
            conditions = _conditions(parsed["where"] or "")
        except ValueError as exc:
            return ns_error(400, "Bad Request", f"Invalid search query: {exc}", "INVALID_PARAMETER")
        with self.lock:
            rows = [_transaction_row(r) for r in self.invoices.values()]
        selected = [
            {"links": [], **{c: row.get(c) for c in columns}}
            for row in rows
            if all(str(row.get(col, "")).lower() in allowed for col, allowed in conditions)
        ]
        limit = int(request.arg("limit", "1000") or 1000)
        offset = int(request.arg("offset", "0") or 0)
        page = selected[offset : offset + limit]
        return Reply(
            200,
            {
                "links": [],
                "count": len(page),
                "hasMore": offset + limit < len(selected),
                "items": page,
                "offset": offset,
                "totalResults": len(selected),
            },
        )


def _conditions(where: str) -> list[tuple[str, set[str]]]:
    conditions = []
    for part in re.split(r"\s+AND\s+", where.strip(), flags=re.I) if where.strip() else []:
        if match := _EQUALS.match(part.strip()):
            conditions.append((match["col"].lower(), {match["value"].lower()}))
        elif match := _IN.match(part.strip()):
            values = {v.strip().strip("'").lower() for v in match["values"].split(",")}
            conditions.append((match["col"].lower(), values))
        else:
            raise ValueError(f"unsupported condition {part!r}")
    return conditions


def _transaction_row(record: dict[str, Any]) -> dict[str, str]:
    # SuiteQL answers every value as a string, the type code of an invoice is CustInvc.
    return {
        "id": record["id"],
        "externalid": record["externalId"],
        "tranid": str(record.get("tranId", "")),
        "otherrefnum": str(record.get("otherRefNum", "")),
        "type": "CustInvc",
        "foreigntotal": f"{record['total']:f}",
    }


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)
