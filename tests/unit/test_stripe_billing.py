"""The stripe billing source against mocked HTTP (`responses`): paging, cursor, errors, previews."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
import pytest
import responses

from adapters.stripe_billing import StripeBillingConfig, StripeBillingSource
from connector.errors import AuthenticationError, ConfigError, RejectedError, RetryableError
from connector.http import RetryPolicy
from connector.ports import AdapterContext, AdapterKind, BillingBatch, BillingSource, Capability, PullContext
from tests.sandboxes.stripe import T0, StripeSandbox

BASE = "https://api.stripe.test"
INVOICES = f"{BASE}/v1/invoices"
KEY = "sk_live_unitTestKey0123456789"
VERSION = "2025-03-31.basil"
STARTED = datetime(2026, 6, 1, tzinfo=UTC)
OK_HEADERS = {"Stripe-Version": VERSION, "Request-Id": "req_unit"}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_TEST_KEY", KEY)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def box() -> StripeSandbox:
    """Used only to build invoice JSON in Stripe's shape; it is not started."""
    return StripeSandbox()


def make_source(sleeps: list[float] | None = None, **overrides: Any) -> StripeBillingSource:
    values: dict[str, Any] = {"name": "stripe", "base_url": BASE, "api_key_env": "STRIPE_TEST_KEY"}
    values.update(overrides)
    sink = sleeps if sleeps is not None else []
    return StripeBillingSource(
        StripeBillingConfig(**values),
        AdapterContext(),
        retry=RetryPolicy(max_attempts=4, base_delay=0.01, sleep=sink.append),
    )


