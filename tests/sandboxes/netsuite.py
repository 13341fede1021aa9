"""A NetSuite SuiteTalk REST sandbox: invoice and credit memo records, external-id upsert, the
invoice -> credit memo transform, SuiteQL, governance.

Behaves like the real service where the connector depends on it:
- `PUT /services/rest/record/v1/invoice/eid:{id}` upserts: creates when absent, updates when
  present, answers `204 No Content` with `Location: .../record/v1/invoice/{internal id}`. On an
  update the `item` sublist is APPENDED to the existing lines unless the query says
  `replace=item`, as NetSuite does for non-keyed sublists;
- `POST .../record/v1/invoice/{id or eid:x}/!transform/creditMemo` creates a credit memo from the
  invoice: it starts as a copy of the invoice (customer, currency, subsidiary, PO #, its item and
  tax lines, its tax override), `createdFrom` is the invoice, and the body's fields are set on top.
  The body's item (and tax) lines are APPENDED to the copied ones unless `replace` names the
  sublist, as for any create that starts with lines. The credit is applied to the invoice: the
  credit memo's `apply` names it with the amount applied, and the invoice's `amountRemaining` drops
  by it. Answers `204` with `Location: .../record/v1/creditMemo/{internal id}`. Refused: an unknown
  invoice (404 `NONEXISTENT_ID`), another customer than the invoice's, no item line, and an
  `externalId` another credit memo already has (400 `USER_ERROR`; NetSuite refuses a second record
  with the same external id with a 400, its exact wording here is not NetSuite's own);
- `GET .../record/v1/{invoice|creditMemo}/eid:{id}` or `/{internal id}`: the record with its
  `total`, `taxTotal`, `amountRemaining` (invoice), `createdFrom`, `applied`, `unapplied` (credit);
- `POST /services/rest/query/v1/suiteql` (header `Prefer: transient`): `SELECT cols FROM
  transaction WHERE col = 'v' AND col IN ('a', 'b')` over invoices (type `CustInvc`) and credit
  memos (type `CustCred`, `foreigntotal` negative), values answered as strings;
- errors in NetSuite's shape (`o:errorDetails[].detail`, `o:errorCode`): unknown customer or item
  -> 400 `USER_ERROR`, unknown record -> 404 `NONEXISTENT_ID`, bad token -> 401 `INVALID_LOGIN`;
- SuiteTax: `GET .../record/v1/salesTaxItem/{id}` reads a tax code; a record with
  `taxDetailsOverride: true` keeps the `taxDetails` lines it states (each must name an item
  line's `taxDetailsReference` and an active tax code, else 400 `USER_ERROR`); without the
  override the account's tax engine computes the tax itself, per line at the rate of
  `default_tax_code` (the nexus default), rounded per line, so an invoice sent without its tax
  gains one; `taxTotal` is the sum of the tax lines and `total` = subtotal + taxTotal;
- account governance: more than `concurrency_limit` requests in flight -> 429
  `CONCURRENCY_LIMIT_EXCEEDED`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from decimal import Decimal
from typing import Any

from tests.sandboxes.base import Reply, Request, Sandbox
from tests.sandboxes.netsuite_query import CREDIT_MEMO_TYPE, INVOICE_TYPE, select, transaction_row
from tests.sandboxes.netsuite_records import (
    TAX_CODES,
    engine_tax,
    invalid_value,
    item_lines,
    ns_error,
    number,
    stated_tax,
    total_up,
)

__all__ = ["PREFIX", "TAX_CODES", "NetSuiteSandbox", "ns_error"]

PREFIX = "/services/rest"
_RECORD = re.compile(
    r"^/services/rest/record/v1/(?P<type>invoice|creditMemo)/(?:eid:(?P<eid>[^/]+)|(?P<id>\d+))$"
)
_TRANSFORM = re.compile(
    r"^/services/rest/record/v1/invoice/(?:eid:(?P<eid>[^/]+)|(?P<id>\d+))/!transform/creditMemo$"
)
_TAX_CODE = re.compile(r"^/services/rest/record/v1/salesTaxItem/(?P<id>\d+)$")
_SUBLISTS = ("item", "taxDetails", "apply")


def _not_found() -> Reply:
    return ns_error(
        404,
        "Record Not Found",
        "The record instance does not exist. Provide a valid record instance ID.",
        "NONEXISTENT_ID",
    )


class NetSuiteSandbox(Sandbox):
    """In-memory NetSuite account: `invoices` and `credit_memos` map internal id -> record."""

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
        self.credit_memos: dict[str, dict[str, Any]] = {}
        # salesTaxItem internal id -> {"name", "rate" (percent), "isInactive"}
        self.tax_codes = tax_codes if tax_codes is not None else dict(TAX_CODES)
        self.default_tax_code = default_tax_code
        self.concurrency_rejections = 0
        self._in_flight = 0
        self._next_id = 1001  # one sequence for every transaction type, as NetSuite numbers them
        self._gate = threading.Lock()

    # -- helpers for assertions --------------------------------------------------------
    def by_external_id(self, external_id: str) -> dict[str, Any] | None:
        """The invoice with this external id."""
        with self.lock:
            return next((r for r in self.invoices.values() if r["externalId"] == external_id), None)

    def credit_memo(self, external_id: str) -> dict[str, Any] | None:
        """The credit memo with this external id."""
        with self.lock:
            return next((r for r in self.credit_memos.values() if r["externalId"] == external_id), None)

    def credits_of(self, invoice_id: str) -> list[dict[str, Any]]:
        """The credit memos made from the invoice with this internal id."""
        with self.lock:
            return [r for r in self.credit_memos.values() if r["createdFrom"]["id"] == invoice_id]

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
        record = _RECORD.match(request.path)
        if record and request.method == "PUT" and record["type"] == "invoice" and record["eid"]:
            return self._upsert(record["eid"], request)
        if record and request.method == "GET":
            return self._get(record["type"], record["eid"], record["id"])
        transform = _TRANSFORM.match(request.path)
        if transform and request.method == "POST":
            return self._transform(transform["eid"], transform["id"], request)
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
            return invalid_value(entity, "entity", "entity")
        lines = item_lines(body, self.items)
        if isinstance(lines, Reply):
            return lines
        override = body.get("taxDetailsOverride") is True
        stated = stated_tax(body, lines, self.tax_codes) if override else []
        if isinstance(stated, Reply):
            return stated
        replace = _replaced(request)
        header = {k: v for k, v in body.items() if k not in _SUBLISTS}
        with self.lock:
            record = self.by_external_id(external_id)
            if record is None:
                record = {"id": str(self._next_id), "externalId": external_id, "lines": []}
                self._next_id += 1
                self.invoices[record["id"]] = record
            record.update(header)
            record["externalId"] = external_id
            record["lines"] = lines if "item" in replace else record["lines"] + lines
            record["taxDetails"] = (
                stated if override else engine_tax(record["lines"], self.tax_codes, self.default_tax_code)
            )
            total_up(record)
            credited = sum((memo["applied"] for memo in self.credits_of(record["id"])), Decimal(0))
            record["amountRemaining"] = record["total"] - credited
            internal_id = record["id"]
        return Reply(204, b"", {"Location": f"{self.url}{PREFIX}/record/v1/invoice/{internal_id}"})

    def _transform(self, external_id: str | None, internal_id: str | None, request: Request) -> Reply:
        try:
            body = json.loads(request.body.decode("utf-8") or "{}", parse_float=Decimal)
        except ValueError as exc:
            return ns_error(400, "Bad Request", f"Invalid JSON: {exc}.", "INVALID_CONTENT")
        with self.lock:
            invoice = self._find("invoice", external_id, internal_id)
            if invoice is None:
                return _not_found()
            entity = str((body.get("entity") or {}).get("id", "")) or invoice["entity"]["id"]
            if entity != invoice["entity"]["id"]:
                return invalid_value(entity, "entity", "entity")
            added = item_lines(body, self.items)
            if isinstance(added, Reply):
                return added
            replace = _replaced(request)
            lines = added if "item" in replace else copy.deepcopy(invoice["lines"]) + added
            if not lines:
                return ns_error(
                    400,
                    "Bad Request",
                    "You must enter at least one line item for this transaction.",
                    "USER_ERROR",
                    "item",
                )
            override = body.get("taxDetailsOverride", invoice.get("taxDetailsOverride")) is True
            stated = stated_tax(body, lines, self.tax_codes) if override else []
            if isinstance(stated, Reply):
                return stated
            memo_id = str(body.get("externalId") or "")
            if memo_id and self.credit_memo(memo_id) is not None:
                return ns_error(
                    400,
                    "Bad Request",
                    f"A credit memo with external ID {memo_id} already exists.",
                    "USER_ERROR",
                    "externalId",
                )
            record = self._credit_memo_from(invoice, body, lines)
            if override:
                copied = [] if "taxDetails" in replace else copy.deepcopy(invoice["taxDetails"])
                record["taxDetails"] = copied + stated
            else:
                record["taxDetails"] = engine_tax(lines, self.tax_codes, self.default_tax_code)
            total_up(record)
            applied = min(record["total"], invoice["amountRemaining"])
            record["apply"] = [{"doc": {"id": invoice["id"]}, "apply": True, "amount": applied}]
            record["applied"] = applied
            record["unapplied"] = record["total"] - applied
            invoice["amountRemaining"] -= applied
            self.credit_memos[record["id"]] = record
        return Reply(204, b"", {"Location": f"{self.url}{PREFIX}/record/v1/creditMemo/{record['id']}"})

    def _credit_memo_from(
        self, invoice: dict[str, Any], body: dict[str, Any], lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A new credit memo: the invoice's header (not its number, dates or terms), the body's
        fields on top, created from the invoice."""
        copied = ("entity", "currency", "subsidiary", "otherRefNum", "memo", "taxDetailsOverride")
        record: dict[str, Any] = {key: copy.deepcopy(invoice[key]) for key in copied if key in invoice}
        record.update({k: v for k, v in body.items() if k not in _SUBLISTS})
        record.update(
            {
                "id": str(self._next_id),
                "externalId": str(body.get("externalId") or ""),
                "createdFrom": {"id": invoice["id"]},
                "lines": lines,
            }
        )
        self._next_id += 1
        return record

    def _find(self, kind: str, external_id: str | None, internal_id: str | None) -> dict[str, Any] | None:
        records = self.invoices if kind == "invoice" else self.credit_memos
        if external_id:
            return next((r for r in records.values() if r["externalId"] == external_id), None)
        return records.get(internal_id or "")

    def _get_tax_code(self, code: str) -> Reply:
        known = self.tax_codes.get(code)
        if known is None:
            return _not_found()
        body = {"id": code, "itemType": "TaxItem", "isInactive": False, **known}
        return Reply(200, json.dumps(body, default=number))

    def _get(self, kind: str, external_id: str | None, internal_id: str | None) -> Reply:
        with self.lock:
            record = self._find(kind, external_id, internal_id)
            if record is None:
                return _not_found()
            body = {k: v for k, v in record.items() if k not in ("lines", "taxDetails", "apply")}
            link = f"{self.url}{PREFIX}/record/v1/{kind}/{record['id']}"
            body["links"] = [{"rel": "self", "href": link}]
            body["item"] = {"links": [{"rel": "self", "href": f"{link}/item"}]}
        return Reply(200, json.dumps(body, default=number))

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
        with self.lock:
            rows = [transaction_row(r, INVOICE_TYPE) for r in self.invoices.values()]
            rows += [transaction_row(r, CREDIT_MEMO_TYPE) for r in self.credit_memos.values()]
        try:
            selected = select(query, rows)
        except ValueError as exc:
            return ns_error(400, "Bad Request", f"Invalid search query: {exc}", "INVALID_PARAMETER")
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


def _replaced(request: Request) -> set[str]:
    """The sublists the `replace` query parameter names."""
    return {name.strip() for value in request.query.get("replace", []) for name in value.split(",")}
