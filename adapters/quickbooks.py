"""The `quickbooks` invoice sink: QuickBooks Online Accounting API v3 invoices, exactly once.

Our invoice number is the invoice's `DocNumber` (unique in QuickBooks, at most 21 characters)
and the customer's PO number goes in a string custom field. A credit note is a `CreditMemo`
written, looked up and de-duplicated the same way under its own number (QuickBooks has no link
from a credit memo to an invoice: the credited invoice's number is in its memo fields).

Every write carries a `requestid` (one UUID per call, reused by the retries inside it), so a
retried request is answered with the original response; because how long QuickBooks remembers a
requestid is not documented, a duplicate `DocNumber` (fault 6140) is also resolved by looking
the document up, never reported as a failure.
Lookups are batched (`DocNumber in (...)`), creates can be batched (`/batch`, at most 30 items,
per-item results matched by `bId`).

This module is the sink's protocol (lookup, create, batch, duplicates); its config is
`adapters.quickbooks_config`, the Invoice and CreditMemo JSON `adapters.quickbooks_payload`, and
what the answers mean (Faults, documents read back) `adapters.quickbooks_answers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import requests

from adapters.oauth_refresh import RefreshTokenAuth
from adapters.quickbooks_answers import (
    DUPLICATE_DOC_NUMBER,
    classify_answer,
    fault_error,
    remote_ref,
    written,
)
from adapters.quickbooks_config import QuickBooksConfig
from adapters.quickbooks_payload import (
    ENTITIES,
    TAX_CODE_QUERY,
    PayloadError,
    batch_id,
    check_doc_number,
    credit_memo_payload,
    doc_number_query,
    dumps,
    entity_of,
    fresh_request_id,
    invoice_payload,
    loads,
    sales_rates,
)
from connector.errors import ConfigError, RejectedError, RemoteError, RetryableError, UncertainError
from connector.http import HttpClient, RetryPolicy
from connector.model import InvoicePlan, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability, PushOutcome
from connector.ratelimit import ConcurrencyLimit, TokenBucket, account_budget
from connector.secrets import resolve_secret

__all__ = ["QuickBooksConfig", "QuickBooksSink", "realm_budget"]

_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
_LOOKUP_CHUNK = 30


def realm_budget(
    base_url: str, realm_id: str, concurrency: int, per_minute: int
) -> tuple[ConcurrencyLimit, TokenBucket | None]:
    """The concurrency and rate budget shared by every sink talking to one realm."""
    return account_budget(("quickbooks", base_url, realm_id), concurrency=concurrency, per_minute=per_minute)


class QuickBooksSink:
    """Creates QuickBooks Online invoices and credit memos from plans, each exactly once."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.BATCH_PUSH, Capability.NATIVE_IDEMPOTENCY, Capability.CREDIT_NOTES}
    )
    Config: ClassVar[type[AdapterConfig]] = QuickBooksConfig

    def __init__(
        self,
        config: QuickBooksConfig,
        context: AdapterContext,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._log = context.logger
        self.refs = config.refs()
        self._tax_rates: dict[str, str] | None = None
        secret = resolve_secret(
            env=config.client_secret_env,
            file=config.client_secret_file,
            key="client_secret",
            base_dir=context.base_dir,
        )
        token_file = context.resolve(config.refresh_token_file)
        initial = None
        if config.refresh_token_env and not token_file.exists():
            initial = resolve_secret(env=config.refresh_token_env, key="refresh_token")
        timeout = (config.connect_timeout, config.read_timeout)
        self.auth = RefreshTokenAuth(
            token_url=config.token_url,
            client_id=config.client_id,
            client_secret=secret,
            token_file=token_file,
            initial_refresh_token=initial,
            name=f"{config.name} OAuth",
            timeout=timeout,
            retry=retry,
        )
        concurrency, rate = realm_budget(
            config.base_url, config.realm_id, config.concurrency, config.per_minute
        )
        self.client = HttpClient(
            config.base_url,
            name=config.name,
            timeout=timeout,
            rate=rate,
            concurrency=concurrency,
            retry=retry,
            auth=self.auth,
            headers={"Accept": "application/json"},
            classify=self.classify,
            session=session,
        )
        self._company = f"v3/company/{config.realm_id}"

    # -- error shape --------------------------------------------------------------------
    def classify(self, response: requests.Response) -> RemoteError | None:
        """Map a QuickBooks `Fault` onto the error tree; None leaves it to the generic rules."""
        return classify_answer(
            response,
            name=self.name,
            throttle_wait=self.config.throttle_wait_seconds,
            max_wait=self.client.retry.max_wait,
        )

    # -- lookup -------------------------------------------------------------------------
    def check_ready(self) -> None:
        """The token file can be read and its folder written (before any row is claimed)."""
        self.auth.check_ready()

    def check(self) -> None:
        """For `doctor`: the company answers, and every configured tax code exists in it."""
        wanted = {code: key for key, code in self.refs.tax_codes.items()}
        if self.refs.txn_tax_code:
            wanted[self.refs.txn_tax_code] = "txn_tax_code"
        if self.refs.tax_mode == "none":
            self.client.request("GET", f"{self._company}/companyinfo/{self.config.realm_id}")
            return
        codes = self._tax_code_list()
        active = {str(code.get("Id", "")) for code in codes if code.get("Active", True)}
        missing = [f"{code!r} (for {key})" for code, key in sorted(wanted.items()) if code not in active]
        if missing:
            raise ConfigError(
                f"{self.name}: TaxCode id {', '.join(missing)} does not exist or is inactive in "
                f"QuickBooks company {self.config.realm_id}; its tax codes are "
                f"{', '.join(sorted(active)) or 'none'}"
            )

    def _tax_code_list(self) -> list[dict[str, Any]]:
        codes, _ = self._query("TaxCode", TAX_CODE_QUERY)
        return codes

    def _query(self, entity: str, statement: str) -> tuple[list[dict[str, Any]], str]:
        """The `entity` rows a query answers, and the answer's intuit_tid."""
        response = self.client.request(
            "GET",
            f"{self._company}/query",
            params={"query": statement, "minorversion": self.config.minor_version},
        )
        tid = response.headers.get("intuit_tid", "")
        try:
            rows = loads(response.text)["QueryResponse"].get(entity, [])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RetryableError(
                f"{self.name}: the {entity} query answered {response.status_code} without a "
                f"QueryResponse (intuit_tid {tid or '-'})",
                correlation_id=tid,
            ) from None
        return [row for row in rows if isinstance(row, dict)], tid

    def tax_rates(self) -> dict[str, str]:
        """TaxCode id -> sales TaxRate id, read once from the company (global tax mode only)."""
        if self.refs.tax_mode != "global":
            return {}
        if self._tax_rates is None:
            self._tax_rates = sales_rates(self._tax_code_list())
        return self._tax_rates

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices and credit memos already in QuickBooks for these plans (a list may mix
        both), by `DocNumber in (...)` lookups of each entity."""
        wanted: dict[tuple[str, str], list[InvoicePlan]] = {}
        for plan in plans:
            try:
                check_doc_number(plan.invoice_number)
            except PayloadError:
                continue  # a number QuickBooks cannot hold cannot exist there
            wanted.setdefault((entity_of(plan), plan.invoice_number), []).append(plan)
        found: dict[str, RemoteRef] = {}
        for entity in ENTITIES:
            numbers = sorted(number for kind, number in wanted if kind == entity)
            for start in range(0, len(numbers), _LOOKUP_CHUNK):
                chunk = numbers[start : start + _LOOKUP_CHUNK]
                rows, tid = self._query(entity, doc_number_query(chunk, entity))
                for row in rows:
                    for plan in wanted.get((entity, str(row.get("DocNumber", ""))), []):
                        if self._belongs_to(plan, row):
                            found[plan.idempotency_key] = remote_ref(row, plan, tid, already_existed=True)
        return found

    def _belongs_to(self, plan: InvoicePlan, row: dict[str, Any]) -> bool:
        customer = str((row.get("CustomerRef") or {}).get("value", ""))
        expected = self.refs.customer_id(plan.customer_ref)
        if customer == expected:
            return True
        self._log.warning(
            "QuickBooks %s %s (Id %s) carries our number but belongs to customer %s, not %s",
            entity_of(plan),
            plan.invoice_number,
            row.get("Id"),
            customer,
            expected,
            extra={"adapter": self.name},
        )
        return False

    # -- create -------------------------------------------------------------------------
    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Create the invoice or credit memo; a duplicate DocNumber resolves to the existing one."""
        body = dumps(self._payload(plan, self._rates_for([plan])))
        entity = entity_of(plan)
        try:
            response = self.client.request(
                "POST",
                f"{self._company}/{entity.lower()}",
                params={
                    "requestid": fresh_request_id(),
                    "minorversion": self.config.minor_version,
                },
                data=body,
                headers=_JSON,
            )
        except RejectedError as exc:
            if exc.provider_code == DUPLICATE_DOC_NUMBER:
                return self._existing_after_duplicate(plan, exc)
            raise
        tid = response.headers.get("intuit_tid", "")
        created = written(response, entity, plan.invoice_number, tid, name=self.name)
        ref = remote_ref(created, plan, tid, already_existed=False)
        self._log_created(plan, ref)
        return ref

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        """Create invoices and credit memos in `/batch` calls of at most `batch_size` items;
        errors stay per item."""
        unique = list({plan.idempotency_key: plan for plan in plans}.values())
        outcomes: dict[str, PushOutcome] = {}
        size = self.config.batch_size
        for start in range(0, len(unique), size):
            outcomes.update(self._push_chunk(unique[start : start + size]))
        return [outcomes[plan.idempotency_key] for plan in plans]

    def _push_chunk(self, plans: Sequence[InvoicePlan]) -> dict[str, PushOutcome]:
        outcomes: dict[str, PushOutcome] = {}
        sent: list[tuple[str, InvoicePlan]] = []
        items: list[dict[str, Any]] = []
        try:
            rates = self._rates_for(plans)
        except RemoteError as exc:
            return {plan.idempotency_key: PushOutcome(plan.idempotency_key, error=exc) for plan in plans}
        for plan in plans:
            try:
                payload = self._payload(plan, rates)
            except RejectedError as exc:
                outcomes[plan.idempotency_key] = PushOutcome(plan.idempotency_key, error=exc)
                continue
            bid = batch_id(len(items))
            items.append({"bId": bid, "operation": "create", entity_of(plan): payload})
            sent.append((bid, plan))
        if not items:
            return outcomes
        rid = fresh_request_id()
        try:
            response = self.client.request(
                "POST",
                f"{self._company}/batch",
                params={"requestid": rid, "minorversion": self.config.minor_version},
                data=dumps({"BatchItemRequest": items}),
                headers=_JSON,
            )
            tid = response.headers.get("intuit_tid", "")
            results = written(response, "BatchItemResponse", f"batch of {len(items)}", tid, name=self.name)
        except RemoteError as exc:
            for _, plan in sent:
                outcomes[plan.idempotency_key] = PushOutcome(plan.idempotency_key, error=exc)
            return outcomes
        by_bid = {str(item.get("bId")): item for item in results if isinstance(item, dict)}
        duplicates: list[tuple[InvoicePlan, RemoteError]] = []
        for bid, plan in sent:
            key = plan.idempotency_key
            item = by_bid.get(bid)
            if item is not None and isinstance(item.get(entity_of(plan)), dict):
                ref = remote_ref(item[entity_of(plan)], plan, tid, already_existed=False)
                self._log_created(plan, ref)
                outcomes[key] = PushOutcome(key, ref=ref)
            elif item is not None and isinstance(item.get("Fault"), dict):
                error = fault_error(
                    item["Fault"], tid, name=self.name, throttle_wait=self.config.throttle_wait_seconds
                )
                if error.provider_code == DUPLICATE_DOC_NUMBER:
                    duplicates.append((plan, error))
                    continue
                outcomes[key] = PushOutcome(key, error=error)
            else:
                outcomes[key] = PushOutcome(
                    key,
                    error=UncertainError(
                        f"{self.name}: the batch answer has no result for {entity_of(plan)} "
                        f"{plan.invoice_number} (bId {bid}, intuit_tid {tid or '-'})",
                        correlation_id=tid,
                    ),
                )
        outcomes.update(self._resolve_duplicates(duplicates))
        return outcomes

    def _resolve_duplicates(
        self, duplicates: list[tuple[InvoicePlan, RemoteError]]
    ) -> dict[str, PushOutcome]:
        if not duplicates:
            return {}
        outcomes: dict[str, PushOutcome] = {}
        try:
            found = self.find([plan for plan, _ in duplicates])
        except RemoteError as exc:
            for plan, _ in duplicates:
                outcomes[plan.idempotency_key] = PushOutcome(
                    plan.idempotency_key,
                    error=UncertainError(
                        f"{self.name}: {entity_of(plan)} {plan.invoice_number} already exists but the "
                        f"lookup failed: {exc.message}",
                        correlation_id=exc.correlation_id,
                    ),
                )
            return outcomes
        for plan, error in duplicates:
            key = plan.idempotency_key
            if key in found:
                outcomes[key] = PushOutcome(key, ref=found[key])
            else:
                outcomes[key] = PushOutcome(key, error=self._foreign_duplicate(plan, error))
        return outcomes

    def _existing_after_duplicate(self, plan: InvoicePlan, error: RemoteError) -> RemoteRef:
        found = self.find([plan])
        if plan.idempotency_key in found:
            return found[plan.idempotency_key]
        raise self._foreign_duplicate(plan, error)

    def _foreign_duplicate(self, plan: InvoicePlan, error: RemoteError) -> RejectedError:
        return RejectedError(
            f"{error.message}; no {entity_of(plan)} {plan.invoice_number} of customer "
            f"{self.refs.customer_id(plan.customer_ref)} holds that number",
            status=error.status,
            provider_code=error.provider_code,
            correlation_id=error.correlation_id,
        )

    # -- internals -----------------------------------------------------------------------
    def _rates_for(self, plans: Sequence[InvoicePlan]) -> dict[str, str]:
        return self.tax_rates() if any(plan.is_taxed for plan in plans) else {}

    def _payload(self, plan: InvoicePlan, rates: dict[str, str]) -> dict[str, Any]:
        write = credit_memo_payload if plan.is_credit_note else invoice_payload
        try:
            return write(plan, self.refs, rates)
        except PayloadError as exc:
            reason = f"{exc.code}: {exc}" if exc.code else str(exc)
            raise RejectedError(
                f"{self.name}: {entity_of(plan)} {plan.invoice_number!r} (plan {plan.idempotency_key}) "
                f"cannot be sent to QuickBooks: {reason}",
                provider_code=exc.code,
            ) from None

    def _log_created(self, plan: InvoicePlan, ref: RemoteRef) -> None:
        self._log.info(
            "QuickBooks %s %s created with Id %s (plan %s, intuit_tid %s)",
            entity_of(plan),
            plan.invoice_number,
            ref.remote_id,
            plan.idempotency_key,
            ref.correlation_id or "-",
            extra={"adapter": self.name},
        )
