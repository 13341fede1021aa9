"""The `netsuite` invoice sink: SuiteTalk REST record upsert by external id, credit memos by
transforming the invoice they credit.

Each plan becomes `PUT /record/v1/invoice/eid:{invoice number}?replace=item`. The external id
makes the upsert idempotent by construction; `replace=item` is what keeps a re-sent upsert from
appending the lines a second time (NetSuite appends non-keyed sublist lines on update unless
the sublist is named in `replace`), so every upsert this sink sends carries it.

NetSuite answers an upsert with `204 No Content` and a `Location` header naming the record;
there is no body and no `Prefer: return=representation` on record writes. A push is therefore
one call: the internal id comes from `Location`, and the reported total is the sum of the lines
just written, which `replace=item` makes the whole invoice. Set `read_back = true` to confirm each
push with `GET .../invoice/eid:{number}` and report NetSuite's own total (two calls per invoice);
`find()` always reports NetSuite's `foreigntotal`, batched through one SuiteQL query per 100 plans.

A taxed plan is written with its tax stated (SuiteTax Tax Details with the override on, see
`adapters.netsuite_tax`), so NetSuite's tax engine does not add a tax of its own; `read_back`
then reports NetSuite's `taxTotal` beside the total.

A credit note becomes a credit memo by the record transform NetSuite documents for making one
record from another: `POST /record/v1/invoice/{id}/!transform/creditMemo`, `{id}` being the
internal id the outbox recorded for the invoice (`credits.remote_id`; its `eid:` when there is
none). NetSuite copies the invoice into the credit memo, sets `createdFrom` to it and applies the
credit to it (the invoice's amount remaining drops by the credit). The body adds the credit note's
number as `externalId` and `tranId`, its date and memo, its lines with `replace=item` (a
transformed record starts with the invoice's lines, and a create appends non-keyed lines to the
ones it starts with) and, when taxed, the same Tax Details override as the invoice, with
`replace=item,taxDetails`. A transform is a create, not an upsert: a lost answer is reported as
uncertain and the core looks the credit memo up (SuiteQL, type `CustCred`, by external id) before
anything is sent again; NetSuite refuses a second record with the same external id, and that
refusal is resolved by the same lookup. `find()` looks each plan up where it lives (invoices as
`CustInvc`, credit notes as `CustCred`) in the same batched query, and reports a credit memo's
total positive (SuiteQL signs credit transactions negative).

Authentication is an OAuth 2.0 bearer token read from `access_token_env` / `access_token_file`
(re-read once when NetSuite answers 401, so a token file rotated by another process is picked
up). Token-based authentication (TBA, OAuth 1.0 request signing) is not supported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from adapters.netsuite_config import NetSuiteConfig
from adapters.netsuite_payload import EXTERNAL_ID, RecordMapping, decimal_json
from adapters.netsuite_tax import check_tax_codes, document_name
from connector.errors import (
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.http import HttpClient, RetryPolicy
from connector.model import DocumentType, InvoicePlan, Money, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability
from connector.ratelimit import account_budget
from connector.secrets import resolve_secret
from connector.tax import TaxCodeMap
from connector.values import answer_money

__all__ = ["BearerToken", "NetSuiteConfig", "NetSuiteSink", "decimal_json"]

INVOICE_PATH = "record/v1/invoice"
CREDIT_MEMO_PATH = "record/v1/creditMemo"
SUITEQL_PATH = "query/v1/suiteql"
LOOKUP_BATCH = 100  # external ids per SuiteQL query: one short IN list, far below the 1000-row page
# SuiteQL's transaction type of each document: where find() looks a plan up.
TRANSACTION_TYPES = {DocumentType.INVOICE: "CustInvc", DocumentType.CREDIT_NOTE: "CustCred"}
_CONCURRENCY_CODES = frozenset({"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED"})


class BearerToken(requests.auth.AuthBase):
    """`Authorization: Bearer` from a secret; `invalidate()` makes the next call read it again."""

    def __init__(self, *, env: str | None, file: Path | None, key: str) -> None:
        self._env = env
        self._file = file
        self._key = key
        self._token: str | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token is None:
            self._token = resolve_secret(env=self._env, file=self._file, key=self._key)
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def invalidate(self) -> None:
        self._token = None


def error_details(response: requests.Response) -> tuple[str, str]:
    """The `detail` texts and the first `o:errorCode` of a NetSuite error body, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    details = body.get("o:errorDetails")
    if not isinstance(details, list):
        return str(body.get("title") or ""), ""
    texts = [str(d.get("detail", "")) for d in details if isinstance(d, dict)]
    codes = [str(d.get("o:errorCode", "")) for d in details if isinstance(d, dict)]
    return "; ".join(t for t in texts if t), next((c for c in codes if c), "")


