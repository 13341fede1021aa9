"""The `xero` invoice sink: ACCREC invoices through the Xero Accounting API, exactly once.

Invoices are created with `PUT /Invoices?summarizeErrors=false` (create only: a number already
taken fails with "Invoice # must be unique."), up to 50 per call, each call carrying an
`Idempotency-Key` derived from its batch so an immediate re-send is answered from Xero's replay
window. Our invoice number sits in the unique `InvoiceNumber`, so `find` (`GET /Invoices?
InvoiceNumbers=…`) is the lasting guard: it resolves uncertain outcomes and "must be unique"
answers into the invoice that already exists. Rate limits follow Xero's per-tenant budgets
(60 calls a minute, 5 at once); a minute-limit 429 is waited out, a daily-limit 429 parks.

Credit notes (`adapters.xero_credit_notes`) are ACCRECCREDIT credit notes allocated to the
invoice they credit. The config and the credentials it selects are `adapters.xero_config`; the
JSON and the readers of answer elements are `adapters.xero_payload`, and what an answer means
(budgets, 429, ValidationException) `adapters.xero_answers`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import requests

from adapters.oauth_refresh import RefreshTokenAuth
from adapters.xero_answers import RateLimits, classify_answer, correlation_of, elements_of, put_batch
from adapters.xero_config import BearerToken, XeroConfig, auth_from
from adapters.xero_credit_notes import XeroCreditNotes
from adapters.xero_payload import (
    PayloadProblem,
    element_date,
    element_tax,
    element_total,
    invoice_payload,
    is_duplicate_number,
    is_error_element,
    loads_exact,
    validation_messages,
)
from connector.errors import ConfigError, RejectedError, RemoteError, RetryableError, UncertainError
from connector.http import HttpClient, RetryPolicy
from connector.model import InvoicePlan, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability, PushOutcome
from connector.ratelimit import account_budget

__all__ = ["BearerToken", "RateLimits", "XeroConfig", "XeroSink"]

PAGE_SIZE = 100  # GET /Invoices?page=N answers up to 100 invoices
LOOKUP_CHUNK = 50  # invoice numbers per lookup call, keeps the URL short


class XeroSink:
    """Creates ACCREC invoices, and credit notes allocated to them, in one Xero organisation,
    each exactly once."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.BATCH_PUSH, Capability.NATIVE_IDEMPOTENCY, Capability.CREDIT_NOTES}
    )
    Config: ClassVar[type[AdapterConfig]] = XeroConfig

    def __init__(
        self,
        config: XeroConfig,
        context: AdapterContext,
        *,
        auth: requests.auth.AuthBase | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._log = context.logger
        self.mapping = config.invoice_mapping()
        self.limits = RateLimits()
        retry = retry or RetryPolicy(max_wait=config.max_wait)
        # Xero's limits hold per organisation (tenant), whatever connection reaches it.
        concurrency, rate = account_budget(
            ("xero", config.base_url, config.tenant_id),
            concurrency=config.concurrency,
            per_minute=config.per_minute,
        )
        self.auth = auth or auth_from(config, context, retry)
        self.client = HttpClient(
            config.base_url,
            name=f"xero:{config.name}",
            timeout=(config.connect_timeout, config.read_timeout),
            rate=rate,
            concurrency=concurrency,
            retry=retry,
            auth=self.auth,
            headers={"xero-tenant-id": config.tenant_id, "Accept": "application/json"},
            classify=self._classify,
        )
        self.credit_notes = XeroCreditNotes(
            name=self.name, client=self.client, config=config, log=self._log, invoice_ids=self._invoice_ids
        )

    def check_ready(self) -> None:
        """With OAuth, the token file can be read and its folder written (before any claim)."""
        if isinstance(self.auth, RefreshTokenAuth):
            self.auth.check_ready()

    def check(self) -> None:
        """For `doctor`: the organisation answers, and every configured TaxType is one of its
        active revenue tax rates (GET /TaxRates)."""
        response = self.client.request("GET", "TaxRates")
        try:
            rates = loads_exact(response.content)["TaxRates"]
            usable = {
                str(rate.get("TaxType"))
                for rate in rates
                if rate.get("Status", "ACTIVE") == "ACTIVE" and rate.get("CanApplyToRevenue", True)
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RetryableError(
                f"{self.name}: Xero answered {response.status_code} to GET /TaxRates without TaxRates"
            ) from None
        missing = [
            f"{tax_type!r} (for {key})"
            for key, tax_type in self.mapping.tax_types.items()
            if tax_type not in usable
        ]
        if missing:
            raise ConfigError(
                f"{self.name}: tax_types {', '.join(missing)} is not an active revenue tax rate of "
                f"this Xero organisation; it has {', '.join(sorted(usable)) or 'none'}"
            )

    # -- lookup -------------------------------------------------------------------------
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """ACCREC invoices already holding these plans' numbers, and credit notes already
        allocated (a list may mix both), keyed by idempotency key."""
        found = self.credit_notes.find([plan for plan in plans if plan.is_credit_note])
        by_number: dict[str, list[InvoicePlan]] = {}
        for plan in plans:
            if not plan.is_credit_note:
                by_number.setdefault(plan.invoice_number.casefold(), []).append(plan)
        numbers = list(dict.fromkeys(plan.invoice_number for plan in plans if not plan.is_credit_note))
        for start in range(0, len(numbers), LOOKUP_CHUNK):
            for element, correlation in self._invoices_numbered(numbers[start : start + LOOKUP_CHUNK]):
                if element.get("Type") != "ACCREC":
                    continue  # bills (ACCPAY) may carry any number, even ours
                number = str(element.get("InvoiceNumber", "")).casefold()
                for plan in by_number.get(number, []):
                    self._warn_if_dated_otherwise(plan, element)
                    found[plan.idempotency_key] = self._ref(element, plan, correlation, existed=True)
        return found

    def _invoices_numbered(self, numbers: Sequence[str]) -> Iterator[tuple[dict[str, Any], str]]:
        page = 1
        while True:
            response = self.client.request(
                "GET",
                "Invoices",
                params={
                    "InvoiceNumbers": ",".join(numbers),
                    "Statuses": ",".join(self.config.lookup_statuses),
                    "page": str(page),
                },
            )
            elements = elements_of(response, "Invoices", name=self.name, written=False)
            correlation = correlation_of(response)
            for element in elements:
                yield element, correlation
            if len(elements) < PAGE_SIZE:
                return
            page += 1

    def _invoice_ids(self, numbers: Sequence[str]) -> dict[str, str]:
        """Our invoice number (casefolded) -> its InvoiceID, for ACCREC invoices that can be credited."""
        ids: dict[str, str] = {}
        for start in range(0, len(numbers), LOOKUP_CHUNK):
            for element, _ in self._invoices_numbered(numbers[start : start + LOOKUP_CHUNK]):
                if element.get("Type") == "ACCREC" and element.get("Status") not in ("VOIDED", "DELETED"):
                    ids[str(element.get("InvoiceNumber", "")).casefold()] = str(element.get("InvoiceID", ""))
        return ids

    def _warn_if_dated_otherwise(self, plan: InvoicePlan, element: Mapping[str, Any]) -> None:
        dated = element_date(element)
        if dated is not None and dated != plan.issue_date:
            self._log.warning(
                "%s: Xero invoice %s is dated %s, the plan says %s",
                self.name,
                plan.invoice_number,
                dated,
                plan.issue_date,
            )

    # -- push ---------------------------------------------------------------------------
    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Create one invoice; raises the RemoteError its outcome carries."""
        outcome = self.push_batch([plan])[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.ref is not None
        return outcome.ref

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        """Create invoices and credit notes, up to `batch_size` per call; one outcome per plan,
        in order."""
        outcomes: dict[str, PushOutcome] = {}
        ready: list[tuple[InvoicePlan, dict[str, Any]]] = []
        numbers: dict[str, str] = {}
        for plan in (plan for plan in plans if not plan.is_credit_note):
            key = plan.idempotency_key
            other = numbers.setdefault(plan.invoice_number.casefold(), key)
            if other != key:
                outcomes[key] = self._rejected(
                    plan, f"invoice number is also used by plan {other} in this batch"
                )
                continue
            try:
                ready.append((plan, invoice_payload(plan, self.mapping)))
            except PayloadProblem as exc:
                reason = f"{exc.code}: {exc}" if exc.code else str(exc)
                outcomes[key] = self._rejected(plan, reason, provider_code=exc.code)
        size = self.config.batch_size
        for start in range(0, len(ready), size):
            outcomes.update(self._put(ready[start : start + size]))
        # After the invoices: a credit note is allocated to an invoice that must exist first.
        outcomes.update(self.credit_notes.push([plan for plan in plans if plan.is_credit_note]))
        return [outcomes[plan.idempotency_key] for plan in plans]

    def _rejected(self, plan: InvoicePlan, why: str, **details: Any) -> PushOutcome:
        error = RejectedError(f"{self.name}: invoice {plan.invoice_number}: {why}", **details)
        return PushOutcome(plan.idempotency_key, error=error)

    def _put(self, chunk: Sequence[tuple[InvoicePlan, dict[str, Any]]]) -> dict[str, PushOutcome]:
        plans = [plan for plan, _ in chunk]
        try:
            response, elements = put_batch(self.client, "Invoices", chunk, name=self.name)
        except RemoteError as exc:
            return {plan.idempotency_key: PushOutcome(plan.idempotency_key, error=exc) for plan in plans}
        correlation = correlation_of(response)
        if len(elements) != len(plans):
            error = UncertainError(
                f"{self.name}: Xero answered {len(elements)} invoices for {len(plans)} sent",
                status=response.status_code,
                correlation_id=correlation,
            )
            return {plan.idempotency_key: PushOutcome(plan.idempotency_key, error=error) for plan in plans}
        outcomes: dict[str, PushOutcome] = {}
        taken: list[InvoicePlan] = []
        for plan, element in zip(plans, elements, strict=True):
            outcome = self._outcome(plan, element, correlation)
            if outcome is None:
                taken.append(plan)
            else:
                outcomes[plan.idempotency_key] = outcome
        if taken:
            outcomes.update(self._resolve_taken(taken))
        return outcomes

    def _outcome(self, plan: InvoicePlan, element: Mapping[str, Any], correlation: str) -> PushOutcome | None:
        """The outcome of one answer element; None when its number is taken (look it up)."""
        key = plan.idempotency_key
        if str(element.get("InvoiceNumber", "")).casefold() != plan.invoice_number.casefold():
            error = UncertainError(
                f"{self.name}: Xero answered invoice {element.get('InvoiceNumber')!r} "
                f"in the place of {plan.invoice_number!r}",
                correlation_id=correlation,
            )
            return PushOutcome(key, error=error)
        if not is_error_element(element):
            try:
                return PushOutcome(key, ref=self._ref(element, plan, correlation, existed=False))
            except UncertainError as exc:
                return PushOutcome(key, error=exc)
        messages = validation_messages(element)
        if is_duplicate_number(messages):
            return None
        return self._rejected(
            plan,
            "; ".join(messages) or "Xero refused it without a message",
            status=400,
            provider_code="ValidationException",
            correlation_id=correlation,
        )

    def _resolve_taken(self, plans: Sequence[InvoicePlan]) -> dict[str, PushOutcome]:
        """Invoices whose number Xero says is taken: the existing invoice is the outcome."""
        try:
            found = self.find(plans)
        except RemoteError as exc:
            found = {}
            reason = f"its number is taken in Xero but the lookup failed: {exc.message}"
        else:
            reason = "its number is taken in Xero but no ACCREC invoice with it was found"
        outcomes: dict[str, PushOutcome] = {}
        for plan in plans:
            key = plan.idempotency_key
            ref = found.get(key)
            if ref is not None:
                outcomes[key] = PushOutcome(key, ref=ref)
            else:
                error = UncertainError(f"{self.name}: invoice {plan.invoice_number}: {reason}")
                outcomes[key] = PushOutcome(key, error=error)
        return outcomes

    # -- answers ------------------------------------------------------------------------
    def _ref(
        self, element: Mapping[str, Any], plan: InvoicePlan, correlation: str, *, existed: bool
    ) -> RemoteRef:
        invoice_id = element.get("InvoiceID")
        if not isinstance(invoice_id, str) or not invoice_id:
            raise UncertainError(
                f"{self.name}: Xero answered invoice {plan.invoice_number} without an InvoiceID",
                correlation_id=correlation,
            )
        return RemoteRef(
            remote_id=invoice_id,
            invoice_number=str(element.get("InvoiceNumber", plan.invoice_number)),
            total=element_total(element),
            tax=element_tax(element),
            correlation_id=correlation,
            already_existed=existed,
        )

    def _classify(self, response: requests.Response) -> RemoteError | None:
        """Xero's own error shapes (`adapters.xero_answers`), after noting the budget left."""
        self.limits = RateLimits.from_headers(response.headers)
        self._log.debug(
            "%s: Xero budget left: minute %s, day %s, app minute %s",
            self.name,
            self.limits.minute_remaining,
            self.limits.day_remaining,
            self.limits.app_minute_remaining,
        )
        return classify_answer(response, name=self.name, max_wait=self.client.retry.max_wait)
