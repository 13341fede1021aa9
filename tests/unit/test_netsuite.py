"""The NetSuite sink against recorded REST answers: request shape, read-back and error mapping."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import ValidationError
from responses import matchers

from adapters.netsuite import NetSuiteConfig, NetSuiteSink, decimal_json
from connector.errors import RejectedError, RetryableError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoiceLine, InvoicePlan, Money, PaymentTerms
from connector.ports import AdapterContext, AdapterKind, Capability, InvoiceSink

BASE = "https://1234567.suitetalk.api.netsuite.com/services/rest"
TOKEN = "ns-unit-token-5678"


def make_plan(number: str = "INV-00000000000A", **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": f"key-{number}",
        "invoice_number": number,
        "sink": "netsuite",
        "customer_ref": "ACME",
        "po_number": "PO-778",
        "po_key": "default/coupa/778",
        "po_revision": 1,
        "billing_key": f"default/billing/sub-1/{number}",
        "currency": "USD",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "payment_terms": PaymentTerms(code="NET30", net_days=30),
        "lines": (
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="SEAT",
                description="Seats, February",
                quantity=Decimal("12"),
                unit_price=Money.of("19.99", "USD"),
            ),
            InvoiceLine(
                line_no=2,
                po_line_no=3,
                sku="SUPPORT",
                quantity=Decimal("1"),
                unit_price=Money.of("250.00", "USD"),
            ),
        ),
        "period_start": date(2024, 2, 1),
        "period_end": date(2024, 2, 29),
        "memo": "PO PO-778, service period 2024-02-01 to 2024-02-29",
    }
    values.update(overrides)
    return InvoicePlan(**values)


def make_sink(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> NetSuiteSink:
    monkeypatch.setenv("NS_TOKEN", TOKEN)
    values: dict[str, Any] = {
        "name": "ns",
        "base_url": BASE,
        "access_token_env": "NS_TOKEN",
        "customer_ids": {"ACME": "101"},
        "item_ids": {"SEAT": "501", "SUPPORT": "502"},
        "terms_ids": {"NET30": "2"},
    }
    values.update(overrides)
    return NetSuiteSink(
        NetSuiteConfig(**values), AdapterContext(), retry=RetryPolicy(max_attempts=3, sleep=lambda s: None)
    )


def upsert_url(number: str) -> str:
    return f"{BASE}/record/v1/invoice/eid:{number}"


def ns_error(status: int, detail: str, code: str) -> dict[str, Any]:
    return {
        "status": status,
        "json": {"title": "x", "status": status, "o:errorDetails": [{"detail": detail, "o:errorCode": code}]},
    }


def test_sink_declares_the_sink_port_with_lookup_native_upsert_and_credit_notes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(monkeypatch)
    assert isinstance(sink, InvoiceSink)
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == frozenset(
        {Capability.LOOKUP, Capability.NATIVE_UPSERT, Capability.CREDIT_NOTES}
    )
    assert sink.Config is NetSuiteConfig
    assert sink.name == "ns"


def test_config_needs_a_token_source() -> None:
    with pytest.raises(ValidationError, match="access_token_env or access_token_file"):
        NetSuiteConfig(name="ns", base_url=BASE)


def test_decimal_json_writes_decimals_as_exact_json_numbers() -> None:
    text = decimal_json({"rate": Decimal("19.99"), "q": Decimal("1E+1"), "d": "19.99"})
    assert text == '{"rate": 19.99, "q": 10, "d": "19.99"}'
    assert json.loads(text, parse_float=Decimal)["rate"] == Decimal("19.99")


@responses.activate
def test_push_is_one_upsert_by_external_id_with_replace_item(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch, subsidiary="3")
    plan = make_plan()
    responses.put(
        upsert_url(plan.invoice_number),
        status=204,
        headers={"Location": f"{BASE}/record/v1/invoice/4711"},
        match=[matchers.query_param_matcher({"replace": "item"})],
    )

    ref = sink.push(plan)

    assert len(responses.calls) == 1
    request = responses.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.body, parse_float=Decimal)
    assert body["externalId"] == body["tranId"] == plan.invoice_number
    assert body["otherRefNum"] == "PO-778"
    assert body["entity"] == {"id": "101"}
    assert body["terms"] == {"id": "2"}
    assert body["subsidiary"] == {"id": "3"}
    assert (body["tranDate"], body["dueDate"]) == ("2024-02-01", "2024-03-02")
    assert body["item"]["items"] == [
        {
            "item": {"id": "501"},
            "quantity": 12,
            "rate": Decimal("19.99"),
            "amount": Decimal("239.88"),
            "description": "Seats, February",
        },
        {
            "item": {"id": "502"},
            "quantity": 1,
            "rate": Decimal("250.00"),
            "amount": Decimal("250.00"),
            "description": "SUPPORT",
        },
    ]
    assert ref.remote_id == "4711"
    assert ref.invoice_number == plan.invoice_number
    assert ref.total is None  # NetSuite's own total is read back by a batched lookup, never assumed
    assert sink.client.calls == 1


@responses.activate
def test_read_back_reports_the_total_netsuite_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch, read_back=True)
    plan = make_plan()
    responses.put(
        upsert_url(plan.invoice_number), status=204, headers={"Location": f"{BASE}/record/v1/invoice/9"}
    )
    responses.get(upsert_url(plan.invoice_number), json={"id": "9", "total": 489.88})

    ref = sink.push(plan)

    assert ref.total == Money.of("489.88", "USD")
    assert [c.request.method for c in responses.calls] == ["PUT", "GET"]


@responses.activate
def test_read_back_failure_after_a_written_upsert_is_uncertain(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch, read_back=True)
    plan = make_plan()
    responses.put(
        upsert_url(plan.invoice_number), status=204, headers={"Location": f"{BASE}/record/v1/invoice/9"}
    )
    responses.get(upsert_url(plan.invoice_number), status=503)

    with pytest.raises(UncertainError, match="was written"):
        sink.push(plan)


@responses.activate
def test_no_content_without_location_is_uncertain(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plan = make_plan()
    responses.put(upsert_url(plan.invoice_number), status=204)

    with pytest.raises(UncertainError, match="without a record Location"):
        sink.push(plan)


@responses.activate
def test_validation_error_is_rejected_with_netsuite_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plan = make_plan()
    detail = "Invalid Field Value 101 for the following field: entity"
    responses.put(upsert_url(plan.invoice_number), **ns_error(400, detail, "USER_ERROR"))

    with pytest.raises(RejectedError) as caught:
        sink.push(plan)

    assert detail in caught.value.message
    assert caught.value.provider_code == "USER_ERROR"
    assert caught.value.status == 400
    assert len(responses.calls) == 1


@responses.activate
def test_concurrency_limit_is_retried_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plan = make_plan()
    url = upsert_url(plan.invoice_number)
    responses.put(url, **ns_error(429, "Concurrent request limit exceeded.", "CONCURRENCY_LIMIT_EXCEEDED"))
    responses.put(url, **ns_error(400, "Request limit exceeded.", "CONCURRENCY_LIMIT_EXCEEDED"))
    responses.put(url, status=204, headers={"Location": f"{BASE}/record/v1/invoice/5"})

    assert sink.push(plan).remote_id == "5"
    assert len(responses.calls) == 3


@responses.activate
def test_concurrency_limit_that_persists_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plan = make_plan()
    responses.put(
        upsert_url(plan.invoice_number),
        **ns_error(400, "Request limit exceeded.", "CONCURRENCY_LIMIT_EXCEEDED"),
    )

    with pytest.raises(RetryableError) as caught:
        sink.push(plan)
    assert caught.value.provider_code == "CONCURRENCY_LIMIT_EXCEEDED"


@responses.activate
def test_server_error_on_upsert_is_uncertain_and_not_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plan = make_plan()
    responses.put(upsert_url(plan.invoice_number), status=500, json={"title": "Internal Server Error"})

    with pytest.raises(UncertainError):
        sink.push(plan)
    assert len(responses.calls) == 1


@responses.activate
def test_unmapped_customer_or_item_is_rejected_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch, item_ids={"SEAT": "501"})

    with pytest.raises(RejectedError, match=r"'OTHER'.*customer_ids"):
        sink.push(make_plan(customer_ref="OTHER"))
    with pytest.raises(RejectedError, match=r"'SUPPORT'.*item_ids"):
        sink.push(make_plan())
    assert len(responses.calls) == 0


@responses.activate
def test_invoice_number_that_cannot_be_an_external_id_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    with pytest.raises(RejectedError, match="external id"):
        sink.push(make_plan("INV 1/2"))
    assert len(responses.calls) == 0


@responses.activate
def test_currency_is_sent_only_when_currency_ids_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan()
    assert "currency" not in make_sink(monkeypatch).invoice_body(plan)
    assert make_sink(monkeypatch, currency_ids={"USD": "1"}).invoice_body(plan)["currency"] == {"id": "1"}
    with pytest.raises(RejectedError, match="currency_ids"):
        make_sink(monkeypatch, currency_ids={"EUR": "4"}).invoice_body(plan)


@responses.activate
def test_find_batches_suiteql_lookups_by_external_id(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    plans = [make_plan(f"INV-{n:012d}") for n in range(250)]
    queries: list[str] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        assert request.headers["Prefer"] == "transient"
        query = json.loads(request.body)["q"]
        queries.append(query)
        items = (
            [{"links": [], "id": "77", "externalid": "INV-000000000007", "foreigntotal": "489.88"}]
            if "'INV-000000000007'" in query
            else []
        )
        return 200, {}, json.dumps({"items": items, "hasMore": False, "count": len(items)})

    responses.add_callback(responses.POST, f"{BASE}/query/v1/suiteql", callback=answer)

    found = sink.find(plans)

    assert len(queries) == 3
    assert all("type = 'CustInvc'" in q for q in queries)
    assert list(found) == [plans[7].idempotency_key]
    ref = found[plans[7].idempotency_key]
    assert (ref.remote_id, ref.total, ref.already_existed) == ("77", Money.of("489.88", "USD"), True)


@responses.activate
def test_find_never_puts_an_unsafe_number_into_suiteql(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch)
    assert sink.find([make_plan("x' OR '1'='1")]) == {}
    assert len(responses.calls) == 0


@responses.activate
def test_token_is_read_again_after_a_401(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token-aaaa")
    sink = make_sink(monkeypatch, access_token_env=None, access_token_file=token_file)
    plan = make_plan()
    url = upsert_url(plan.invoice_number)
    responses.put(url, status=401, json={"title": "Unauthorized"})
    responses.put(url, status=204, headers={"Location": f"{BASE}/record/v1/invoice/8"})

    def rotate(response: Any, **kwargs: Any) -> None:
        token_file.write_text("new-token-bbbb")

    sink.client.session.hooks["response"].append(rotate)
    assert sink.push(plan).remote_id == "8"
    assert [c.request.headers["Authorization"] for c in responses.calls] == [
        "Bearer old-token-aaaa",
        "Bearer new-token-bbbb",
    ]
