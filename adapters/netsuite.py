"""The `netsuite` invoice sink: SuiteTalk REST record upsert by external id.

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

Authentication is an OAuth 2.0 bearer token read from `access_token_env` / `access_token_file`
(re-read once when NetSuite answers 401, so a token file rotated by another process is picked
up). Token-based authentication (TBA, OAuth 1.0 request signing) is not supported.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator, model_validator

from adapters.netsuite_tax import check_tax_codes, line_reference, tax_code_keys, tax_details
from connector.errors import (
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.http import HttpClient, RetryPolicy
from connector.model import InvoiceLine, InvoicePlan, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability
from connector.ratelimit import account_budget
from connector.secrets import resolve_secret
from connector.tax import TaxCodeMap
from connector.values import answer_money, format_amount, format_price, http_url

INVOICE_PATH = "record/v1/invoice"
SUITEQL_PATH = "query/v1/suiteql"
LOOKUP_BATCH = 100  # external ids per SuiteQL query: one short IN list, far below the 1000-row page
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_CONCURRENCY_CODES = frozenset({"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED"})


class NetSuiteConfig(AdapterConfig):
    """Where the account's REST services are, how to authenticate and how our refs map to ids."""

    type: str = "netsuite"
    base_url: str  # https://<account>.suitetalk.api.netsuite.com/services/rest
    access_token_env: str | None = None
    access_token_file: Path | None = None
    customer_ids: dict[str, str] = Field(default_factory=dict)  # customer_ref -> internal id
    item_ids: dict[str, str] = Field(default_factory=dict)  # sku -> internal id
    terms_ids: dict[str, str] = Field(default_factory=dict)  # payment terms code -> internal id
    currency_ids: dict[str, str] = Field(default_factory=dict)  # ISO 4217 -> internal id
    subsidiary: str | None = None
    # Our tax treatment -> SuiteTax tax code (salesTaxItem internal id): { "S:20" = "12", "AE" = "15" }
    tax_codes: dict[str, str] = Field(default_factory=dict)
    concurrency: int = Field(default=5, ge=1, le=100)
    read_back: bool = False
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://1234.suitetalk.api.netsuite.com/services/rest")

    @field_validator("tax_codes")
    @classmethod
    def _tax_code_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return tax_code_keys(value)

    @model_validator(mode="after")
    def _token_source(self) -> NetSuiteConfig:
        if not self.access_token_env and not self.access_token_file:
            raise ValueError("set access_token_env or access_token_file")
        return self


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