def classify_netsuite(response: requests.Response) -> RemoteError | None:
    """Map NetSuite's error shape; leave 401/403, 429 and 5xx to the shared rules."""
    status = response.status_code
    if status < 400 or status in (401, 403, 429) or status >= 500:
        return None
    detail, code = error_details(response)
    text = detail or response.reason or "no detail"
    if code in _CONCURRENCY_CODES:
        return RetryableError(
            f"netsuite: concurrency limit reached ({code}): {text}", status=status, provider_code=code
        )
    label = f"{status} {code}" if code else str(status)
    return RejectedError(f"netsuite: {label}: {text}", status=status, provider_code=code)


def _read_json(response: requests.Response) -> Any:
    # Amounts must stay Decimal: requests' .json() would turn them into floats.
    return json.loads(response.text, parse_float=Decimal)


class NetSuiteSink:
    """Upserts each invoice as a NetSuite invoice keyed by external id = our invoice number, and
    makes each credit note a credit memo transformed from the invoice it credits."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.NATIVE_UPSERT, Capability.CREDIT_NOTES}
    )
    Config: ClassVar[type[AdapterConfig]] = NetSuiteConfig

    def __init__(
        self,
        config: NetSuiteConfig,
        context: AdapterContext,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        # Creates in flight at once: the account's budget the client also holds (it waits for
        # a slot), so several sinks on one account never exceed it together.
        self.push_concurrency = config.concurrency
        self._log = context.logger
        self.tax_codes = TaxCodeMap(config.tax_codes)
        self.records = RecordMapping(config, self.tax_codes)
        token_file = context.resolve(config.access_token_file) if config.access_token_file else None
        self.client = HttpClient(
            config.base_url,
            name=f"netsuite:{config.name}",
            timeout=(config.connect_timeout, config.read_timeout),
            # NetSuite's concurrency limit is account-wide, shared with every other integration.
            concurrency=account_budget(("netsuite", config.base_url), concurrency=config.concurrency)[0],
            retry=retry,
            auth=BearerToken(env=config.access_token_env, file=token_file, key=f"{config.name}.access_token"),
            headers={"Accept": "application/json"},
            classify=classify_netsuite,
            session=session,
        )

    def check(self) -> None:
        """For `doctor`: every configured tax code is an active tax code of the account (one GET
        each); without tax codes, that the account answers a SuiteQL query."""
        if self.tax_codes:
            check_tax_codes(self.client, self.tax_codes, self.name)
        else:
            self._query_transactions([], {"CustInvc"})

    # -- lookup ------------------------------------------------------------------------
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices and credit memos already in NetSuite for these plans, each looked up as its
        own transaction type: one SuiteQL query per 100 plans."""
        by_number = {p.invoice_number: p for p in plans if EXTERNAL_ID.match(p.invoice_number)}
        numbers = sorted(by_number)
        found: dict[str, RemoteRef] = {}
        for start in range(0, len(numbers), LOOKUP_BATCH):
            batch = numbers[start : start + LOOKUP_BATCH]
            types = {TRANSACTION_TYPES[by_number[n].document_type] for n in batch}
            for row in self._query_transactions(batch, types):
                plan = by_number.get(str(row.get("externalid", "")))
                if plan is None or not _of_type(row, TRANSACTION_TYPES[plan.document_type], types):
                    continue
                total = answer_money(row.get("foreigntotal"), plan.currency)
                found[plan.idempotency_key] = RemoteRef(
                    remote_id=str(row.get("id", "")),
                    invoice_number=plan.invoice_number,
                    # SuiteQL signs a credit memo's total negative; a credit is reported positive.
                    total=Money(amount=abs(total.amount), currency=total.currency) if total else None,
                    already_existed=True,
                )
        return found

    def _query_transactions(self, numbers: Sequence[str], types: set[str]) -> list[Mapping[str, Any]]:
        # Only numbers matching EXTERNAL_ID (letters, digits, '_', '-') reach this query.
        quoted = ", ".join(f"'{n}'" for n in numbers) or "''"
        kinds = ", ".join(f"'{t}'" for t in sorted(types))
        of_type = f"type = {kinds}" if len(types) == 1 else f"type IN ({kinds})"
        query = (
            "SELECT id, externalid, type, foreigntotal FROM transaction "  # noqa: S608
            f"WHERE {of_type} AND externalid IN ({quoted})"
        )
        response = self.client.request(
            "POST",
            SUITEQL_PATH,
            params={"limit": 1000},
            data=json.dumps({"q": query}),
            headers={"Content-Type": "application/json", "Prefer": "transient"},
            idempotent=True,  # a query writes nothing
        )
        try:
            body = _read_json(response)
            items = body["items"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RetryableError(f"netsuite: unreadable SuiteQL answer: {exc}") from exc
        return [item for item in items if isinstance(item, dict)]

    # -- push ---------------------------------------------------------------------------
    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Upsert the invoice, or transform the credited invoice into the credit note's credit
        memo (one call); with `read_back`, confirm it with a GET."""
        if plan.is_credit_note:
            return self._push_credit_memo(plan)
        body = self.invoice_body(plan)
        path = f"{INVOICE_PATH}/eid:{plan.invoice_number}"
        response = self.client.request(
            "PUT",
            path,
            params={"replace": "item"},
            data=decimal_json(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            # The upsert is safe to repeat, but the core resolves an unclear outcome by find()
            # first, so a 5xx or a timeout is reported, not retried here.
            idempotent=False,
        )
        return self._written(plan, response, INVOICE_PATH)

    def _push_credit_memo(self, plan: InvoicePlan) -> RemoteRef:
        body = self.credit_memo_body(plan)
        source = self.records.transform_source(plan)
        try:
            response = self.client.request(
                "POST",
                f"{INVOICE_PATH}/{source}/!transform/creditMemo",
                params={"replace": "item,taxDetails" if plan.is_taxed else "item"},
                data=decimal_json(body).encode("utf-8"),
                headers={"Content-Type": "application/json"},
                idempotent=False,  # a create: an unclear outcome is looked up, never re-sent here
            )
        except RejectedError as refused:
            if refused.status != 400:
                raise
            # An earlier attempt may have made it (NetSuite refuses a second record with the
            # same external id): what is there decides, not the wording of the refusal.
            existing = self.find([plan]).get(plan.idempotency_key)
            if existing is None:
                raise
            self._log.info("credit memo %s already exists: %s", plan.invoice_number, refused.message)
            return existing
        return self._written(plan, response, CREDIT_MEMO_PATH)

    def _written(self, plan: InvoicePlan, response: requests.Response, record_path: str) -> RemoteRef:
        remote_id = _location_id(response)
        if remote_id is None:
            raise UncertainError(
                f"netsuite: writing {document_name(plan)} answered {response.status_code} "
                "without a record Location"
            )
        if self.config.read_back:
            return self._read_back(plan, remote_id, record_path)
        # NetSuite computes the total; it is read back by the core's batched lookup, never assumed.
        return RemoteRef(remote_id=remote_id, invoice_number=plan.invoice_number, total=None)

    def _read_back(self, plan: InvoicePlan, remote_id: str, record_path: str) -> RemoteRef:
        try:
            response = self.client.request("GET", f"{record_path}/eid:{plan.invoice_number}")
            record = _read_json(response)
            total = answer_money(record.get("total"), plan.currency)
            tax = answer_money(record.get("taxTotal"), plan.currency)
        except (RemoteError, ValueError, AttributeError) as exc:
            # The write was acknowledged; only the confirmation is missing.
            raise UncertainError(
                f"netsuite: {document_name(plan)} was written (id {remote_id}) "
                f"but reading it back failed: {exc}"
            ) from exc
        return RemoteRef(
            remote_id=remote_id,
            invoice_number=plan.invoice_number,
            total=total,
            tax=tax if plan.is_taxed else None,
        )

    def invoice_body(self, plan: InvoicePlan) -> dict[str, Any]:
        """The REST record body of the plan's invoice; RejectedError when a ref is not mapped."""
        return self.records.invoice_body(plan)

    def credit_memo_body(self, plan: InvoicePlan) -> dict[str, Any]:
        """The transform body of a credit note's credit memo; RejectedError when a ref is not mapped."""
        return self.records.credit_memo_body(plan)


def _of_type(row: Mapping[str, Any], wanted: str, queried: set[str]) -> bool:
    """Whether a SuiteQL row is of the transaction type its plan lives as (a row without its
    type is, when the query asked for that type alone)."""
    kind = str(row.get("type") or "")
    return kind == wanted if kind else queried == {wanted}


def _location_id(response: requests.Response) -> str | None:
    """The internal id at the end of the `Location` of a written record."""
    location = response.headers.get("Location", "")
    tail = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    return tail if tail.isdigit() else None
