"""A Stripe-like Billing API on 127.0.0.1, answering in the 2025-03-31.basil shapes.

What it does as Stripe does: bearer auth with the secret key (401 `Invalid API Key provided`),
the `Stripe-Version` request header (unknown version: 400; absent: the account's default) echoed
on every answer with a `Request-Id`; lists newest first with `limit` (1-100), `starting_after`,
`has_more`, `created[gte|gt|lte|lt]`, `status`, `customer`; `expand[]` of the customer (`data.`
prefix in lists, at most four levels); invoices embedding their first 10 lines and the rest at
`/v1/invoices/{id}/lines`; `custom_fields` and `metadata`; amounts in minor units for USD, EUR,
JPY (zero-decimal) and KWD (three decimals, last digit 0); `POST /v1/invoices/create_preview`
(form-encoded, needs `customer` and `subscription`); errors as `{"error": {type, code, message}}`.
Tax as basil writes it: line `taxes[]` (amount, taxable_amount, tax_behavior, type
`tax_rate_details` naming a TaxRate id, taxability_reason), invoice `total_taxes[]`, `total`
with exclusive tax added, `customer_tax_exempt`, `automatic_tax`, and `GET /v1/tax_rates/{id}`
(404 `resource_missing` "No such tax rate" for an unknown id); `tax_rate_reads` counts reads.
Test controls: `generate(n)`, `add_*` builders, `throttle(n)` (Stripe-shaped 429s with
`Stripe-Should-Retry` and an optional `Retry-After`), `rate_limit(per_second)`, `answer_version`
(claim another API version), and the base class's FaultPlan.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

from tests.sandboxes.base import Reply, Request, Sandbox

API_VERSION = "2025-03-31.basil"
KNOWN_VERSIONS = frozenset({"2025-03-31.basil", "2025-04-30.basil", "2025-05-28.basil", "2025-06-30.basil"})
INLINE_LINES = 10
MONTH = 30 * 86400
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
# (currency, unit_amount_decimal in minor units, lookup key): 19.99 USD, 1500 JPY, 12.340 KWD, 45.00 EUR
PLANS = [
    ("usd", "1999", "plan-pro-usd"),
    ("jpy", "1500", "plan-pro-jpy"),
    ("kwd", "12340", "plan-pro-kwd"),
    ("eur", "4500", "plan-pro-eur"),
]


_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _with_numbers(obj: dict[str, Any]) -> bytes:
    """JSON with the object's Decimals written as JSON numbers (8.875, not "8.875"), as Stripe does."""
    marked = {k: f"\u0000{v}\u0000" if isinstance(v, Decimal) else v for k, v in obj.items()}
    text = json.dumps(marked)
    return re.sub(r'"\\u0000([-0-9.]+)\\u0000"', r"\1", text).encode("utf-8")


def stripe_error(status: int, kind: str, message: str, code: str | None = None, **extra: Any) -> Reply:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    error.update(extra)
    return Reply(status, {"error": error})


@dataclass
class _Throttle:
    times: int
    should_retry: str | None
    retry_after: str | None


