"""The xero sink over real sockets against the loopback Xero sandbox."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from adapters.xero import XeroConfig, XeroSink
from adapters.xero_payload import dumps_exact
from connector.errors import AuthenticationError, ConfigError, RejectedError, RetryableError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoiceLine, InvoicePlan, Money, RemoteRef
from connector.ports import AdapterContext, BatchInvoiceSink, PushOutcome
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.xero import XeroSandbox
from tests.support.factories import make_priced_plan, vat_tax

TOKEN = "sandbox-token-0123456789"
KNOWN = "CUST-1"


class FakeClock:
    """The sandbox's clock; the client's retry pauses advance it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def make_plan(n: int, customer: str = KNOWN, **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": f"{n:064x}",
        "invoice_number": f"PC-{n:05d}",
        "sink": "xero",
        "customer_ref": customer,
        "po_number": f"PO-{n}",
        "po_key": f"default/coupa/{n}",
        "po_revision": 1,
        "billing_key": f"default/billing/sub-{n}/2024-01-01",
        "currency": "EUR",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "lines": (
            InvoiceLine(line_no=1, sku="SEAT", quantity=Decimal("3"), unit_price=Money.of("19.99", "EUR")),
            InvoiceLine(
                line_no=2, sku="SUPPORT", quantity=Decimal("1.5"), unit_price=Money.of("100.10", "EUR")
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
    }
    values.update(overrides)
    return InvoicePlan(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[XeroSandbox]:
    box = XeroSandbox(access_token=TOKEN, clock=clock)
    box.add_contact(KNOWN)
    with box:
        yield box


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XERO_TEST_TOKEN", TOKEN)
    return "XERO_TEST_TOKEN"


def make_sink(sandbox: XeroSandbox, clock: FakeClock, token_env: str, **overrides: Any) -> XeroSink:
    values: dict[str, Any] = {
        "name": "xero",
        "base_url": sandbox.api_url,
        "tenant_id": sandbox.tenant_id,
        "access_token_env": token_env,
        "per_minute": 60000,
        "read_timeout": 0.5,
    }
    values.update(overrides)
    config = XeroConfig(**values)
    return XeroSink(config, AdapterContext(), retry=RetryPolicy(base_delay=0.01, sleep=clock.sleep))


def puts(request: Request) -> bool:
    return request.method == "PUT" and request.path.endswith("/Invoices")


@pytest.mark.parametrize("window", [360.0, 0.0], ids=["inside-key-window", "after-key-expired"])
def test_same_plan_pushed_twice_creates_one_invoice(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str, window: float
) -> None:
    sandbox.idempotency_window = window
    sink = make_sink(sandbox, clock, token_env)
    plan = make_plan(1)

    first = sink.push(plan)
    second = sink.push(plan)

    assert len(sandbox.invoices) == 1
    assert first.remote_id == second.remote_id == sandbox.invoices[0]["InvoiceID"]
    assert second.total == Money.of("210.12", "EUR") == plan.total
    # Inside the window Xero replays the first answer; after it, "must be unique" is resolved by lookup.
    assert second.already_existed is (window == 0.0)
    assert sandbox.replayed == (1 if window else 0)


def test_fault_after_put_is_uncertain_and_find_returns_the_invoice(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env)
    sandbox.faults.queue(Fault(kind="status", status=503, when="after"), matches=puts)
    plan = make_plan(2)

    with pytest.raises(UncertainError) as caught:
        sink.push(plan)

    assert caught.value.correlation_id
    assert sandbox.count("PUT") == 1, "a write that may have happened is not re-sent in-process"
    found = sink.find([plan])
    ref = found[plan.idempotency_key]
    assert ref.already_existed and ref.remote_id == sandbox.invoices[0]["InvoiceID"]
    assert ref.total == plan.total


def test_unknown_contact_is_rejected_with_xeros_message_and_the_rest_is_created(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env)
    plans = [make_plan(10), make_plan(11, customer="NOBODY"), make_plan(12)]

    outcomes = sink.push_batch(plans)

    assert [o.idempotency_key for o in outcomes] == [p.idempotency_key for p in plans]
    assert outcomes[0].ref is not None and outcomes[2].ref is not None
    assert isinstance(outcomes[1].error, RejectedError)
    assert "Contact Name cannot be empty." in outcomes[1].error.message
    assert sorted(i["InvoiceNumber"] for i in sandbox.invoices) == ["PC-00010", "PC-00012"]
    assert sandbox.count("PUT") == 1


def test_daily_limit_parks_without_waiting(sandbox: XeroSandbox, clock: FakeClock, token_env: str) -> None:
    sandbox.day_limit = 0
    sink = make_sink(sandbox, clock, token_env)

    with pytest.raises(RetryableError) as caught:
        sink.push(make_plan(3))

    assert caught.value.park is True
    assert caught.value.provider_code == "day"
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600
    assert clock.pauses == [], "a daily limit must not hold the worker"
    assert sandbox.count("PUT") == 1 and sandbox.invoices == []


def test_minute_limit_is_waited_out_in_process(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sandbox.minute_limit = 2
    sink = make_sink(sandbox, clock, token_env)

    refs = [sink.push(make_plan(n)) for n in (4, 5, 6)]

    assert len({r.remote_id for r in refs}) == 3 and len(sandbox.invoices) == 3
    assert sandbox.rate_limited == 1 and clock.pauses == [60.0]
    assert sink.limits.minute_remaining == 1 and sink.limits.day_remaining == 5000 - 3


def test_find_reads_every_page_and_ignores_bills_with_our_number(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    plan = make_plan(7)
    sink = make_sink(sandbox, clock, token_env)
    sink.push(plan)
    for _ in range(120):
        sandbox.add_invoice(Type="ACCPAY", InvoiceNumber=plan.invoice_number)

    found = sink.find([plan, make_plan(8)])

    assert list(found) == [plan.idempotency_key]
    ours = [i for i in sandbox.invoices if i["Type"] == "ACCREC"]
    assert found[plan.idempotency_key].remote_id == ours[0]["InvoiceID"]
    assert sandbox.count("GET") == 2, "121 matches take two pages of 100"


def test_wrong_token_is_an_authentication_error(
    sandbox: XeroSandbox, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_WRONG_TOKEN", "not-the-token")
    sink = make_sink(sandbox, clock, "XERO_WRONG_TOKEN")

    with pytest.raises(AuthenticationError):
        sink.push(make_plan(9))
    assert sandbox.invoices == []


def test_sandbox_summarized_errors_fail_the_call_but_create_the_valid_invoices(sandbox: XeroSandbox) -> None:
    body = {
        "Invoices": [
            {
                "Type": "ACCREC",
                "InvoiceNumber": "A-1",
                "Contact": {"ContactNumber": KNOWN},
                "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 5}],
            },
            {
                "Type": "ACCREC",
                "InvoiceNumber": "A-2",
                "Contact": {"ContactNumber": "NOBODY"},
                "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 5}],
            },
        ]
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "xero-tenant-id": sandbox.tenant_id}

    answer = requests.put(f"{sandbox.api_url}/Invoices", json=body, headers=headers, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["Type"] == "ValidationException"
    assert [e["InvoiceNumber"] for e in answer.json()["Elements"]] == ["A-2"]
    assert [i["InvoiceNumber"] for i in sandbox.invoices] == ["A-1"], (
        "created, though its ID was not returned"
    )
    assert answer.headers["Xero-Correlation-Id"]


def test_sandbox_refuses_a_reused_key_with_a_different_request(sandbox: XeroSandbox) -> None:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "xero-tenant-id": sandbox.tenant_id,
        "Idempotency-Key": "k-1",
    }
    url = f"{sandbox.api_url}/Invoices?summarizeErrors=false"
    invoice = {"Type": "ACCREC", "Contact": {"ContactNumber": KNOWN}, "LineItems": [{"Description": "x"}]}

    first = requests.put(
        url, json={"Invoices": [{**invoice, "InvoiceNumber": "K-1"}]}, headers=headers, timeout=5
    )
    other = requests.put(
        url, json={"Invoices": [{**invoice, "InvoiceNumber": "K-2"}]}, headers=headers, timeout=5
    )

    assert first.status_code == 200 and other.status_code == 400
    assert [i["InvoiceNumber"] for i in sandbox.invoices] == ["K-1"]


def play_the_core(
    sink: BatchInvoiceSink, plans: list[InvoicePlan], seen: Counter[str], rounds: int = 80
) -> dict[str, RemoteRef]:
    """What the core does: push what is due, resolve uncertain rows by lookup, retry the retryable."""
    pending = {plan.idempotency_key: plan for plan in plans}
    uncertain: set[str] = set()
    pushed: dict[str, RemoteRef] = {}
    for _ in range(rounds):
        if not pending:
            break
        if uncertain:
            try:
                found = sink.find([pending[key] for key in uncertain])
            except RetryableError:
                found = None
            if found is not None:
                for key, ref in found.items():
                    pushed[key] = ref
                    del pending[key]
                uncertain.clear()
        due = [plan for key, plan in pending.items() if key not in uncertain]
        outcomes: list[PushOutcome] = sink.push_batch(due) if due else []
        for outcome in outcomes:
            key = outcome.idempotency_key
            seen[type(outcome.error).__name__ if outcome.error else "ref"] += 1
            if outcome.ref is not None:
                pushed[key] = outcome.ref
                del pending[key]
            elif isinstance(outcome.error, UncertainError):
                uncertain.add(key)
            elif not isinstance(outcome.error, RetryableError):
                pytest.fail(f"unexpected outcome for {key}: {outcome.error!r}")
    assert not pending, f"{len(pending)} plans still pending"
    return pushed


@pytest.mark.slow
def test_500_plans_through_faults_and_429_bursts_end_as_500_invoices(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sandbox.minute_limit = 8  # the loop makes far more calls a minute: 429 bursts come from the limiter
    sandbox.faults.random(
        0.3,
        [
            Fault(kind="status", status=500, when="before"),
            Fault(kind="status", status=503, when="after"),
            Fault(kind="reset", when="before"),
            Fault(kind="reset", when="after"),
            Fault(kind="truncate", when="after"),
            Fault(kind="timeout", when="after", delay=0.7),
            Fault(
                kind="status", status=429, headers={"Retry-After": "2", "X-Rate-Limit-Problem": "concurrent"}
            ),
        ],
        matches=lambda request: request.path.endswith("/Invoices"),
    )
    injected: Counter[str] = Counter()
    pick = sandbox.faults.pick

    def counted_pick(request: Request) -> Fault | None:
        fault = pick(request)
        if fault is not None:
            injected[f"{fault.kind}-{fault.status}-{fault.when}"] += 1
        return fault

    sandbox.faults.pick = counted_pick  # type: ignore[method-assign]
    sink = make_sink(sandbox, clock, token_env, batch_size=10)
    plans = [make_plan(n) for n in range(1000, 1500)]
    seen: Counter[str] = Counter()

    pushed = play_the_core(sink, plans, seen)

    invoices = sandbox.invoices
    numbers = Counter(i["InvoiceNumber"] for i in invoices)
    assert len(invoices) == 500 and max(numbers.values()) == 1
    by_number = {i["InvoiceNumber"]: i for i in invoices}
    for plan in plans:
        ref = pushed[plan.idempotency_key]
        assert ref.remote_id == by_number[plan.invoice_number]["InvoiceID"]
        assert ref.total == plan.total
    assert sandbox.rate_limited > 0 and clock.pauses and seen["UncertainError"] > 0
    calls = sink.client.calls
    print(
        f"\nxero: {calls} API calls for 500 invoices ({calls / 500:.3f} per invoice; "
        f"{sandbox.count('PUT')} PUT, {sandbox.count('GET')} GET, {sandbox.rate_limited} answered 429 "
        f"by the limiter; faults {dict(injected)}; outcomes {dict(seen)})"
    )
    assert calls / 500 < 0.5, "batching should keep calls far below one per invoice"


def test_plans_are_sent_in_batches_of_at_most_50(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env)

    outcomes = sink.push_batch([make_plan(n) for n in itertools.islice(itertools.count(2000), 120)])

    assert all(o.ref is not None for o in outcomes)
    sizes = [len(r.json()["Invoices"]) for r in sandbox.log if r.method == "PUT"]
    assert sizes == [50, 50, 20]


# -- tax ----------------------------------------------------------------------------------
UK_TYPES = {"S:20": "OUTPUT2", "S:5": "RROUTPUT", "AE": "ECZROUTPUTSERVICES", "E": "EXEMPTOUTPUT"}
THREE_AT_20 = [("10.03", vat_tax("20"))] * 3  # per line 3 x 2.01 = 6.03; the group: 30.09 x 20% = 6.02


def taxed(n: int, lines: list[tuple[str, Any]]) -> InvoicePlan:
    return make_priced_plan(n, sink="xero", customer_ref=KNOWN, currency="GBP", lines=lines)


def test_taxed_invoice_puts_each_groups_rounding_remainder_on_a_line_so_xeros_total_is_the_plans(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env, tax_types=UK_TYPES, line_amount_types="NoTax")
    plan = taxed(
        1, [*THREE_AT_20, ("40.00", vat_tax("5")), ("99.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    )
    ref = sink.push(plan)
    assert plan.tax_total == Money.of("8.02", "GBP")  # 6.02 + 2.00 + 0
    assert ref.tax == plan.tax_total
    assert ref.total == plan.total == Money.of("177.11", "GBP")
    [stored] = sandbox.invoices
    assert stored["LineAmountTypes"] == "Exclusive"
    assert [line["TaxType"] for line in stored["LineItems"]] == [
        "OUTPUT2",
        "OUTPUT2",
        "OUTPUT2",
        "RROUTPUT",
        "ECZROUTPUTSERVICES",
    ]
    assert [line["TaxAmount"] for line in stored["LineItems"]][:3] == [
        Decimal("2.00"),
        Decimal("2.01"),
        Decimal("2.01"),
    ]
    assert (stored["SubTotal"], stored["TotalTax"], stored["Total"]) == (
        Decimal("169.09"),
        Decimal("8.02"),
        Decimal("177.11"),
    )
    assert sink.find([plan])[plan.idempotency_key].tax == plan.tax_total


def test_without_stated_tax_amounts_xero_would_round_per_line_and_miss_the_plan_by_a_cent(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    # The sandbox's own rounding, which the sink's TaxAmounts override: 3 x 2.01 = 6.03.
    sink = make_sink(sandbox, clock, token_env, tax_types=UK_TYPES)
    plan = taxed(1, THREE_AT_20)
    sink.push(plan)
    sandbox.rerounds_tax = True
    ref = sink.push(taxed(2, THREE_AT_20))
    assert ref.tax == Money.of("6.03", "GBP") != plan.tax_total
    assert ref.total == Money.of("36.12", "GBP") != plan.total
    assert [i["TotalTax"] for i in sandbox.invoices] == [Decimal("6.02"), Decimal("6.03")]


def test_billing_stated_line_tax_is_sent_as_is(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env, tax_types=UK_TYPES)
    plan = taxed(1, [("10.03", vat_tax("20", amount="2.00")), ("10.03", vat_tax("20", amount="2.02"))])
    ref = sink.push(plan)
    assert [line["TaxAmount"] for line in sandbox.invoices[0]["LineItems"]] == [
        Decimal("2.00"),
        Decimal("2.02"),
    ]
    assert ref.tax == plan.tax_total == Money.of("4.02", "GBP")


def test_unmapped_treatment_is_refused_naming_invoice_treatment_and_key(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env, tax_types={"S:20": "OUTPUT2"})
    refused = taxed(1, [("10.00", vat_tax("20")), ("10.00", vat_tax("0", "E", reason="VATEX-EU-132"))])
    fine = taxed(2, [("10.00", vat_tax("20"))])
    outcomes = sink.push_batch([refused, fine])
    error = outcomes[0].error
    assert isinstance(error, RejectedError)
    assert error.provider_code == "tax_code_unmapped"
    for text in (refused.invoice_number, "line 2", "E 0%", "E:0"):
        assert text in str(error)
    assert outcomes[1].ref is not None
    assert [i["InvoiceNumber"] for i in sandbox.invoices] == [fine.invoice_number]


def test_unknown_tax_type_is_xeros_validation_error_and_check_names_it(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    types = {"S:20": "OUTPUT2", "S:17.5": "TAX001", "E": "EXEMPTOUT", "S:5": "INPUT2"}
    sink = make_sink(sandbox, clock, token_env, tax_types=types)
    with pytest.raises(ConfigError) as caught:
        sink.check()
    text = str(caught.value)
    for name in ("'TAX001' (for S:17.5)", "'EXEMPTOUT' (for E)", "'INPUT2' (for S:5)"):
        assert name in text
    assert "'OUTPUT2' (for" not in text
    with pytest.raises(RejectedError) as refused:
        sink.push(taxed(1, [("10.00", vat_tax("0", "E", reason="VATEX-EU-132"))]))
    assert "The TaxType code EXEMPTOUT does not exist" in str(refused.value)
    assert sandbox.invoices == []
    make_sink(sandbox, clock, token_env, tax_types=UK_TYPES).check()


def test_untaxed_plan_keeps_the_configured_line_amount_types_and_sends_no_tax(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env, tax_types=UK_TYPES, line_amount_types="NoTax")
    ref = sink.push(make_plan(1))
    [stored] = sandbox.invoices
    assert stored["LineAmountTypes"] == "NoTax"
    assert all("TaxType" not in line for line in stored["LineItems"])
    assert ref.total == Money.of("210.12", "EUR") and ref.tax == Money.of("0", "EUR")


def test_sandbox_keeps_a_stated_tax_amount_but_not_one_above_the_line_amount(
    sandbox: XeroSandbox, clock: FakeClock, token_env: str
) -> None:
    sink = make_sink(sandbox, clock, token_env)
    line = {"Description": "x", "Quantity": Decimal(1), "UnitAmount": Decimal("10.00"), "TaxType": "OUTPUT2"}
    invoice = {"Type": "ACCREC", "Contact": {"ContactNumber": KNOWN}, "CurrencyCode": "GBP"}
    body = {
        "Invoices": [
            {**invoice, "LineItems": [{**line, "TaxAmount": Decimal("1.99")}]},
            {**invoice, "LineItems": [{**line, "TaxAmount": Decimal("10.01")}]},
        ]
    }
    response = sink.client.request(
        "PUT", "Invoices", params={"summarizeErrors": "false"}, data=dumps_exact(body), idempotent=False
    )
    kept, refused = response.json(parse_float=Decimal)["Invoices"]
    assert (kept["TotalTax"], kept["Total"]) == (Decimal("1.99"), Decimal("11.99"))
    assert refused["ValidationErrors"] == [
        {"Message": "The tax amount cannot be greater than the line amount"}
    ]
