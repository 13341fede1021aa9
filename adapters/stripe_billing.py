"""The `stripe` billing source: billing periods from a Stripe account's invoices.

Reads `GET /v1/invoices` (newest first, `limit` / `starting_after` / `has_more`) created since the
cursor, with the API version pinned in `Stripe-Version` (the parser reads 2025-03-31.basil
fields; a response that reports another version stops the pull with a ConfigError). Lines
beyond those embedded in an invoice are paged from `/v1/invoices/{id}/lines`. Optionally the
next invoice of each live subscription is previewed with `POST /v1/invoices/create_preview`:
basil removed `/v1/invoices/upcoming`, and a preview is not saved, so it is read-only and safe
to repeat. Each invoice becomes one BillingPeriod per (subscription, line period start), as
`adapters.stripe_mapping` describes.

Tax: each line's `taxes[]` names TaxRates by id; each distinct one is read once per source
instance with `GET /v1/tax_rates/{id}` (through the same HTTP client and rate budget). A TaxRate
Stripe refuses (404 for an unknown id) quarantines the invoices naming it, with the line, field
and id; a TaxRate that cannot be read for now (429, 5xx after retries) stops the pull, so the
cursor stays and the invoices come again. `tax_reasons` maps Stripe taxability reasons to tax
categories on top of `adapters.stripe_fields.DEFAULT_TAX_REASONS`. The config is
`adapters.stripe_config`; what Stripe's answers mean (version, errors) is `adapters.stripe_errors`.

Cursor: `{"created": unix seconds}`, the newest `created` seen, never past the run's start.
Because lists come newest first, only the last page's batch carries the new cursor: a run that
stops half-way keeps the old cursor and reads the same invoices again. A pull re-reads
`overlap_seconds` before the cursor, so drafts finalized within that window (Stripe finalizes
subscription drafts about an hour after creation) arrive in their final state; the state layer
drops unchanged records by content hash. Later changes of older invoices need a resync.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import requests

from adapters.stripe_config import StripeBillingConfig
from adapters.stripe_errors import StripeClassifier
from adapters.stripe_fields import StripeMappingError
from adapters.stripe_mapping import map_invoice
from adapters.stripe_tax import TaxRates, tax_rate_ids
from connector.errors import ConfigError, InputProblem, RejectedError, RetryableError
from connector.http import HttpClient, RetryPolicy
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    BillingBatch,
    Capability,
    PullContext,
)
from connector.ratelimit import ConcurrencyLimit, TokenBucket
from connector.redact import GLOBAL_REDACTOR
from connector.secrets import resolve_secret

__all__ = ["StripeBillingConfig", "StripeBillingSource"]

TEST_MODE_RATE = 25.0  # Stripe's global limit in test mode (live: 100)
PREVIEWED_SUBSCRIPTIONS = frozenset({"active", "trialing", "past_due"})


def _list_data(body: Any, what: str) -> tuple[list[Any], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise RetryableError(f"{what}: the answer is not a Stripe list object")
    return body["data"], bool(body.get("has_more"))


class StripeBillingSource:
    """Pulls billing periods from Stripe invoices created since the cursor (and, optionally, previews)."""

    kind: ClassVar[AdapterKind] = AdapterKind.BILLING
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INCREMENTAL})
    Config: ClassVar[type[AdapterConfig]] = StripeBillingConfig

    def __init__(
        self, config: AdapterConfig, context: AdapterContext, *, retry: RetryPolicy | None = None
    ) -> None:
        if not isinstance(config, StripeBillingConfig):
            raise ConfigError(f"{config.name}: expected a stripe config, got type {config.type!r}")
        self.config = config
        self.name = config.name
        self.tenant = context.tenant
        self.log = context.logger
        self.options = config.mapping_options()
        api_key = resolve_secret(
            env=config.api_key_env,
            file=config.api_key_file,
            key=f"{config.name}.api_key",
            base_dir=context.base_dir,
        )
        rate = config.rate_per_second
        if api_key.startswith(("sk_test_", "rk_test_")) and rate > TEST_MODE_RATE:
            self.log.warning(
                "%s: a test-mode key allows %.0f requests/s; using that instead of %.0f",
                self.name,
                TEST_MODE_RATE,
                rate,
                extra={"adapter": self.name},
            )
            rate = TEST_MODE_RATE
        retry = retry or RetryPolicy(max_attempts=config.max_attempts)
        self.http = HttpClient(
            config.base_url,
            name=config.name,
            timeout=(config.timeout_connect, config.timeout_read),
            rate=TokenBucket(rate, config.burst),
            concurrency=ConcurrencyLimit(config.max_concurrency),
            retry=retry,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Stripe-Version": config.api_version,
                "Accept": "application/json",
            },
            classify=StripeClassifier(config.name, config.api_version, retry.max_wait),
        )
        self._prices: dict[str, Mapping[str, Any]] = {}
        self._tax_rates: dict[str, Mapping[str, Any]] = {}
        self._tax_rate_refusals: dict[str, str] = {}

    # -- public -------------------------------------------------------------------------
    def pull(self, context: PullContext) -> Iterator[BillingBatch]:
        """One batch per page of invoices; the last invoice page carries the new cursor."""
        started = int(context.started_at.timestamp())
        self._tax_rate_refusals = {}  # a refused TaxRate is asked again on the next run
        previous = self._cursor_created(context.cursor)
        params: dict[str, Any] = {"created[lte]": started}
        since = self._since(previous)
        if since is not None:
            params["created[gte]"] = since
        if len(self.config.statuses) == 1 and "void" in self.config.statuses:
            params["status"] = "void"
        if self.options.customer_metadata_key is not None:
            params["expand[]"] = ["data.customer"]
        emitted: dict[str, tuple[str, str]] = {}
        newest = previous
        for page, has_more in self._pages("/v1/invoices", params):
            batch = BillingBatch()
            for invoice in page:
                created = invoice.get("created") if isinstance(invoice, dict) else None
                if isinstance(created, int) and not isinstance(created, bool):
                    capped = min(created, started)
                    newest = capped if newest is None else max(newest, capped)
                # A voided invoice is always read: it must replace the stored period (status
                # void is never invoiced), whatever `statuses` selects.
                wanted = (*self.config.statuses, "void")
                if isinstance(invoice, dict) and invoice.get("status") not in wanted:
                    continue
                self._add_invoice(batch, invoice, emitted)
            if not has_more:
                batch.cursor = {"created": newest} if newest is not None else context.cursor
            yield batch
        if self.config.include_upcoming:
            yield from self._previews(emitted)

    # -- invoices -----------------------------------------------------------------------
    def _add_invoice(
        self, batch: BillingBatch, invoice: Any, emitted: dict[str, tuple[str, str]], *, preview: str = ""
    ) -> None:
        document = preview or (str(invoice.get("id")) if isinstance(invoice, dict) else "invoice")
        try:
            if not isinstance(invoice, dict):
                raise StripeMappingError("invoice", invoice, "must be an object")
            lines = self._all_lines(invoice, document)
            prices = self._prices_for(lines) if self.options.sku_source == "lookup_key" else {}
            periods = map_invoice(
                invoice,
                source=self.name,
                options=self.options,
                lines=lines,
                prices=prices,
                tax_rates=self._tax_rates_for(lines),
                tenant=self.tenant,
                status="upcoming" if preview else None,
            )
        except StripeMappingError as exc:
            location = f"line {exc.line_id}" if exc.line_id else ""
            batch.rejections.append(
                InputProblem(self.name, document, location, exc.field, GLOBAL_REDACTOR(exc.value), exc.reason)
            )
            return
        status = "upcoming" if preview else str(invoice.get("status", ""))
        for period in periods:
            taken = emitted.get(period.key)
            if taken is not None and taken[0] != document:
                # Newest first: a newer invoice replaces a voided one and any preview silently;
                # two live invoices (a renewal and a same-day proration) billing one period start
                # are not guessed into one period: a person decides.
                if "void" in (taken[1], status) or "upcoming" in (taken[1], status):
                    continue
                owner = taken[0]
                batch.rejections.append(
                    InputProblem(
                        self.name,
                        document,
                        f"period {period.period_start.isoformat()}",
                        "lines.period.start",
                        period.key,
                        f"another invoice ({owner}) bills the same subscription period; "
                        "reconcile it by hand or resync after the billing is settled",
                    )
                )
                continue
            emitted[period.key] = (document, status)
            batch.records.append(period)

    def _all_lines(self, invoice: dict[str, Any], document: str) -> list[Any]:
        embedded = invoice.get("lines")
        if not isinstance(embedded, dict):
            raise StripeMappingError("lines", embedded, "must be a list object")
        lines, has_more = _list_data(embedded, f"{self.name}: {document} lines")
        if not has_more:
            return list(lines)
        invoice_id = invoice.get("id")
        if not isinstance(invoice_id, str) or not lines:
            raise StripeMappingError(
                "lines.has_more", True, "the remaining lines of a preview cannot be read"
            )
        path = f"/v1/invoices/{quote(invoice_id, safe='')}/lines"
        found = list(lines)
        for page, _ in self._pages(path, {}, after=str(lines[-1].get("id"))):
            found.extend(page)
        return found

    def _prices_for(self, lines: Sequence[Any]) -> dict[str, Mapping[str, Any]]:
        """Price objects of the lines' string price ids, fetched once per source instance."""
        for line in lines:
            pricing = line.get("pricing") if isinstance(line, dict) else None
            details = pricing.get("price_details") if isinstance(pricing, dict) else None
            price = details.get("price") if isinstance(details, dict) else None
            if isinstance(price, str) and price and price not in self._prices:
                body = self._get(f"/v1/prices/{quote(price, safe='')}", {})
                self._prices[price] = body if isinstance(body, dict) else {}
        return self._prices

    def _tax_rates_for(self, lines: Sequence[Any]) -> TaxRates:
        """The TaxRates the lines name, each fetched once; those Stripe refuses, with why."""
        for ident in tax_rate_ids(lines):
            if ident in self._tax_rates or ident in self._tax_rate_refusals:
                continue
            try:
                response = self.http.request("GET", f"/v1/tax_rates/{quote(ident, safe='')}")
                body = response.json(parse_float=Decimal)  # percentages stay the decimals written
            except RejectedError as exc:
                self._tax_rate_refusals[ident] = exc.message
                continue
            except ValueError:
                raise RetryableError(f"{self.name}: unreadable JSON from GET /v1/tax_rates/{ident}") from None
            if isinstance(body, dict):
                self._tax_rates[ident] = body
            else:
                self._tax_rate_refusals[ident] = "the answer is not a TaxRate object"
        return TaxRates(found=self._tax_rates, unreadable=self._tax_rate_refusals)

    # -- previews -----------------------------------------------------------------------
    def _previews(self, emitted: dict[str, tuple[str, str]]) -> Iterator[BillingBatch]:
        for page, _ in self._pages("/v1/subscriptions", {}):
            batch = BillingBatch()
            for subscription in page:
                if (
                    not isinstance(subscription, dict)
                    or subscription.get("status") not in PREVIEWED_SUBSCRIPTIONS
                ):
                    continue
                document = f"preview of {subscription.get('id')}"
                try:
                    preview = self._preview(subscription)
                except RejectedError as exc:
                    # e.g. the subscription ended between the listing and the preview
                    problem = InputProblem(self.name, document, "", "subscription", "", exc.message)
                    batch.rejections.append(problem)
                    continue
                if preview is not None:
                    self._add_invoice(batch, preview, emitted, preview=document)
            yield batch

    def _preview(self, subscription: Mapping[str, Any]) -> Any:
        """The next invoice of a subscription, or None when it has nothing left to bill."""
        customer = subscription.get("customer")
        customer_id = customer.get("id") if isinstance(customer, dict) else customer
        form: list[tuple[str, str]] = [
            ("customer", str(customer_id)),
            ("subscription", str(subscription.get("id"))),
        ]
        if self.options.customer_metadata_key is not None:
            form.append(("expand[]", "customer"))
        try:
            response = self.http.request(
                "POST",
                "/v1/invoices/create_preview",
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                idempotent=True,  # a preview is not saved
            )
        except RejectedError as exc:
            if exc.provider_code != "invoice_upcoming_none":
                raise
            return None  # nothing left to bill on this subscription
        return self._json(response)

    # -- HTTP ---------------------------------------------------------------------------
    def _pages(
        self, path: str, params: Mapping[str, Any], *, after: str | None = None
    ) -> Iterator[tuple[list[Any], bool]]:
        """Each page of a Stripe list with whether more follow; always yields at least once."""
        while True:
            query = dict(params, limit=self.config.page_size)
            if after:
                query["starting_after"] = after
            data, has_more = _list_data(self._get(path, query), f"{self.name}: GET {path}")
            yield data, has_more
            if not has_more:
                return
            last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
            if not isinstance(last, str) or not last:
                raise RetryableError(f"{self.name}: GET {path} says has_more but its last object has no id")
            after = last

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        return self._json(self.http.request("GET", path, params=params))

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RetryableError(
                f"{self.name}: unreadable JSON from {response.request.path_url.split('?')[0]}",
                status=response.status_code,
                correlation_id=response.headers.get("Request-Id", ""),
            ) from None

    # -- cursor -------------------------------------------------------------------------
    def _cursor_created(self, cursor: Mapping[str, Any] | None) -> int | None:
        if not cursor or cursor.get("created") is None:
            return None
        value = cursor["created"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{self.name}: stored cursor created={value!r} is not a Unix timestamp")
        return value

    def _since(self, previous: int | None) -> int | None:
        if previous is not None:
            return max(0, previous - self.config.overlap_seconds)
        if self.config.start_date is None:
            return None
        start = self.config.start_date
        return int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