def page(data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": "/v1/invoices"}


def pull(source: StripeBillingSource, cursor: dict[str, Any] | None = None) -> list[BillingBatch]:
    return list(source.pull(PullContext(cursor=cursor, started_at=STARTED)))


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def test_declares_a_billing_source_that_pulls_incrementally() -> None:
    source = make_source()
    assert StripeBillingSource.kind is AdapterKind.BILLING
    assert StripeBillingSource.capabilities == frozenset({Capability.INCREMENTAL})
    assert isinstance(source, BillingSource) and source.name == "stripe"


@pytest.mark.parametrize(
    "bad",
    [
        {"page_size": 101},
        {"api_version": "2024-06-20"},
        {"customer_ref_source": "email"},
        {"statuses": ("open", "sent")},
        {"rate_per_second": 500},
        {"api_key_env": None},
        {"tax_reasons": {"not_collecting": "X"}},
    ],
)
def test_config_refuses_bad_settings(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {"name": "stripe", "api_key_env": "STRIPE_TEST_KEY"}
    with pytest.raises(pydantic.ValidationError):
        StripeBillingConfig(**{**values, **bad})


def test_pages_with_starting_after_and_puts_the_cursor_on_the_last_page_only(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    box.generate(5)
    newest_first = [box.rendered(invoice["id"]) for invoice in box.ordered_invoices()]
    rsps.get(INVOICES, json=page(newest_first[:3], has_more=True), headers=OK_HEADERS)
    rsps.get(INVOICES, json=page(newest_first[3:]), headers=OK_HEADERS)
    batches = pull(make_source(page_size=3))
    assert [len(batch.records) for batch in batches] == [3, 2]
    assert [batch.cursor for batch in batches] == [None, {"created": max(i["created"] for i in newest_first)}]
    keys = [period.key for batch in batches for period in batch.records]
    assert len(keys) == len(set(keys)) == 5
    first, second = rsps.calls
    assert query(first)["limit"] == ["3"] and "starting_after" not in query(first)
    assert query(first)["created[lte]"] == [str(int(STARTED.timestamp()))]
    assert "created[gte]" not in query(first)
    assert query(second)["starting_after"] == [newest_first[2]["id"]]
    assert first.request.headers["Stripe-Version"] == VERSION
    assert first.request.headers["Authorization"] == f"Bearer {KEY}"


def test_a_later_pull_reads_from_the_cursor_less_the_overlap(rsps: responses.RequestsMock) -> None:
    rsps.get(INVOICES, json=page([]), headers=OK_HEADERS)
    [batch] = pull(make_source(overlap_seconds=600), cursor={"created": T0})
    assert query(rsps.calls[0])["created[gte]"] == [str(T0 - 600)]
    assert batch.records == [] and batch.cursor == {"created": T0}


def test_a_cursor_that_is_not_a_timestamp_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cursor"):
        pull(make_source(), cursor={"created": "yesterday"})


def test_invoices_outside_the_configured_statuses_advance_the_cursor_but_give_no_period(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    [ident] = box.generate(1, status="open")
    rsps.get(INVOICES, json=page([box.rendered(ident)]), headers=OK_HEADERS)
    [batch] = pull(make_source(statuses=("paid",)))
    assert batch.records == [] and batch.cursor == {"created": box.invoices[ident]["created"]}


def test_a_voided_invoice_is_always_read_so_its_stored_period_stops_being_invoiceable(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    [ident] = box.generate(1, status="void")
    rsps.get(INVOICES, json=page([box.rendered(ident)]), headers=OK_HEADERS)
    [batch] = pull(make_source())
    assert batch.records and {period.status for period in batch.records} == {"void"}


def test_remaining_lines_are_paged_from_the_lines_endpoint(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    price = box.add_price("usd", "100", lookup_key="seat")
    customer = box.add_customer()
    subscription = box.add_subscription(customer, [(price, 1)])
    lines = [box.line(subscription, price, 1, T0 + i * 86400, T0 + (i + 1) * 86400) for i in range(12)]
    invoice = box.add_invoice(customer, lines, subscription=subscription, created=T0)
    rendered = box.rendered(invoice["id"])
    assert rendered["lines"]["has_more"] and len(rendered["lines"]["data"]) == 10
    rsps.get(INVOICES, json=page([rendered]), headers=OK_HEADERS)
    rest = box.invoice_lines[invoice["id"]][10:]
    rsps.get(f"{INVOICES}/{invoice['id']}/lines", json=page(rest), headers=OK_HEADERS)
    [batch] = pull(make_source())
    assert len(batch.records) == 12 and batch.rejections == []
    assert query(rsps.calls[1])["starting_after"] == [lines[9]["id"]]


def test_lookup_key_skus_fetch_each_price_once(rsps: responses.RequestsMock, box: StripeSandbox) -> None:
    ids = box.generate(4)
    rsps.get(INVOICES, json=page([box.rendered(i) for i in ids]), headers=OK_HEADERS)
    for price in box.prices.values():
        rsps.get(f"{BASE}/v1/prices/{price['id']}", json=price, headers=OK_HEADERS)
    [batch] = pull(make_source(sku_source="lookup_key"))
    skus = {line.sku for period in batch.records for line in period.lines}
    assert skus == {"plan-pro-usd", "plan-pro-jpy", "plan-pro-kwd", "plan-pro-eur", "api-calls-usd"}
    price_calls = [call for call in rsps.calls if "/v1/prices/" in call.request.url]
    assert len(price_calls) == len({call.request.url for call in price_calls}) == 5


def test_customer_metadata_as_reference_expands_the_customer(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    [ident] = box.generate(1)
    rsps.get(INVOICES, json=page([box.rendered(ident, expand_customer=True)]), headers=OK_HEADERS)
    [batch] = pull(make_source(customer_ref_source="metadata:erp_id"))
    assert query(rsps.calls[0])["expand[]"] == ["data.customer"]
    assert batch.records[0].customer_ref == "ERP-000"


def test_a_bad_invoice_is_reported_with_its_line_and_the_rest_goes_on(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    ids = box.generate(3)
    invoices = [box.rendered(i) for i in ids]
    bad_line = invoices[1]["lines"]["data"][0]
    bad_line["pricing"] = dict(bad_line["pricing"], unit_amount_decimal="12.3.4")
    rsps.get(INVOICES, json=page(invoices), headers=OK_HEADERS)
    [batch] = pull(make_source())
    assert len(batch.records) == 2
    [problem] = batch.rejections
    assert (problem.document, problem.location) == (ids[1], f"line {bad_line['id']}")
    assert (problem.field, problem.value) == ("pricing.unit_amount_decimal", "12.3.4")
    assert batch.cursor is not None


def test_the_newest_invoice_of_a_period_wins_within_a_pull(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    [ident] = box.generate(1)
    older = box.rendered(ident)
    newer = dict(
        older,
        id="in_replacement",
        created=older["created"] + 60,
        custom_fields=[{"name": "PO Number", "value": "PO-NEW"}],
    )
    rsps.get(INVOICES, json=page([newer, older]), headers=OK_HEADERS)
    [batch] = pull(make_source())
    [period] = batch.records
    assert period.po_number == "PO-NEW"


def test_a_version_mismatch_the_api_reports_stops_the_pull(rsps: responses.RequestsMock) -> None:
    rsps.get(INVOICES, json=page([]), headers={"Stripe-Version": "2024-06-20"})
    with pytest.raises(ConfigError, match="2024-06-20"):
        pull(make_source())


def test_an_invalid_api_version_answer_is_a_config_error(rsps: responses.RequestsMock) -> None:
    error = {
        "error": {"type": "invalid_request_error", "message": "Invalid Stripe API version: 2025-03-31.basil"}
    }
    rsps.get(INVOICES, status=400, json=error, headers={"Request-Id": "req_v"})
    with pytest.raises(ConfigError, match="req_v") as raised:
        pull(make_source())
    assert not isinstance(raised.value, AuthenticationError)


def test_an_invalid_request_is_rejected_with_stripes_code_and_request_id(
    rsps: responses.RequestsMock,
) -> None:
    error = {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object"}
    }
    rsps.get(INVOICES, status=400, json=error, headers={"Request-Id": "req_400"})
    with pytest.raises(RejectedError) as raised:
        pull(make_source())
    assert raised.value.provider_code == "resource_missing" and raised.value.correlation_id == "req_400"
    assert len(rsps.calls) == 1


def test_a_refused_key_is_an_authentication_error_without_the_key(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    error = {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {KEY}"}}
    rsps.get(INVOICES, status=401, json=error, headers={"Request-Id": "req_401"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as raised:
        pull(make_source())
    assert KEY not in str(raised.value) and "req_401" in str(raised.value)
    assert KEY not in caplog.text


def test_429_is_retried_while_stripe_says_it_should_be(
    rsps: responses.RequestsMock, box: StripeSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    [ident] = box.generate(1)
    throttled = {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}}
    rsps.get(
        INVOICES, status=429, json=throttled, headers={"Stripe-Should-Retry": "true", "Retry-After": "2"}
    )
    rsps.get(INVOICES, status=500, json={"error": {"type": "api_error", "message": "boom"}})
    rsps.get(INVOICES, json=page([box.rendered(ident)]), headers=OK_HEADERS)
    sleeps: list[float] = []
    caplog.set_level(logging.DEBUG)
    [batch] = pull(make_source(sleeps=sleeps))
    assert len(batch.records) == 1 and len(rsps.calls) == 3
    assert sleeps[0] == 2.0
    assert KEY not in caplog.text


def test_should_retry_false_parks_a_429_instead_of_retrying(rsps: responses.RequestsMock) -> None:
    throttled = {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}}
    rsps.get(INVOICES, status=429, json=throttled, headers={"Stripe-Should-Retry": "false"})
    with pytest.raises(RetryableError) as raised:
        pull(make_source())
    assert raised.value.park and len(rsps.calls) == 1


def test_a_test_mode_key_caps_the_request_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_TEST_KEY", "sk_test_capped0123456789")
    source = make_source(rate_per_second=80)
    assert source.http.rate is not None and source.http.rate.rate == 25


def test_previews_the_next_invoice_of_each_live_subscription(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    price = box.add_price("jpy", "1500", lookup_key="plan-jpy")
    customer = box.add_customer(po_field="PO-NEXT")
    live = box.add_subscription(customer, [(price, 3)])
    ended = box.add_subscription(customer, [(price, 1)], status="canceled")
    rsps.get(INVOICES, json=page([]), headers=OK_HEADERS)
    rsps.get(f"{BASE}/v1/subscriptions", json=page([live, ended]), headers=OK_HEADERS)
    item = live["items"]["data"][0]
    line = box.line(live, price, 3, item["current_period_end"], item["current_period_end"] + 30 * 86400)
    preview = {
        "object": "invoice",
        "created": item["current_period_end"],
        "currency": "jpy",
        "customer": customer["id"],
        "customer_name": customer["name"],
        "custom_fields": [{"name": "PO Number", "value": "PO-NEXT"}],
        "lines": page([line]),
        "status": "draft",
    }
    rsps.post(f"{INVOICES}/create_preview", json=preview, headers=OK_HEADERS)
    batches = pull(make_source(include_upcoming=True))
    assert batches[0].cursor is None and batches[0].records == []
    [period] = [period for batch in batches for period in batch.records]
    assert (
        period.status == "upcoming" and period.po_number == "PO-NEXT" and period.subscription_id == live["id"]
    )
    assert str(period.total.amount) == "4500" and period.currency == "JPY"
    [post] = [call for call in rsps.calls if call.request.method == "POST"]
    assert parse_qs(post.request.body) == {"customer": [customer["id"]], "subscription": [live["id"]]}


def test_a_subscription_with_nothing_to_preview_is_skipped(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    price = box.add_price("usd", "100")
    subscription = box.add_subscription(box.add_customer(), [(price, 1)])
    rsps.get(INVOICES, json=page([]), headers=OK_HEADERS)
    rsps.get(f"{BASE}/v1/subscriptions", json=page([subscription]), headers=OK_HEADERS)
    none = {
        "error": {"type": "invalid_request_error", "code": "invoice_upcoming_none", "message": "No upcoming"}
    }
    rsps.post(f"{INVOICES}/create_preview", status=400, json=none)
    batches = pull(make_source(include_upcoming=True))
    assert [period for batch in batches for period in batch.records] == []


def test_a_preview_stripe_refuses_is_reported_and_the_others_go_on(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    price = box.add_price("usd", "100")
    customer = box.add_customer()
    gone, live = (box.add_subscription(customer, [(price, 1)]) for _ in range(2))
    rsps.get(INVOICES, json=page([]), headers=OK_HEADERS)
    rsps.get(f"{BASE}/v1/subscriptions", json=page([gone, live]), headers=OK_HEADERS)
    missing = {
        "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such sub"}
    }
    rsps.post(f"{INVOICES}/create_preview", status=404, json=missing)
    item = live["items"]["data"][0]
    line = box.line(live, price, 1, item["current_period_end"], item["current_period_end"] + 86400)
    preview = {
        "object": "invoice",
        "created": T0,
        "currency": "usd",
        "customer": customer["id"],
        "lines": page([line]),
        "status": "draft",
    }
    rsps.post(f"{INVOICES}/create_preview", json=preview, headers=OK_HEADERS)
    batches = pull(make_source(include_upcoming=True))
    [problem] = [problem for batch in batches for problem in batch.rejections]
    assert problem.document == f"preview of {gone['id']}" and "No such sub" in problem.reason
    [period] = [period for batch in batches for period in batch.records]
    assert period.subscription_id == live["id"]


def test_two_live_invoices_billing_one_period_start_are_quarantined_not_guessed(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    price = box.add_price("usd", "10000", lookup_key="seat")
    customer = box.add_customer()
    subscription = box.add_subscription(customer, [(price, 10)])
    renewal = box.add_invoice(
        customer,
        [box.line(subscription, price, 10, T0, T0 + 30 * 86400)],
        subscription=subscription,
        created=T0,
    )
    proration = box.add_invoice(
        customer,
        [box.line(subscription, price, 1, T0, T0 + 30 * 86400)],
        subscription=subscription,
        created=T0 + 60,
    )
    rendered = [box.rendered(proration["id"]), box.rendered(renewal["id"])]  # newest first
    rsps.get(INVOICES, json=page(rendered), headers=OK_HEADERS)
    [batch] = pull(make_source())
    assert len(batch.records) == 1
    [problem] = batch.rejections
    assert problem.document == renewal["id"] and proration["id"] in problem.reason


def test_tax_reasons_are_merged_onto_the_default_mapping() -> None:
    options = StripeBillingConfig(
        name="stripe",
        api_key_env="STRIPE_TEST_KEY",
        tax_reasons={"not_collecting": "E", "not_available": "O"},
    ).mapping_options()
    assert options.tax_reasons["not_collecting"] == "E" and options.tax_reasons["not_available"] == "O"
    assert options.tax_reasons["reverse_charge"] == "AE"


def _taxed_invoices(box: StripeSandbox, count: int) -> tuple[list[str], dict[str, Any]]:
    rate = box.add_tax_rate("19")
    ids = box.generate(count)
    for ident in ids:
        for line in box.invoice_lines[ident]:
            line["taxes"] = box.taxes_for(line["amount"], [rate])
        box.invoices[ident]["total_taxes"] = [
            dict(entry, amount=sum(e["amount"] for line in box.invoice_lines[ident] for e in line["taxes"]))
            for entry in box.invoice_lines[ident][0]["taxes"]
        ]
    return ids, rate


def test_a_tax_rate_that_cannot_be_read_for_now_stops_the_pull(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    ids, rate = _taxed_invoices(box, 2)
    rsps.get(INVOICES, json=page([box.rendered(i) for i in ids]), headers=OK_HEADERS)
    rsps.get(f"{BASE}/v1/tax_rates/{rate['id']}", status=503, json={"error": {"type": "api_error"}})
    with pytest.raises(RetryableError):
        pull(make_source())


def test_a_tax_rate_is_read_once_with_its_percentage_as_written(
    rsps: responses.RequestsMock, box: StripeSandbox
) -> None:
    ids, rate = _taxed_invoices(box, 4)
    rate["percentage"] = rate["effective_percentage"] = "PLACEHOLDER"
    body = json.dumps(rate).replace('"PLACEHOLDER"', "19.0")
    rsps.get(INVOICES, json=page([box.rendered(i) for i in ids]), headers=OK_HEADERS)
    rsps.get(f"{BASE}/v1/tax_rates/{rate['id']}", body=body, headers=OK_HEADERS)
    [batch] = pull(make_source())
    assert batch.rejections == [] and len(batch.records) == 4
    rates = {line.tax.rate for period in batch.records for line in period.lines if line.tax}
    assert rates == {Decimal("19.0")} and all(isinstance(r, Decimal) for r in rates)
    assert len([call for call in rsps.calls if "/v1/tax_rates/" in call.request.url]) == 1