class StripeSandbox(Sandbox):
    """An in-process Stripe account with customers, prices, subscriptions and invoices."""

    def __init__(
        self,
        *,
        secret_key: str = "sk_test_51SandboxKey0123456789abcdef",
        account_version: str = "2024-06-20",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.secret_key = secret_key
        self.account_version = account_version
        self.answer_version: str | None = None
        self.clock = clock
        self.customers: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_lines: dict[str, list[dict[str, Any]]] = {}
        self.tax_rates: dict[str, dict[str, Any]] = {}
        self.tax_rate_reads: dict[str, int] = {}
        self.previews_served = 0
        self.rate_limited = 0
        self._order: dict[str, int] = {}
        self._seq = itertools.count(1)
        self._throttles: deque[_Throttle] = deque()
        self._rate: tuple[float, str | None] | None = None
        self._window: deque[float] = deque()
        self._ids = threading.Lock()

    # -- builders -----------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        with self._ids:
            return f"{prefix}_{next(self._seq):06d}{secrets.token_hex(4)}"

    def add_customer(
        self, *, name: str = "Acme Corp", metadata: dict[str, str] | None = None, po_field: str | None = None
    ) -> dict[str, Any]:
        """A customer; `po_field` sets its invoice custom field "PO Number" (copied onto invoices)."""
        ident = self.new_id("cus")
        fields = [{"name": "PO Number", "value": po_field}] if po_field else []
        customer = {
            "id": ident,
            "object": "customer",
            "name": name,
            "metadata": dict(metadata or {}),
            "invoice_settings": {"custom_fields": fields or None},
        }
        with self.lock:
            self.customers[ident] = customer
        return customer

    def add_price(
        self,
        currency: str,
        unit_amount_decimal: str,
        *,
        lookup_key: str | None = None,
        interval: str = "month",
    ) -> dict[str, Any]:
        ident = self.new_id("price")
        unit = Decimal(unit_amount_decimal)
        price = {
            "id": ident,
            "object": "price",
            "currency": currency,
            "lookup_key": lookup_key,
            "product": self.new_id("prod"),
            "type": "recurring",
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
            "unit_amount": int(unit) if unit == unit.to_integral_value() else None,
            "unit_amount_decimal": unit_amount_decimal,
        }
        with self.lock:
            self.prices[ident] = price
        return price

    def add_tax_rate(
        self,
        percentage: str,
        *,
        country: str = "DE",
        state: str | None = None,
        tax_type: str = "vat",
        inclusive: bool = False,
        display_name: str = "VAT",
    ) -> dict[str, Any]:
        """A TaxRate; its percentage is written as a JSON number, as Stripe does."""
        ident = self.new_id("txr")
        rate = {
            "id": ident,
            "object": "tax_rate",
            "active": True,
            "country": country,
            "state": state,
            "display_name": display_name,
            "effective_percentage": Decimal(percentage),
            "inclusive": inclusive,
            "jurisdiction": state or country,
            "jurisdiction_level": "state" if state else "country",
            "livemode": False,
            "percentage": Decimal(percentage),
            "tax_type": tax_type,
        }
        with self.lock:
            self.tax_rates[ident] = rate
        return rate

    @staticmethod
    def tax_entry(
        amount: int,
        rate: dict[str, Any] | str,
        *,
        reason: str | None = "standard_rated",
        behavior: str = "exclusive",
        taxable: int | None = None,
    ) -> dict[str, Any]:
        """One `taxes[]` entry of a line, naming the TaxRate by id."""
        return {
            "amount": amount,
            "taxable_amount": taxable,
            "tax_behavior": behavior,
            "type": "tax_rate_details",
            "tax_rate_details": {"tax_rate": rate if isinstance(rate, str) else rate["id"]},
            "taxability_reason": reason,
        }

    @staticmethod
    def taxes_for(
        amount: int,
        rates: list[dict[str, Any]],
        *,
        reason: str = "standard_rated",
        behavior: str = "exclusive",
    ) -> list[dict[str, Any]]:
        """The entries Stripe computes for a line of `amount` at `rates`, each rounded half-up."""
        total = sum((Decimal(rate["percentage"]) for rate in rates), Decimal(0))
        taxable = (
            amount
            if behavior == "exclusive"
            else int((Decimal(amount) * 100 / (100 + total)).quantize(Decimal(1), ROUND_HALF_UP))
        )
        entries = []
        for rate in rates:
            tax = int(
                (Decimal(taxable) * Decimal(rate["percentage"]) / 100).quantize(Decimal(1), ROUND_HALF_UP)
            )
            entries.append(
                StripeSandbox.tax_entry(tax, rate, reason=reason, behavior=behavior, taxable=taxable)
            )
        if behavior == "inclusive" and entries:  # the taxes make up the rest of the gross
            entries[-1]["amount"] = amount - taxable - sum(e["amount"] for e in entries[:-1])
        return entries

    def add_subscription(
        self,
        customer: dict[str, Any],
        items: list[tuple[dict[str, Any], int]],
        *,
        period_start: int = T0,
        status: str = "active",
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A subscription whose items are in their period starting `period_start` (30-day months)."""
        ident = self.new_id("sub")
        subscription = {
            "id": ident,
            "object": "subscription",
            "customer": customer["id"],
            "status": status,
            "collection_method": "send_invoice",
            "currency": items[0][0]["currency"],
            "metadata": dict(metadata or {}),
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": self.new_id("si"),
                        "object": "subscription_item",
                        "price": price,
                        "quantity": quantity,
                        "current_period_start": period_start,
                        "current_period_end": period_start + MONTH,
                    }
                    for price, quantity in items
                ],
                "has_more": False,
            },
        }
        with self.lock:
            self.subscriptions[ident] = subscription
        return subscription

    def line(
        self,
        subscription: dict[str, Any] | None,
        price: dict[str, Any],
        quantity: int,
        start: int,
        end: int,
        *,
        amount: int | None = None,
        proration: bool = False,
        taxes: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An invoice line item as basil writes it (subscription item or plain invoice item)."""
        unit = Decimal(price["unit_amount_decimal"])
        billed = amount if amount is not None else int((unit * quantity).to_integral_value())
        item = next(
            (
                i
                for i in (subscription or {}).get("items", {}).get("data", [])
                if i["price"]["id"] == price["id"]
            ),
            None,
        )
        if subscription is not None and item is not None:
            parent = {
                "type": "subscription_item_details",
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": proration,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription["id"],
                    "subscription_item": item["id"],
                },
            }
        else:
            parent = {
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": self.new_id("ii"),
                    "proration": proration,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription["id"] if subscription else None,
                },
            }
        return {
            "id": self.new_id("il"),
            "object": "line_item",
            "amount": billed,
            "currency": price["currency"],
            "description": f"{quantity} × {price.get('lookup_key') or price['product']}",
            "discountable": True,
            "livemode": False,
            "metadata": {},
            "parent": parent,
            "period": {"start": start, "end": end},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "quantity": quantity,
            "taxes": list(taxes or []),
        }

    def add_invoice(
        self,
        customer: dict[str, Any],
        lines: list[dict[str, Any]],
        *,
        subscription: dict[str, Any] | None = None,
        created: int | None = None,
        status: str = "open",
        currency: str | None = None,
        custom_fields: list[dict[str, str]] | None = None,
        metadata: dict[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store an invoice; its custom fields default to the customer's (as Stripe copies them)."""
        ident = self.new_id("in")
        moment = int(self.clock()) if created is None else created
        subtotal = sum(line["amount"] for line in lines)
        entries = [entry for line in lines for entry in line.get("taxes") or []]
        exclusive = sum(e["amount"] for e in entries if e["tax_behavior"] == "exclusive")
        total = subtotal + exclusive
        total_taxes: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in entries:
            key = (entry["tax_rate_details"]["tax_rate"], entry["taxability_reason"] or "")
            summed = total_taxes.setdefault(key, dict(entry, amount=0, taxable_amount=0))
            summed["amount"] += entry["amount"]
            summed["taxable_amount"] += entry["taxable_amount"] or 0
        starts = [line["period"]["start"] for line in lines] or [moment]
        invoice: dict[str, Any] = {
            "id": ident,
            "object": "invoice",
            "account_country": "US",
            "amount_due": total,
            "amount_paid": total if status == "paid" else 0,
            "amount_remaining": 0 if status == "paid" else total,
            "collection_method": "send_invoice",
            "created": moment,
            "currency": currency or (lines[0]["currency"] if lines else "usd"),
            "custom_fields": custom_fields
            if custom_fields is not None
            else customer["invoice_settings"]["custom_fields"],
            "customer": customer["id"],
            "customer_name": customer["name"],
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "effective_at": None if status == "draft" else moment,
            "livemode": False,
            "metadata": dict(metadata or {}),
            "number": None if status == "draft" else f"SBX-{len(self.invoices) + 1:05d}",
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
            }
            if subscription
            else None,
            # what basil says not to reconcile on: one period back for subscription invoices
            "period_start": min(starts) - MONTH,
            "period_end": min(starts),
            "status": status,
            "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal - (sum(e["amount"] for e in entries) - exclusive),
            "total": total,
            "total_excluding_tax": subtotal - (sum(e["amount"] for e in entries) - exclusive),
            "total_taxes": list(total_taxes.values()),
        }
        invoice.update(extra)
        with self.lock:
            self.invoices[ident] = invoice
            self.invoice_lines[ident] = [dict(line, invoice=ident) for line in lines]
            self._order[ident] = next(self._seq)
        return invoice

    def generate(self, n: int, *, per_second: int = 2, start: int = T0, status: str = "open") -> list[str]:
        """`n` invoices over USD, JPY, KWD and EUR subscriptions, `per_second` sharing each created second.

        Every invoice bills one month of one subscription (one or two lines), so each gives
        exactly one billing period; PO numbers alternate between the custom field and metadata.
        """
        plans = [self.add_price(currency, unit, lookup_key=key) for currency, unit, key in PLANS]
        addon = self.add_price("usd", "0.5", lookup_key="api-calls-usd")
        subscriptions = []
        for index in range(max(1, min(n, 8))):
            plan = plans[index % len(plans)]
            customer = self.add_customer(
                name=f"Customer {index}", metadata={"erp_id": f"ERP-{index:03d}"}, po_field=None
            )
            items = [(plan, 1 + index % 3)] + ([(addon, 1000)] if index == 0 else [])
            subscriptions.append(self.add_subscription(customer, items, period_start=start))
        ids = []
        for index in range(n):
            subscription = subscriptions[index % len(subscriptions)]
            month = index // len(subscriptions)
            begin = start + month * MONTH
            customer = self.customers[subscription["customer"]]
            lines = [
                self.line(subscription, item["price"], item["quantity"], begin, begin + MONTH)
                for item in subscription["items"]["data"]
            ]
            po = f"PO-{index:05d}"
            use_field = index % 2 == 0
            invoice = self.add_invoice(
                customer,
                lines,
                subscription=subscription,
                created=start + index // per_second,
                status=status,
                custom_fields=[{"name": "PO Number", "value": po}] if use_field else [],
                metadata={} if use_field else {"po_number": po},
            )
            ids.append(invoice["id"])
        return ids

    # -- test controls ------------------------------------------------------------------
    def throttle(
        self, times: int, *, should_retry: str | None = "true", retry_after: str | None = None
    ) -> None:
        """Answer the next `times` requests with Stripe's 429."""
        with self.lock:
            self._throttles.append(_Throttle(times, should_retry, retry_after))

    def rate_limit(self, per_second: float, *, retry_after: str | None = None) -> None:
        """Answer 429 to requests beyond `per_second` in any one-second window."""
        with self.lock:
            self._rate = (per_second, retry_after)
            self._window.clear()

    def ordered_invoices(self) -> list[dict[str, Any]]:
        """Invoices newest first, as the list endpoint returns them."""
        with self.lock:
            return sorted(self.invoices.values(), key=self._sort_key, reverse=True)

    def rendered(self, invoice_id: str, *, expand_customer: bool = False) -> dict[str, Any]:
        """An invoice as the API returns it (lines embedded), e.g. for mocked answers."""
        return self._render(self.invoices[invoice_id], expand=expand_customer)

    def _sort_key(self, invoice: dict[str, Any]) -> tuple[int, int]:
        return invoice["created"], self._order[invoice["id"]]

    # -- dispatch -----------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        reply = self._answer(request)
        reply.headers.setdefault("Request-Id", f"req_{secrets.token_hex(7)}")
        requested = request.header("stripe-version")
        version = requested if requested in KNOWN_VERSIONS else self.account_version
        reply.headers.setdefault("Stripe-Version", self.answer_version or version)
        return reply

    def _answer(self, request: Request) -> Reply:
        auth = request.header("authorization")
        if not auth:
            return stripe_error(401, "invalid_request_error", "You did not provide an API key.")
        if auth != f"Bearer {self.secret_key}":
            shown = auth.removeprefix("Bearer ")[-4:]
            return stripe_error(
                401, "invalid_request_error", f"Invalid API Key provided: sk_test_****{shown}"
            )
        version = request.header("stripe-version")
        if version and version not in KNOWN_VERSIONS:
            return stripe_error(400, "invalid_request_error", f"Invalid Stripe API version: {version}")
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        params = request.query
        if request.method == "POST":
            params = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        parts = [part for part in request.path.split("/") if part]
        route = (request.method, *parts)
        if route == ("GET", "v1", "invoices"):
            return self._list(self.ordered_invoices(), params, "/v1/invoices", self._invoice_filter(params))
        if route == ("POST", "v1", "invoices", "create_preview"):
            return self._preview(params)
        if route[:3] == ("GET", "v1", "invoices") and len(parts) == 3 and parts[2] == "upcoming":
            return stripe_error(
                400, "invalid_request_error", "This endpoint was removed in 2025-03-31.basil."
            )
        if route[:3] == ("GET", "v1", "invoices") and len(parts) == 4 and parts[3] == "lines":
            return self._lines(parts[2], params)
        if route == ("GET", "v1", "subscriptions"):
            with self.lock:
                subs = sorted(self.subscriptions.values(), key=lambda s: s["id"], reverse=True)
            wanted = (params.get("status") or [""])[0]
            return self._list(subs, params, "/v1/subscriptions", lambda s: self._sub_status(s, wanted))
        if route[:3] == ("GET", "v1", "prices") and len(parts) == 3:
            return self._one(self.prices, parts[2], "price")
        if route[:3] == ("GET", "v1", "tax_rates") and len(parts) == 3:
            with self.lock:
                self.tax_rate_reads[parts[2]] = self.tax_rate_reads.get(parts[2], 0) + 1
            reply = self._one(self.tax_rates, parts[2], "tax rate")
            if reply.status == 200:
                reply.body = _with_numbers(reply.body)
            return reply
        if route[:3] == ("GET", "v1", "customers") and len(parts) == 3:
            return self._one(self.customers, parts[2], "customer")
        return stripe_error(
            404, "invalid_request_error", f"Unrecognized request URL ({request.method}: {request.path})."
        )

    def _throttled(self) -> Reply | None:
        with self.lock:
            if self._throttles:
                head = self._throttles[0]
                head.times -= 1
                if head.times <= 0:
                    self._throttles.popleft()
                return self._too_many(head.should_retry, head.retry_after)
            if self._rate is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self._rate[0]:
                    return self._too_many("true", self._rate[1])
                self._window.append(now)
        return None

    def _too_many(self, should_retry: str | None, retry_after: str | None) -> Reply:
        self.rate_limited += 1
        reply = stripe_error(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Retry with exponential backoff.",
            code="rate_limit",
        )
        if should_retry is not None:
            reply.headers["Stripe-Should-Retry"] = should_retry
        if retry_after is not None:
            reply.headers["Retry-After"] = retry_after
        return reply

    # -- endpoints ----------------------------------------------------------------------
    def _invoice_filter(self, params: dict[str, list[str]]) -> Callable[[dict[str, Any]], bool] | Reply:
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        for op, test in _COMPARISONS.items():
            raw = _first(params, f"created[{op}]")
            if raw is None:
                continue
            if not raw.isdigit():
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"Invalid integer: {raw}",
                    code="parameter_invalid_integer",
                    param=f"created[{op}]",
                )
            bounds.append((test, int(raw)))
        status = _first(params, "status")
        if status is not None and status not in {"draft", "open", "paid", "uncollectible", "void"}:
            return stripe_error(400, "invalid_request_error", f"Invalid status: {status}", param="status")
        customer = _first(params, "customer")

        def keep(invoice: dict[str, Any]) -> bool:
            return (
                all(test(invoice["created"], bound) for test, bound in bounds)
                and (status is None or invoice["status"] == status)
                and (customer is None or invoice["customer"] == customer)
            )

        return keep

    @staticmethod
    def _sub_status(subscription: dict[str, Any], wanted: str) -> bool:
        if wanted == "all":
            return True
        if wanted:
            return bool(subscription["status"] == wanted)
        return bool(subscription["status"] not in {"canceled", "incomplete_expired"})

    def _list(
        self,
        ordered: list[dict[str, Any]],
        params: dict[str, list[str]],
        url: str,
        keep: Callable[[dict[str, Any]], bool] | Reply,
    ) -> Reply:
        if isinstance(keep, Reply):
            return keep
        raw_limit = (params.get("limit") or ["10"])[0]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            return stripe_error(
                400,
                "invalid_request_error",
                "limit must be between 1 and 100.",
                code="parameter_invalid_integer",
                param="limit",
            )
        expand = params.get("expand[]", [])
        for path in expand:
            problem = self._expand_problem(path, list_call=True)
            if problem is not None:
                return problem
        after = _first(params, "starting_after")
        start = 0
        if after is not None:
            index = next((i for i, obj in enumerate(ordered) if obj["id"] == after), None)
            if index is None:
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"No such object: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            start = index + 1
        matching = [obj for obj in ordered[start:] if keep(obj)]
        page = matching[: int(raw_limit)]
        data = [self._render(obj, expand="data.customer" in expand) for obj in page]
        return Reply(200, {"object": "list", "data": data, "has_more": len(matching) > len(page), "url": url})

    def _expand_problem(self, path: str, *, list_call: bool) -> Reply | None:
        if len(path.split(".")) > (5 if list_call else 4):
            return stripe_error(
                400, "invalid_request_error", f"You cannot expand more than 4 levels ({path})."
            )
        field = path.removeprefix("data.") if list_call else path
        if list_call and not path.startswith("data."):
            return stripe_error(
                400,
                "invalid_request_error",
                f"This property cannot be expanded ({path}). Try expanding 'data.{path}' instead.",
            )
        if field != "customer":
            return stripe_error(400, "invalid_request_error", f"This property cannot be expanded ({field}).")
        return None

    def _render(self, obj: dict[str, Any], *, expand: bool) -> dict[str, Any]:
        with self.lock:
            rendered = dict(obj)
            if obj.get("object") == "invoice":
                lines = self.invoice_lines[obj["id"]]
                rendered["lines"] = {
                    "object": "list",
                    "data": lines[:INLINE_LINES],
                    "has_more": len(lines) > INLINE_LINES,
                    "url": f"/v1/invoices/{obj['id']}/lines",
                }
            if expand and isinstance(obj.get("customer"), str):
                rendered["customer"] = self.customers[obj["customer"]]
            return rendered

    def _lines(self, invoice_id: str, params: dict[str, list[str]]) -> Reply:
        with self.lock:
            lines = self.invoice_lines.get(invoice_id)
        if lines is None:
            return stripe_error(
                404,
                "invalid_request_error",
                f"No such invoice: '{invoice_id}'",
                code="resource_missing",
                param="invoice",
            )
        return self._list(lines, params, f"/v1/invoices/{invoice_id}/lines", lambda line: True)

    def _one(self, store: dict[str, dict[str, Any]], ident: str, what: str) -> Reply:
        with self.lock:
            found = store.get(ident)
        if found is None:
            return stripe_error(
                404,
                "invalid_request_error",
                f"No such {what}: '{ident}'",
                code="resource_missing",
                param="id",
            )
        return Reply(200, found)

    def _preview(self, form: dict[str, list[str]]) -> Reply:
        customer_id = (form.get("customer") or [""])[0]
        subscription_id = (form.get("subscription") or [""])[0]
        if not customer_id:
            return stripe_error(
                400,
                "invalid_request_error",
                "Missing required param: customer.",
                code="parameter_missing",
                param="customer",
            )
        for path in form.get("expand[]", []):
            problem = self._expand_problem(path, list_call=False)
            if problem is not None:
                return problem
        with self.lock:
            subscription = self.subscriptions.get(subscription_id)
            customer = self.customers.get(customer_id)
        if subscription is None or customer is None or subscription["customer"] != customer_id:
            return stripe_error(
                400,
                "invalid_request_error",
                f"No such subscription: '{subscription_id}'",
                code="resource_missing",
                param="subscription",
            )
        if subscription["status"] in {"canceled", "incomplete_expired"}:
            return stripe_error(
                400,
                "invalid_request_error",
                "No upcoming invoices for customer.",
                code="invoice_upcoming_none",
            )
        self.previews_served += 1
        items = subscription["items"]["data"]
        lines = [
            dict(
                self.line(
                    subscription,
                    item["price"],
                    item["quantity"],
                    item["current_period_end"],
                    item["current_period_end"] + MONTH,
                ),
                id=self.new_id("il_tmp"),
            )
            for item in items
        ]
        created = min(item["current_period_end"] for item in items)
        preview = {
            "object": "invoice",
            "created": created,
            "currency": subscription["currency"],
            "custom_fields": customer["invoice_settings"]["custom_fields"],
            "customer": customer if "customer" in form.get("expand[]", []) else customer_id,
            "customer_name": customer["name"],
            "effective_at": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": "/v1/invoices/create_preview/lines",
            },
            "metadata": {},
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription_id,
                },
            },
            "status": "draft",
            "total": sum(line["amount"] for line in lines),
        }
        return Reply(200, preview)
