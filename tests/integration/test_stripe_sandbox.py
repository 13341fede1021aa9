"""The stripe billing source over real sockets against the Stripe-like sandbox."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.stripe_billing import StripeBillingConfig, StripeBillingSource
from adapters.stripe_fields import from_minor_units
from connector.errors import AuthenticationError, ConfigError, InputProblem, RetryableError
from connector.http import RetryPolicy
from connector.maps import SkuMap
from connector.model import BillingPeriod
from connector.ports import AdapterContext, PullContext
from connector.tax import LineTax, TaxCategory, TaxScheme
from connector.taxing import TaxResolver
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.stripe import MONTH, T0, StripeSandbox

KEY_ENV = "STRIPE_SANDBOX_KEY"
STARTED = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    box = StripeSandbox()
    box.start()
    monkeypatch.setenv(KEY_ENV, box.secret_key)
    yield box
    box.stop()


def make_source(sandbox: StripeSandbox, *, attempts: int = 6, **overrides: Any) -> StripeBillingSource:
    values: dict[str, Any] = {
        "name": "stripe",
        "base_url": sandbox.url,
        "api_key_env": KEY_ENV,
        "timeout_connect": 1.0,
        "timeout_read": 1.0,
    }
    values.update(overrides)
    return StripeBillingSource(
        StripeBillingConfig(**values),
        AdapterContext(),
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05),
    )


def invoice_list(request: Request) -> bool:
    return request.method == "GET" and request.path == "/v1/invoices"


@dataclass
class Core:
    """Plays the core's part: keeps each batch's periods by key and commits its cursor."""

    source: StripeBillingSource
    cursor: dict[str, Any] | None = None
    periods: dict[str, BillingPeriod] = field(default_factory=dict)
    rejections: list[InputProblem] = field(default_factory=list)

    def pull(self, started: datetime = STARTED) -> list[BillingPeriod]:
        seen: list[BillingPeriod] = []
        for batch in self.source.pull(PullContext(cursor=self.cursor, started_at=started)):
            seen.extend(batch.records)
            self.periods.update((period.key, period) for period in batch.records)
            self.rejections.extend(batch.rejections)
            if batch.cursor is not None:
                assert self.cursor is None or batch.cursor["created"] >= self.cursor["created"]
                self.cursor = batch.cursor
        return seen


def expected_keys(sandbox: StripeSandbox) -> set[str]:
    keys = set()
    for invoice in sandbox.invoices.values():
        subscription = invoice["parent"]["subscription_details"]["subscription"]
        for line in sandbox.invoice_lines[invoice["id"]]:
            day = datetime.fromtimestamp(line["period"]["start"], UTC).date()
            keys.add(f"default/stripe/{subscription}/{day.isoformat()}")
    return keys


def test_every_period_arrives_exactly_once_through_pages_5xx_and_a_429_burst(
    sandbox: StripeSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.generate(250)
    sandbox.throttle(3, should_retry="true", retry_after="0")
    sandbox.faults.random(
        0.15, [Fault("status", status=500), Fault("status", status=503)], matches=invoice_list
    )
    caplog.set_level(logging.DEBUG)
    core = Core(make_source(sandbox, attempts=8))
    seen = core.pull()
    assert len(seen) == len({period.key for period in seen}) == 250
    assert set(core.periods) == expected_keys(sandbox) and core.rejections == []
    assert sandbox.rate_limited == 3 and sandbox.count("GET", "/v1/invoices") > 3 + 3
    assert core.cursor == {"created": max(invoice["created"] for invoice in sandbox.invoices.values())}
    assert sandbox.secret_key not in caplog.text


def test_amounts_are_exact_in_usd_jpy_kwd_and_eur(sandbox: StripeSandbox) -> None:
    sandbox.generate(8)
    core = Core(make_source(sandbox))
    core.pull()
    currencies = set()
    for invoice in sandbox.invoices.values():
        subscription = invoice["parent"]["subscription_details"]["subscription"]
        start = datetime.fromtimestamp(sandbox.invoice_lines[invoice["id"]][0]["period"]["start"], UTC).date()
        period = core.periods[f"default/stripe/{subscription}/{start.isoformat()}"]
        code = invoice["currency"].upper()
        billed = sum(line["amount"] for line in sandbox.invoice_lines[invoice["id"]])
        assert period.total.amount == from_minor_units(billed, code) and period.currency == code
        currencies.add(code)
    assert currencies == {"USD", "JPY", "KWD", "EUR"}
    kwd = next(p for p in core.periods.values() if p.currency == "KWD")
    assert str(kwd.lines[0].unit_price.amount) == "12.340"
    jpy = next(p for p in core.periods.values() if p.currency == "JPY")
    assert jpy.lines[0].unit_price.amount == Decimal(1500)
    usd = next(p for p in core.periods.values() if p.currency == "USD" and len(p.lines) == 2)
    assert {str(line.unit_price.amount) for line in usd.lines} == {"19.99", "0.005"}


@pytest.mark.parametrize(("source", "numbered"), [("custom_field", 0), ("metadata", 1)])
def test_po_number_from_custom_field_or_metadata(sandbox: StripeSandbox, source: str, numbered: int) -> None:
    ids = sandbox.generate(6)
    core = Core(make_source(sandbox, po_number_source=source))
    core.pull()
    by_po = {period.po_number for period in core.periods.values()}
    assert by_po == {None} | {f"PO-{index:05d}" for index in range(len(ids)) if index % 2 == numbered}


def test_a_second_pull_from_the_cursor_brings_nothing_new_then_only_what_is_new(
    sandbox: StripeSandbox,
) -> None:
    sandbox.generate(30)
    core = Core(make_source(sandbox, overlap_seconds=0))
    core.pull()
    before = dict(core.periods)
    calls = sandbox.count()
    again = core.pull()
    # Only the invoices of the cursor's own second come again (created[gte]), unchanged.
    assert len(again) == 2 and all(before[period.key] == period for period in again)
    assert core.periods == before and sandbox.count() - calls == 1
    overlapping = Core(make_source(sandbox), cursor=core.cursor, periods=dict(before))
    again = overlapping.pull()
    assert again and all(before[period.key] == period for period in again)  # unchanged: dropped by hash

    subscription = next(iter(sandbox.subscriptions.values()))
    customer = sandbox.customers[subscription["customer"]]
    item = subscription["items"]["data"][0]
    start = T0 + 40 * MONTH
    line = sandbox.line(subscription, item["price"], 1, start, start + MONTH)
    sandbox.add_invoice(customer, [line], subscription=subscription, created=core.cursor["created"] + 10)
    [new] = [period for period in core.pull() if period.key not in before]
    assert new.period_start == datetime.fromtimestamp(start, UTC).date()


def test_a_bad_invoice_is_reported_and_the_rest_goes_on(sandbox: StripeSandbox) -> None:
    sandbox.generate(20)
    subscription = next(iter(sandbox.subscriptions.values()))
    customer = sandbox.customers[subscription["customer"]]
    line = sandbox.line(
        subscription, subscription["items"]["data"][0]["price"], 1, T0 + 50 * MONTH, T0 + 51 * MONTH
    )
    line["period"]["end"] = "next month"
    bad = sandbox.add_invoice(customer, [line], subscription=subscription, created=T0 + 5)
    core = Core(make_source(sandbox, page_size=7))
    core.pull()
    assert len(core.periods) == 20
    [problem] = core.rejections
    assert (problem.document, problem.location, problem.field) == (
        bad["id"],
        f"line {line['id']}",
        "period.end",
    )
    assert problem.value == "next month"


def test_lines_beyond_the_embedded_ten_are_paged(sandbox: StripeSandbox) -> None:
    price = sandbox.add_price("eur", "4500", lookup_key="plan-eur")
    customer = sandbox.add_customer()
    subscription = sandbox.add_subscription(customer, [(price, 1)])
    lines = [sandbox.line(subscription, price, 1, T0 + i * MONTH, T0 + (i + 1) * MONTH) for i in range(25)]
    sandbox.add_invoice(customer, lines, subscription=subscription, created=T0)
    core = Core(make_source(sandbox, page_size=10, sku_source="lookup_key"))
    core.pull()
    assert len(core.periods) == 25 and {p.lines[0].sku for p in core.periods.values()} == {"plan-eur"}
    assert sandbox.count("GET", "/v1/invoices/") == 2 and sandbox.count("GET", "/v1/prices/") == 1


def test_previews_come_from_create_preview_with_the_customers_reference(sandbox: StripeSandbox) -> None:
    price = sandbox.add_price("kwd", "12340", lookup_key="plan-kwd")
    customer = sandbox.add_customer(metadata={"erp_id": "ERP-KW"}, po_field="PO-KW-1")
    subscription = sandbox.add_subscription(customer, [(price, 2)], period_start=T0)
    sandbox.add_subscription(customer, [(price, 1)], status="canceled")
    core = Core(make_source(sandbox, include_upcoming=True, customer_ref_source="metadata:erp_id"))
    [period] = core.pull()
    assert period.status == "upcoming" and period.customer_ref == "ERP-KW" and period.po_number == "PO-KW-1"
    assert period.subscription_id == subscription["id"]
    assert period.period_start == datetime.fromtimestamp(T0 + MONTH, UTC).date()
    assert str(period.total.amount) == "24.680"
    assert sandbox.previews_served == 1 and sandbox.count("GET", "/v1/invoices/upcoming") == 0


def test_a_version_the_api_reports_differently_stops_the_pull(sandbox: StripeSandbox) -> None:
    sandbox.generate(2)
    sandbox.answer_version = "2025-06-30.basil"
    with pytest.raises(ConfigError, match=r"2025-06-30\.basil"):
        Core(make_source(sandbox)).pull()


def test_a_wrong_key_is_refused_without_showing_it(
    sandbox: StripeSandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk_test_51WrongKey9876543210fedcba"
    monkeypatch.setenv(KEY_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as raised:
        Core(make_source(sandbox)).pull()
    assert wrong not in str(raised.value) and wrong not in caplog.text
    assert sandbox.count() == 1


def test_the_client_budget_keeps_under_the_account_rate_limit(sandbox: StripeSandbox) -> None:
    sandbox.generate(24)
    sandbox.rate_limit(2)
    with pytest.raises(RetryableError):  # three calls at once are over the account's limit
        Core(make_source(sandbox, page_size=8, attempts=3)).pull()
    assert sandbox.rate_limited > 0
    sandbox.rate_limited = 0
    sandbox.rate_limit(2)
    core = Core(make_source(sandbox, page_size=8, rate_per_second=1.5, burst=1))
    core.pull()
    assert len(core.periods) == 24 and sandbox.rate_limited == 0


def test_invoices_with_tax_give_lines_with_the_billing_systems_tax_each_tax_rate_read_once(
    sandbox: StripeSandbox,
) -> None:
    vat = sandbox.add_tax_rate("19", country="DE")
    uk = sandbox.add_tax_rate("20", country="GB", inclusive=True)
    state = sandbox.add_tax_rate("4", country="US", state="NY", tax_type="sales_tax", display_name="NY")
    city = sandbox.add_tax_rate("4.875", country="US", state="NY", tax_type="sales_tax", display_name="NYC")
    zero = sandbox.add_tax_rate("0", country="DE")
    eur = sandbox.add_price("eur", "4500", lookup_key="plan-eur")
    gbp = sandbox.add_price("gbp", "1200", lookup_key="plan-gbp")
    usd = sandbox.add_price("usd", "1999", lookup_key="plan-usd")
    jpy = sandbox.add_price("jpy", "1500", lookup_key="plan-jpy")

    def bill(price: dict[str, Any], quantity: int, month: int, taxes: Any, **extra: Any) -> dict[str, Any]:
        customer = sandbox.add_customer()
        subscription = sandbox.add_subscription(customer, [(price, quantity)])
        start = T0 + month * MONTH
        amount = int(Decimal(price["unit_amount_decimal"]) * quantity)
        entries = taxes(amount) if callable(taxes) else taxes
        line = sandbox.line(subscription, price, quantity, start, start + MONTH, taxes=entries)
        return sandbox.add_invoice(customer, [line], subscription=subscription, created=T0 + month, **extra)

    german = bill(eur, 2, 0, lambda amount: sandbox.taxes_for(amount, [vat]))
    german_again = bill(eur, 1, 1, lambda amount: sandbox.taxes_for(amount, [vat]))
    british = bill(gbp, 3, 2, lambda amount: sandbox.taxes_for(amount, [uk], behavior="inclusive"))
    new_york = bill(usd, 4, 3, lambda amount: sandbox.taxes_for(amount, [state, city]))
    reverse = bill(eur, 1, 4, lambda amount: [sandbox.tax_entry(0, vat, reason="reverse_charge")])
    reverse_customer = bill(eur, 1, 5, [], customer_tax_exempt="reverse")
    unregistered = bill(jpy, 3, 6, lambda amount: [sandbox.tax_entry(0, zero, reason="not_collecting")])
    untaxed = bill(usd, 1, 7, [])
    unknown = bill(eur, 1, 8, lambda amount: [sandbox.tax_entry(950, "txr_gone")])

    core = Core(make_source(sandbox))
    core.pull()
    by_invoice = {}
    for invoice_id in (
        german,
        german_again,
        british,
        new_york,
        reverse,
        reverse_customer,
        unregistered,
        untaxed,
    ):
        subscription = invoice_id["parent"]["subscription_details"]["subscription"]
        [period] = [p for p in core.periods.values() if p.subscription_id == subscription]
        [by_invoice[invoice_id["id"]]] = period.lines

    line = by_invoice[german["id"]]
    assert line.tax == LineTax(category=TaxCategory.STANDARD, rate=Decimal(19), amount=Decimal("17.10"),
                               origin="billing")  # fmt: skip
    assert line.amount.amount == Decimal("90.00")
    line = by_invoice[british["id"]]  # 36.00 GBP including 20% VAT: 30.00 net, 6.00 tax
    assert (
        line.tax is not None and line.tax.amount == Decimal("6.00") and line.amount.amount == Decimal("30.00")
    )
    line = by_invoice[new_york["id"]]  # 79.96 USD at 4% + 4.875%: 3.20 + 3.90
    assert line.tax == LineTax(scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD,
                               rate=Decimal("8.875"), jurisdiction="US-NY", amount=Decimal("7.10"),
                               origin="billing")  # fmt: skip
    for ident in (reverse["id"], reverse_customer["id"]):
        tax = by_invoice[ident].tax
        assert tax is not None and (tax.category, tax.exemption_reason_code) == (
            TaxCategory.REVERSE_CHARGE,
            "VATEX-EU-AE",
        )
    tax = by_invoice[unregistered["id"]].tax
    assert tax is not None and tax.category is TaxCategory.OUTSIDE_SCOPE and tax.amount == Decimal(0)
    assert by_invoice[unregistered["id"]].amount.amount == Decimal(4500)
    assert by_invoice[untaxed["id"]].tax is None

    # The stated amounts are the line's net times its rate within rounding: the resolver keeps them.
    resolver = TaxResolver(["billing"], SkuMap(), required=False)
    for period in core.periods.values():
        if any(line.tax for line in period.lines):
            outcome = resolver.resolve(period, None)
            assert outcome.period is not None or all(
                reason.code == "tax_needs_buyer_vat_id" for reason in outcome.reasons
            ), outcome.reasons

    [problem] = core.rejections
    line_id = sandbox.invoice_lines[unknown["id"]][0]["id"]
    assert (problem.document, problem.location, problem.field, problem.value) == (
        unknown["id"], f"line {line_id}", "taxes[0].tax_rate_details.tax_rate", "txr_gone",
    )  # fmt: skip
    assert "No such tax rate" in problem.reason
    assert sandbox.tax_rate_reads == {vat["id"]: 1, uk["id"]: 1, state["id"]: 1, city["id"]: 1, zero["id"]: 1,
                                      "txr_gone": 1}  # fmt: skip
