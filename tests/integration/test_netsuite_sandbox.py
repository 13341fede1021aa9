"""The NetSuite sink over real HTTP against the NetSuite sandbox: exactly one invoice per plan."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from adapters.netsuite import NetSuiteConfig, NetSuiteSink
from connector.errors import AuthenticationError, ConfigError, RejectedError, RetryableError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, RemoteRef
from connector.ports import AdapterContext
from tests.sandboxes.base import Fault
from tests.sandboxes.netsuite import PREFIX, NetSuiteSandbox
from tests.support.factories import make_priced_plan, vat_tax
from tests.unit.test_netsuite import make_plan

TOKEN = "ns-sandbox-token-9999"


@pytest.fixture
def sandbox() -> Iterator[NetSuiteSandbox]:
    box = NetSuiteSandbox(token=TOKEN, customers={"101"}, items={"501", "502"}, concurrency_limit=5)
    with box:
        yield box


def make_sink(sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> NetSuiteSink:
    monkeypatch.setenv("NS_SANDBOX_TOKEN", TOKEN)
    values: dict[str, Any] = {
        "name": "ns",
        "base_url": f"{sandbox.url}{PREFIX}",
        "access_token_env": "NS_SANDBOX_TOKEN",
        "customer_ids": {"ACME": "101", "GHOST": "999"},
        "item_ids": {"SEAT": "501", "SUPPORT": "502"},
        "read_timeout": 1.0,
    }
    values.update(overrides)
    retry = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, sleep=lambda s: None)
    return NetSuiteSink(NetSuiteConfig(**values), AdapterContext(), retry=retry)


def lines_of(record: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    return [(line["item"], line["quantity"], line["amount"]) for line in record["lines"]]


def expected_lines(plan: InvoicePlan) -> list[tuple[str, Decimal, Decimal]]:
    ids = {"SEAT": "501", "SUPPORT": "502"}
    return [(ids[line.sku], line.quantity, line.amount.amount) for line in plan.lines]


def raw_upsert(sandbox: NetSuiteSandbox, number: str, query: str) -> None:
    body = {
        "entity": {"id": "101"},
        "item": {"items": [{"item": {"id": "501"}, "quantity": 2, "rate": 5, "amount": 10}]},
    }
    response = requests.put(
        f"{sandbox.url}{PREFIX}/record/v1/invoice/eid:{number}{query}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 204


def test_sandbox_upsert_without_replace_appends_the_lines_again(sandbox: NetSuiteSandbox) -> None:
    raw_upsert(sandbox, "INV-QUIRK", "")
    raw_upsert(sandbox, "INV-QUIRK", "")
    record = sandbox.by_external_id("INV-QUIRK")
    assert record is not None
    assert len(record["lines"]) == 2
    assert record["total"] == Decimal(20)

    raw_upsert(sandbox, "INV-QUIRK", "?replace=item")
    assert len(record["lines"]) == 1
    assert len(sandbox.invoices) == 1


def test_same_plan_pushed_twice_is_one_invoice_with_its_lines_once(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    plan = make_plan()

    first = sink.push(plan)
    second = sink.push(plan)

    assert first.remote_id == second.remote_id
    assert len(sandbox.invoices) == 1
    record = sandbox.invoices[first.remote_id]
    assert record["externalId"] == record["tranId"] == plan.invoice_number
    assert record["otherRefNum"] == "PO-778"
    assert lines_of(record) == expected_lines(plan)
    assert record["total"] == plan.total.amount
    assert sink.client.calls == 2
    [found] = sink.find([plan]).values()  # the core reads NetSuite's own total back this way
    assert found.total is not None and found.total.amount == record["total"]


def test_read_back_reports_the_sandbox_total(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch, read_back=True)
    plan = make_plan()
    ref = sink.push(plan)
    assert ref.total == plan.total
    assert sandbox.count("GET", f"{PREFIX}/record/v1/invoice/eid:") == 1


def test_fault_after_the_write_is_uncertain_then_find_sees_the_invoice(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    plan = make_plan()
    sandbox.faults.queue(Fault("status", 502, when="after"), matches=lambda r: r.method == "PUT")

    with pytest.raises(UncertainError):
        sink.push(plan)

    found = sink.find([plan, make_plan("INV-NEVER-SENT")])
    assert list(found) == [plan.idempotency_key]
    ref = found[plan.idempotency_key]
    assert ref.already_existed
    assert ref.total == plan.total
    assert ref.remote_id == sandbox.by_external_id(plan.invoice_number)["id"]  # type: ignore[index]


def test_timeout_after_the_write_is_uncertain(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch, read_timeout=0.2)
    plan = make_plan()
    sandbox.faults.queue(Fault("timeout", when="after", delay=0.5), matches=lambda r: r.method == "PUT")

    with pytest.raises(UncertainError):
        sink.push(plan)
    assert plan.idempotency_key in sink.find([plan])


def test_unknown_customer_is_rejected_with_netsuite_detail(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    with pytest.raises(RejectedError) as caught:
        sink.push(make_plan(customer_ref="GHOST"))
    assert "Invalid Field Value 999 for the following field: entity" in caught.value.message
    assert caught.value.provider_code == "USER_ERROR"
    assert sandbox.invoices == {}


def test_wrong_token_is_refused_after_one_fresh_read(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    monkeypatch.setenv("NS_SANDBOX_TOKEN", "not-the-token")  # read lazily, on the first call

    with pytest.raises(AuthenticationError, match="credentials refused"):
        sink.push(make_plan())

    assert sandbox.count("PUT") == 2  # the first answer 401 made it read the token once more
    assert sandbox.invoices == {}


def test_clean_run_costs_at_most_1_05_calls_per_invoice(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    plans = [make_plan(f"INV-{n:012X}") for n in range(200)]

    assert sink.find(plans) == {}
    refs = [sink.push(plan) for plan in plans]

    per_invoice = sink.client.calls / len(plans)
    print(
        f"\nnetsuite clean run: {sink.client.calls} calls, {len(plans)} invoices: {per_invoice:.3f}/invoice"
    )
    assert per_invoice <= 1.05
    assert len({ref.remote_id for ref in refs}) == len(sandbox.invoices) == 200


def test_sandbox_refuses_requests_beyond_its_concurrency_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    with NetSuiteSandbox(token=TOKEN, customers={"101"}, concurrency_limit=2, latency=0.05) as box:
        polite = make_sink(box, monkeypatch, concurrency=2)
        greedy = make_sink(box, monkeypatch, concurrency=8)
        push_from_threads(polite, [make_plan(f"INV-P{n:03d}") for n in range(16)])
        assert box.concurrency_rejections == 0

        push_from_threads(greedy, [make_plan(f"INV-G{n:03d}") for n in range(16)], tolerate=RetryableError)
        assert box.concurrency_rejections > 0
        assert all(lines_of(r) == expected_lines(make_plan()) for r in box.invoices.values())


def push_from_threads(
    sink: NetSuiteSink, plans: list[InvoicePlan], tolerate: type[Exception] | None = None
) -> None:
    errors: list[Exception] = []

    def run(plan: InvoicePlan) -> None:
        try:
            sink.push(plan)
        except Exception as exc:
            if tolerate is None or not isinstance(exc, tolerate):
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def drive(sink: NetSuiteSink, plans: list[InvoicePlan], max_rounds: int = 30) -> dict[str, RemoteRef]:
    """What the outbox does, in small: push due plans; resolve unclear outcomes by find() first."""
    pushed: dict[str, RemoteRef] = {}
    due = list(plans)
    unclear: list[InvoicePlan] = []
    for _ in range(max_rounds):
        if unclear:
            try:
                found = sink.find(unclear)
            except RetryableError:
                found = None
            if found is not None:
                pushed.update(found)
                due.extend(p for p in unclear if p.idempotency_key not in found)
                unclear = []
        retry_later: list[InvoicePlan] = []
        for plan in due:
            try:
                pushed[plan.idempotency_key] = sink.push(plan)
            except UncertainError:
                unclear.append(plan)
            except RetryableError:
                retry_later.append(plan)
        due = retry_later
        if not due and not unclear:
            return pushed
    raise AssertionError(f"not settled: {len(due)} due, {len(unclear)} unclear")


def test_500_plans_with_30_percent_faults_end_as_500_invoices_with_single_lines(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    plans = [make_plan(f"INV-{n:012X}") for n in range(500)]
    sandbox.faults.random(
        0.3,
        [
            Fault("status", 500, when="before"),
            Fault("status", 500, when="after"),
            Fault("status", 503, when="after"),
            Fault("status", 429, when="before", headers={"Retry-After": "0"}),
            Fault("reset", when="before"),
            Fault("reset", when="after"),
            Fault("truncate", when="after"),
        ],
    )

    pushed = drive(sink, plans)

    calls = sink.client.calls
    print(f"\nnetsuite with 30% faults: {calls} calls for 500 invoices = {calls / 500:.3f}/invoice")
    assert len(pushed) == 500
    assert len(sandbox.invoices) == 500
    assert sorted(r["externalId"] for r in sandbox.invoices.values()) == sorted(
        p.invoice_number for p in plans
    )
    assert all(lines_of(r) == expected_lines(plans[0]) for r in sandbox.invoices.values())
    assert all(r["total"] == plans[0].total.amount for r in sandbox.invoices.values())
    upserts = [r for r in sandbox.log if r.method == "PUT"]
    assert len(upserts) > 500  # faults made it re-send some
    assert all(r.query.get("replace") == ["item"] for r in upserts)


# -- tax (SuiteTax) ------------------------------------------------------------------------
TAX_CODES = {"S:20": "20", "AE": "30", "SALES_TAX:US-NY": "11"}


def taxed_plan() -> InvoicePlan:
    # 3 x 10.03 at 20%: per-line rounding would make 6.03, the plan's tax is 6.02.
    return make_priced_plan(customer_ref="ACME", currency="GBP", lines=[("10.03", vat_tax("20"))] * 3)


def taxed_sink(sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> NetSuiteSink:
    items = {"SKU-1": "501", "SKU-2": "502", "SKU-3": "501"}
    return make_sink(sandbox, monkeypatch, **{"item_ids": items, "tax_codes": TAX_CODES, **overrides})


def test_taxed_plan_is_held_with_the_plans_tax_not_the_accounts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # The account's tax engine would tax every line at its nexus default (20%, rounded per line).
    with NetSuiteSandbox(token=TOKEN, customers={"101"}, items={"501", "502"}, default_tax_code="20") as box:
        plan = taxed_plan()
        ref = taxed_sink(box, monkeypatch, read_back=True).push(plan)

        record = box.by_external_id(plan.invoice_number)
        assert record is not None
        assert record["taxDetailsOverride"] is True
        assert record["taxTotal"] == plan.tax_total.amount == Decimal("6.02")
        assert record["total"] == plan.total.amount == Decimal("36.11")
        assert ref.total == plan.total
        assert ref.tax == plan.tax_total

        # The same plan sent without its tax: the engine adds 6.03 of its own.
        untaxed = InvoicePlan.model_validate(
            {
                **plan.model_dump(),
                "invoice_number": plan.invoice_number + "X",
                "lines": [{**line.model_dump(), "tax": None} for line in plan.lines],
            }
        )
        taxed_sink(box, monkeypatch).push(untaxed)
        other = box.by_external_id(untaxed.invoice_number)
        assert other is not None and other["taxTotal"] == Decimal("6.03")


def test_taxed_plan_pushed_twice_keeps_one_set_of_tax_lines(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = taxed_plan()
    sink = taxed_sink(sandbox, monkeypatch)
    sink.push(plan)
    sink.push(plan)
    record = sandbox.by_external_id(plan.invoice_number)
    assert record is not None
    assert len(record["lines"]) == 3 and len(record["taxDetails"]) == 3
    assert record["taxTotal"] == Decimal("6.02")
    (found,) = sink.find([plan]).values()
    assert found.total == plan.total


def test_tax_code_unknown_to_the_account_is_rejected_with_netsuite_detail(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = taxed_sink(sandbox, monkeypatch, tax_codes={"S:20": "77"})
    with pytest.raises(RejectedError, match="Invalid Field Value 77 for the following field: taxCode"):
        sink.push(taxed_plan())
    assert sandbox.invoices == {}


def test_check_against_the_account_names_an_inactive_tax_code(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    taxed_sink(sandbox, monkeypatch).check()
    with pytest.raises(ConfigError, match=r"tax_codes\['S:17.5'\] = '90' \(Retired 17.5%\) is inactive"):
        taxed_sink(sandbox, monkeypatch, tax_codes={**TAX_CODES, "S:17.5": "90"}).check()