def decimal_json(payload: Any) -> str:
    """JSON text in which every Decimal is written as a JSON number, digit for digit."""
    nonce = secrets.token_hex(8)

    def encode(value: Any) -> str:
        if isinstance(value, Decimal):
            return f"{nonce}:{value:f}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(payload, default=encode, ensure_ascii=False)
    return re.sub(rf'"{nonce}:(-?[0-9.]+)"', r"\1", text)


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
    """Upserts each plan as a NetSuite invoice keyed by external id = our invoice number."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP, Capability.NATIVE_UPSERT})
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
        self._log = context.logger
        self.tax_codes = TaxCodeMap(config.tax_codes)
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
            self._query_invoices([])

    # -- lookup ------------------------------------------------------------------------
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices already in NetSuite for these plans: one SuiteQL query per 100 plans."""
        by_number = {p.invoice_number: p for p in plans if _EXTERNAL_ID.match(p.invoice_number)}
        numbers = sorted(by_number)
        found: dict[str, RemoteRef] = {}
        for start in range(0, len(numbers), LOOKUP_BATCH):
            for row in self._query_invoices(numbers[start : start + LOOKUP_BATCH]):
                plan = by_number.get(str(row.get("externalid", "")))
                if plan is None:
                    continue
                found[plan.idempotency_key] = RemoteRef(
                    remote_id=str(row.get("id", "")),
                    invoice_number=plan.invoice_number,
                    total=answer_money(row.get("foreigntotal"), plan.currency),
                    already_existed=True,
                )
        return found

    def _query_invoices(self, numbers: Sequence[str]) -> list[Mapping[str, Any]]:
        # Only numbers matching _EXTERNAL_ID (letters, digits, '_', '-') reach this query.
        quoted = ", ".join(f"'{n}'" for n in numbers) or "''"
        query = (
            "SELECT id, externalid, foreigntotal FROM transaction "  # noqa: S608
            f"WHERE type = 'CustInvc' AND externalid IN ({quoted})"
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
        """Upsert the invoice (one call); with `read_back`, confirm it with a GET."""
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
        remote_id = _location_id(response)
        if remote_id is None:
            raise UncertainError(
                f"netsuite: upsert of {plan.invoice_number} answered {response.status_code} "
                "without a record Location"
            )
        if self.config.read_back:
            return self._read_back(plan, remote_id)
        # NetSuite computes the total; it is read back by the core's batched lookup, never assumed.
        return RemoteRef(remote_id=remote_id, invoice_number=plan.invoice_number, total=None)

    def _read_back(self, plan: InvoicePlan, remote_id: str) -> RemoteRef:
        try:
            response = self.client.request("GET", f"{INVOICE_PATH}/eid:{plan.invoice_number}")
            record = _read_json(response)
            total = answer_money(record.get("total"), plan.currency)
            tax = answer_money(record.get("taxTotal"), plan.currency)
        except (RemoteError, ValueError, AttributeError) as exc:
            # The upsert was acknowledged; only the confirmation is missing.
            raise UncertainError(
                f"netsuite: invoice {plan.invoice_number} was written (id {remote_id}) "
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
        if not _EXTERNAL_ID.match(plan.invoice_number):
            raise RejectedError(
                f"netsuite: invoice number {plan.invoice_number!r} cannot be an external id "
                "(letters, digits, '_' and '-' only, at most 100)"
            )
        entity = self._mapped(self.config.customer_ids, plan.customer_ref, "customer_ids", plan)
        body: dict[str, Any] = {
            "externalId": plan.invoice_number,
            "tranId": plan.invoice_number,
            "entity": {"id": entity},
            "tranDate": plan.issue_date.isoformat(),
            "dueDate": plan.due_date.isoformat(),
            "memo": plan.memo,
            "item": {"items": [self._line(plan, line) for line in plan.lines]},
        }
        if plan.po_number:
            body["otherRefNum"] = plan.po_number
        if plan.is_taxed:
            body.update(tax_details(plan, self.tax_codes, self.name))
        if plan.payment_terms is not None and plan.payment_terms.code in self.config.terms_ids:
            body["terms"] = {"id": self.config.terms_ids[plan.payment_terms.code]}
        if self.config.currency_ids:
            body["currency"] = {
                "id": self._mapped(self.config.currency_ids, plan.currency, "currency_ids", plan)
            }
        if self.config.subsidiary:
            body["subsidiary"] = {"id": self.config.subsidiary}
        return body

    def _line(self, plan: InvoicePlan, line: InvoiceLine) -> dict[str, Any]:
        item = self._mapped(self.config.item_ids, line.sku, "item_ids", plan)
        fields: dict[str, Any] = {
            "item": {"id": item},
            "quantity": line.quantity,
            "rate": Decimal(format_price(line.unit_price)),
            "amount": Decimal(format_amount(line.amount)),
            "description": line.description or line.sku,
        }
        if line.tax is not None:
            fields["taxDetailsReference"] = line_reference(line)
        return fields

    def _mapped(self, table: Mapping[str, str], key: str, field: str, plan: InvoicePlan) -> str:
        try:
            return table[key]
        except KeyError:
            raise RejectedError(
                f"netsuite sink {self.name!r}: invoice {plan.invoice_number}: no NetSuite internal id "
                f"for {key!r}; add it to {field}"
            ) from None


def _location_id(response: requests.Response) -> str | None:
    """The internal id at the end of the `Location` of a written record."""
    location = response.headers.get("Location", "")
    tail = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    return tail if tail.isdigit() else None
