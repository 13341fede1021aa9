"""The `quickbooks` invoice sink: QuickBooks Online Accounting API v3 invoices, exactly once.

Our invoice number is the invoice's `DocNumber` (unique in QuickBooks, at most 21 characters)
and the customer's PO number goes in a string custom field. Every write carries a `requestid`
derived from the plan's idempotency key, so a retried request is answered with the original
response; because how long QuickBooks remembers a requestid is not documented, a duplicate
`DocNumber` (fault 6140) is also resolved by looking the invoice up, never reported as a failure.
Lookups are batched (`DocNumber in (...)`), creates can be batched (`/batch`, at most 30 items,
per-item results matched by `bId`).

This module is the sink's protocol (lookup, create, batch, duplicates); its config is
`adapters.quickbooks_config`, the invoice JSON `adapters.quickbooks_payload`, and what the
answers mean (Faults, invoices read back) `adapters.quickbooks_answers`.
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
    TAX_CODE_QUERY,
    PayloadError,
    batch_id,
    check_doc_number,
    doc_number_query,
    dumps,
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
    """Creates QuickBooks Online invoices from invoice plans, each exactly once."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.BATCH_PUSH, Capability.NATIVE_IDEMPOTENCY}
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
        response = self.client.request(
            "GET",
            f"{self._company}/query",
            params={"query": TAX_CODE_QUERY, "minorversion": self.config.minor_version},
        )
        try:
            codes = loads(response.text)["QueryResponse"].get("TaxCode", [])
        except (ValueError, KeyError, TypeError, AttributeError):
            tid = response.headers.get("intuit_tid", "")
            raise RetryableError(
                f"{self.name}: the TaxCode list answered {response.status_code} without a "
                f"QueryResponse (intuit_tid {tid or '-'})",
                correlation_id=tid,
            ) from None
        return [code for code in codes if isinstance(code, dict)]

    def tax_rates(self) -> dict[str, str]:
        """TaxCode id -> sales TaxRate id, read once from the company (global tax mode only)."""
        if self.refs.tax_mode != "global":
            return {}
        if self._tax_rates is None:
            self._tax_rates = sales_rates(self._tax_code_list())
        return self._tax_rates

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices already in QuickBooks for these plans, by `DocNumber in (...)` lookups."""
        by_number: dict[str, list[InvoicePlan]] = {}
        for plan in plans:
            try:
                check_doc_number(plan.invoice_number)
            except PayloadError:
                continue  # a number QuickBooks cannot hold cannot exist there
            by_number.setdefault(plan.invoice_number, []).append(plan)
        numbers = sorted(by_number)
        found: dict[str, RemoteRef] = {}
        for start in range(0, len(numbers), _LOOKUP_CHUNK):
            chunk = numbers[start : start + _LOOKUP_CHUNK]
            response = self.client.request(
                "GET",
                f"{self._company}/query",
                params={"query": doc_number_query(chunk), "minorversion": self.config.minor_version},
            )
            tid = response.headers.get("intuit_tid", "")
            try:
                invoices = loads(response.text)["QueryResponse"].get("Invoice", [])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise RetryableError(
                    f"{self.name}: invoice lookup answered {response.status_code} without a "
                    f"QueryResponse (intuit_tid {tid or '-'})",
                    correlation_id=tid,
                ) from None
            for invoice in invoices:
                for plan in by_number.get(str(invoice.get("DocNumber", "")), []):
                    if self._belongs_to(plan, invoice):
                        found[plan.idempotency_key] = remote_ref(invoice, plan, tid, already_existed=True)
        return found

    def _belongs_to(self, plan: InvoicePlan, invoice: dict[str, Any]) -> bool:
        customer = str((invoice.get("CustomerRef") or {}).get("value", ""))
        expected = self.refs.customer_id(plan.customer_ref)
        if customer == expected:
            return True
        self._log.warning(
            "QuickBooks invoice %s (Id %s) carries our number but belongs to customer %s, not %s",
            plan.invoice_number,
            invoice.get("Id"),
            customer,
            expected,
            extra={"adapter": self.name},
        )
        return False

    # -- create -------------------------------------------------------------------------
    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Create the invoice; a duplicate DocNumber resolves to the existing invoice."""
        body = dumps(self._payload(plan, self._rates_for([plan])))
        try:
            response = self.client.request(
                "POST",
                f"{self._company}/invoice",
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
        invoice = written(response, "Invoice", plan.invoice_number, tid, name=self.name)
        ref = remote_ref(invoice, plan, tid, already_existed=False)
        self._log_created(plan, ref)
        return ref

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        """Create invoices in `/batch` calls of at most `batch_size`; errors stay per item."""
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
            items.append({"bId": bid, "operation": "create", "Invoice": payload})
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
            if item is not None and isinstance(item.get("Invoice"), dict):
                ref = remote_ref(item["Invoice"], plan, tid, already_existed=False)
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
                        f"{self.name}: the batch answer has no result for invoice "
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
                        f"{self.name}: invoice {plan.invoice_number} already exists but the "
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
            f"{error.message}; no invoice {plan.invoice_number} of customer "
            f"{self.refs.customer_id(plan.customer_ref)} holds that number",
            status=error.status,
            provider_code=error.provider_code,
            correlation_id=error.correlation_id,
        )

    # -- internals -----------------------------------------------------------------------
    def _rates_for(self, plans: Sequence[InvoicePlan]) -> dict[str, str]:
        return self.tax_rates() if any(plan.is_taxed for plan in plans) else {}

    def _payload(self, plan: InvoicePlan, rates: dict[str, str]) -> dict[str, Any]:
        try:
            return invoice_payload(plan, self.refs, rates)
        except PayloadError as exc:
            reason = f"{exc.code}: {exc}" if exc.code else str(exc)
            raise RejectedError(
                f"{self.name}: invoice {plan.invoice_number!r} (plan {plan.idempotency_key}) "
                f"cannot be sent to QuickBooks: {reason}",
                provider_code=exc.code,
            ) from None

    def _log_created(self, plan: InvoicePlan, ref: RemoteRef) -> None:
        self._log.info(
            "QuickBooks invoice %s created with Id %s (plan %s, intuit_tid %s)",
            plan.invoice_number,
            ref.remote_id,
            plan.idempotency_key,
            ref.correlation_id or "-",
            extra={"adapter": self.name},
        )
