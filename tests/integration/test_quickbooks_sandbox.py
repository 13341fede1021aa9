"""The quickbooks sink over real sockets against the QuickBooks Online sandbox."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import stat
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.quickbooks import QuickBooksConfig, QuickBooksSink
from adapters.quickbooks_payload import dumps
from connector.errors import (
    AuthenticationError,
    ConfigError,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.http import RetryPolicy
from connector.model import InvoiceLine, InvoicePlan, Money
from connector.ports import AdapterContext, BatchInvoiceSink
from tests.sandboxes.base import Fault
from tests.sandboxes.quickbooks import TOKEN_PATH, QuickBooksSandbox, system_fault
from tests.support.factories import make_priced_plan, sales_tax, vat_tax

SECRET_ENV = "QBO_TEST_CLIENT_SECRET"
REFRESH_ENV = "QBO_TEST_REFRESH_TOKEN"


@pytest.fixture
def sandbox() -> Iterator[QuickBooksSandbox]:
    with QuickBooksSandbox() as running:
        assert isinstance(running, QuickBooksSandbox)
        yield running


@pytest.fixture
def env(sandbox: QuickBooksSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, sandbox.client_secret)
    monkeypatch.setenv(REFRESH_ENV, sandbox.initial_refresh_token)


def make_sink(sandbox: QuickBooksSandbox, token_file: Path, **overrides: Any) -> QuickBooksSink:
    values: dict[str, Any] = {
        "name": "qbo",
        "base_url": sandbox.url,
        "realm_id": sandbox.realm_id,
        "token_url": sandbox.url + TOKEN_PATH,
        "client_id": sandbox.client_id,
        "client_secret_env": SECRET_ENV,
        "refresh_token_file": token_file,
        "refresh_token_env": REFRESH_ENV,
        "customer_refs": {"CUST-1": "1", "CUST-2": "2"},
        "item_refs": {"SEAT": "2"},
        "terms_refs": {"NET30": "3"},
        "read_timeout": 0.5,
        "per_minute": 60_000,
    }
    values.update(overrides)
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(QuickBooksConfig(**values), AdapterContext(), retry=retry)


def make_plan(number: int, **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": hashlib.sha256(f"plan-{number}".encode()).hexdigest(),
        "invoice_number": f"INV-{number:05d}",
        "sink": "qbo",
        "customer_ref": "CUST-1" if number % 2 else "CUST-2",
        "po_number": f"PO-{number}",
        "po_key": f"default/coupa/{number}",
        "po_revision": 1,
        "billing_key": f"default/billing/sub-{number}/2024-01-01",
        "currency": "USD",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "lines": (
            InvoiceLine(
                line_no=1,
                sku="SEAT",
                description="Seats, January",
                quantity=Decimal("3"),
                unit_price=Money.of("19.99", "USD"),
            ),
            InvoiceLine(
                line_no=2, sku="SUPPORT", quantity=Decimal("1.5"), unit_price=Money.of("33.333", "USD")
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
    }
    values.update(overrides)
    return InvoicePlan(**values)


EXPECTED_TOTAL = Money.of("109.97", "USD")  # 3 x 19.99 + 1.5 x 33.333 (50.00 after rounding)


def posts_to(suffix: str) -> Any:
    return lambda request: request.method == "POST" and request.path.endswith(suffix)


def test_sink_is_a_batch_sink_that_sends_decimals_as_numbers(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    assert isinstance(sink, BatchInvoiceSink)
    ref = sink.push(make_plan(1))
    assert ref.total == EXPECTED_TOTAL
    assert not ref.already_existed
    [stored] = sandbox.invoices
    assert stored["Line"][1]["SalesItemLineDetail"]["UnitPrice"] == Decimal("33.333")
    assert stored["CustomField"][0]["StringValue"] == "PO-1"
    assert stored["DocNumber"] == "INV-00001"


@pytest.mark.parametrize("window", [3600.0, 0.0], ids=["requestid-replayed", "requestid-forgotten"])
def test_pushing_the_same_plan_twice_yields_one_invoice(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path, window: float
) -> None:
    sandbox.requestid_window = window
    sink = make_sink(sandbox, tmp_path / "token.json")
    first = sink.push(make_plan(1))
    second = sink.push(make_plan(1))
    assert second.remote_id == first.remote_id
    assert second.total == EXPECTED_TOTAL
    assert sandbox.doc_number_counts() == {"INV-00001": 1}
    assert second.already_existed  # each call has its own requestid: the 6140 duplicate resolves it
    assert sandbox.replayed == 0


def test_a_plan_rejected_then_fixed_at_the_provider_is_created_on_replay(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    # A stored answer for a reused requestid would reject the replay again after the fix.
    plans = [make_plan(n).model_copy(update={"customer_ref": "CUST-2"}) for n in (1, 2)]
    del sandbox.customers["2"]
    first = make_sink(sandbox, tmp_path / "token.json").push_batch(plans)
    assert all(isinstance(outcome.error, RejectedError) for outcome in first)
    sandbox.customers["2"] = "Globex Inc"  # a person creates the customer in QuickBooks
    replay = make_sink(sandbox, tmp_path / "token.json").push_batch(plans)  # `replay --dead`, a new process
    assert all(outcome.ref is not None for outcome in replay)
    assert len(sandbox.invoices) == 2


@pytest.mark.parametrize(
    "fault",
    [Fault(kind="status", status=500, when="after"), Fault(kind="timeout", when="after", delay=0.8)],
    ids=["500-after-write", "timeout-after-write"],
)
def test_answer_lost_after_create_is_uncertain_and_find_returns_the_invoice(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path, fault: Fault
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    plan = make_plan(7)
    sandbox.faults.queue(fault, matches=posts_to("/invoice"))
    with pytest.raises(UncertainError):
        sink.push(plan)
    found = sink.find([plan])
    assert found[plan.idempotency_key].total == EXPECTED_TOTAL
    assert found[plan.idempotency_key].already_existed
    assert sandbox.doc_number_counts() == {"INV-00007": 1}


def test_unknown_customer_is_rejected_with_provider_message_and_correlation_id(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    with pytest.raises(RejectedError) as caught:
        sink.push(make_plan(3, customer_ref="999"))
    error = caught.value
    assert "CustomerRef 999 does not exist" in str(error)
    assert error.provider_code == "2500"
    assert error.status == 400
    assert error.correlation_id == sandbox.tids[-1]
    assert error.correlation_id in str(error)
    assert sandbox.invoices == []


def test_batch_with_one_bad_item_fails_that_item_and_creates_the_others(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    plans = [make_plan(n) for n in range(1, 6)]
    plans[2] = make_plan(3, customer_ref="999")
    outcomes = sink.push_batch(plans)
    assert [o.idempotency_key for o in outcomes] == [p.idempotency_key for p in plans]
    assert isinstance(outcomes[2].error, RejectedError)
    assert "CustomerRef 999" in outcomes[2].error.message
    assert all(o.ref is not None and o.ref.total == EXPECTED_TOTAL for i, o in enumerate(outcomes) if i != 2)
    assert sorted(sandbox.doc_number_counts()) == ["INV-00001", "INV-00002", "INV-00004", "INV-00005"]
    assert sandbox.count("POST", f"/v3/company/{sandbox.realm_id}/batch") == 1


def test_batch_item_with_a_number_already_used_resolves_to_the_existing_invoice(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    plans = [make_plan(n) for n in range(1, 4)]
    existing = sandbox.add_invoice(
        {
            "DocNumber": "INV-00002",
            "CustomerRef": {"value": "2"},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("109.97")}],
        }
    )
    outcomes = sink.push_batch(plans)
    assert outcomes[1].error is None and outcomes[1].ref is not None
    assert outcomes[1].ref.remote_id == existing["Id"]
    assert outcomes[1].ref.already_existed
    assert all(o.ref is not None for o in outcomes)
    assert max(sandbox.doc_number_counts().values()) == 1


def test_batch_item_system_fault_is_uncertain_and_a_resend_is_not_answered_from_the_replay(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    plans = [make_plan(1)]
    sandbox.item_faults.queue(system_fault())
    [first] = sink.push_batch(plans)
    assert isinstance(first.error, UncertainError)
    assert sink.find(plans) == {}
    [second] = sink.push_batch(plans)
    assert second.ref is not None
    assert sandbox.doc_number_counts() == {"INV-00001": 1}


def test_500_plans_with_faults_and_throttling_end_with_exactly_500_invoices(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    plans = {plan.idempotency_key: plan for plan in (make_plan(n) for n in range(1, 501))}
    api_writes = posts_to("/batch")
    sandbox.faults.random(
        0.3,
        [
            Fault(kind="status", status=500, when="before"),
            Fault(kind="status", status=500, when="after"),
            Fault(kind="status", status=503, when="before"),
            Fault(kind="status", status=429, when="before"),
            Fault(kind="reset", when="after"),
            Fault(kind="timeout", when="after", delay=0.6),
        ],
        matches=api_writes,
    )
    sandbox.item_faults.random(0.05, [system_fault()])
    sandbox.throttle(3)

    done: dict[str, Any] = {}
    seen = {"uncertain": 0, "retryable": 0}
    rounds = 0
    to_push = list(plans)
    with contextlib.suppress(RetryableError):
        done.update(sink.find([plans[key] for key in to_push]))
    to_push = [key for key in to_push if key not in done]
    while to_push and rounds < 40:
        rounds += 1
        uncertain: list[str] = []
        retry: list[str] = []
        for outcome in sink.push_batch([plans[key] for key in to_push]):
            if outcome.ref is not None:
                done[outcome.idempotency_key] = outcome.ref
            elif isinstance(outcome.error, UncertainError):
                seen["uncertain"] += 1
                uncertain.append(outcome.idempotency_key)
            elif isinstance(outcome.error, RetryableError):
                seen["retryable"] += 1
                retry.append(outcome.idempotency_key)
            else:
                pytest.fail(f"unexpected outcome {outcome}")
        if uncertain:
            try:
                found = sink.find([plans[key] for key in uncertain])
            except RemoteError:
                found = {}
            done.update(found)
            retry.extend(key for key in uncertain if key not in found)
        to_push = retry

    counts = sandbox.doc_number_counts()
    assert len(done) == 500
    assert len(counts) == 500
    assert max(counts.values()) == 1
    assert all(ref.total == EXPECTED_TOTAL for ref in done.values())
    calls = sandbox.api_calls()
    with capsys.disabled():
        print(
            f"\n500 invoices: {calls} API calls ({calls / 500:.3f} per invoice), {rounds} rounds, "
            f"{sandbox.count('POST', '/v3/')} batch posts, outcomes {seen}, {sandbox.replayed} replays"
        )
    assert seen["uncertain"] > 0  # the faults did bite, and were resolved by lookups
    assert calls / 500 < 0.5


def test_rotated_refresh_token_is_persisted_0600_and_the_old_one_is_not_used_again(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    token_file = tmp_path / "secrets" / "qbo-token.json"
    sink = make_sink(sandbox, token_file)
    sink.push(make_plan(1))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = json.loads(token_file.read_text())["refresh_token"]
    assert first in sandbox.valid_refresh_tokens
    assert sandbox.initial_refresh_token in sandbox.spent_refresh_tokens

    sandbox.expire_access_tokens()  # the next call gets a 401 and refreshes once
    sink.push(make_plan(2))
    second = json.loads(token_file.read_text())["refresh_token"]
    assert sandbox.refresh_requests == [sandbox.initial_refresh_token, first]
    assert sandbox.valid_refresh_tokens == {second}

    # A new process, still configured with the initial token, takes the file's token instead.
    sandbox.expire_access_tokens()
    make_sink(sandbox, token_file).push(make_plan(3))
    assert sandbox.refresh_requests[-1] == second
    assert sandbox.initial_refresh_token not in sandbox.refresh_requests[1:]
    assert [p.name for p in token_file.parent.iterdir() if p.suffix == ".tmp"] == []


def test_concurrent_sinks_sharing_a_token_file_refresh_once_without_invalid_grant(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    token_file = tmp_path / "qbo-token.json"
    sinks = [make_sink(sandbox, token_file) for _ in range(4)]
    errors: list[BaseException] = []

    def push(index: int) -> None:
        try:
            sinks[index].push(make_plan(index + 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sandbox.refresh_requests == [sandbox.initial_refresh_token]
    assert len(sandbox.invoices) == 4


def test_a_refresh_token_refused_by_the_provider_is_an_authentication_error(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    sink.push(make_plan(1))
    sandbox.valid_refresh_tokens.clear()  # e.g. revoked by the company admin
    sandbox.expire_access_tokens()
    with pytest.raises(AuthenticationError):
        sink.push(make_plan(2))


def test_secrets_never_appear_in_logs_or_exception_text(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(sandbox, tmp_path / "token.json")
    texts: list[str] = []
    sink.push(make_plan(1))
    sandbox.expire_access_tokens()
    sandbox.throttle(1)
    sink.push(make_plan(2))
    for call in (
        lambda: sink.push(make_plan(3, customer_ref="999")),
        lambda: (
            sandbox.faults.queue(Fault(kind="status", status=500), matches=posts_to("/invoice")),
            sink.push(make_plan(4)),
        ),
        lambda: (
            sandbox.valid_refresh_tokens.clear(),
            sandbox.expire_access_tokens(),
            sink.push(make_plan(5)),
        ),
    ):
        with pytest.raises(Exception) as caught:
            call()
        texts.append(f"{caught.value!s} {caught.value!r}")
    secrets = [sandbox.client_secret, sandbox.initial_refresh_token, *sandbox.issued_tokens]
    assert len(sandbox.issued_tokens) == 4
    haystack = caplog.text + "\n".join(texts)
    assert "credentials refused" in haystack or "refused the refresh" in haystack
    for secret in secrets:
        assert secret not in haystack


def test_query_escapes_quotes_in_invoice_numbers(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path / "token.json")
    odd = make_plan(1, invoice_number="O'Neil\\7")
    plain = make_plan(2)
    sink.push(odd)
    found = sink.find([odd, plain])
    assert list(found) == [odd.idempotency_key]
    assert found[odd.idempotency_key].invoice_number == "O'Neil\\7"


# -- tax ----------------------------------------------------------------------------------
UK_CODES = {"S:20": "2", "Z": "6", "AE": "14"}
THREE_AT_20 = [("10.03", vat_tax("20"))] * 3  # per line 3 x 2.01 = 6.03; the group: 30.09 x 20% = 6.02
REVERSE_CHARGE = vat_tax("0", "AE", reason="VATEX-EU-AE")


def us_plan(n: int = 1) -> InvoicePlan:
    return make_priced_plan(
        n,
        sink="qbo",
        customer_ref="CUST-1",
        currency="USD",
        lines=[("100.00", sales_tax("8.875")), ("50.00", sales_tax("0"))],
    )


def uk_plan(n: int = 1, lines: list[tuple[str, Any]] | None = None) -> InvoicePlan:
    chosen = lines if lines is not None else [*THREE_AT_20, ("200.00", REVERSE_CHARGE)]
    return make_priced_plan(n, sink="qbo", customer_ref="CUST-1", currency="GBP", lines=chosen)


@pytest.fixture
def us_company(sandbox: QuickBooksSandbox) -> QuickBooksSandbox:
    sandbox.tax_mode = "us"
    sandbox.ast_rate = Decimal(8)  # the rate AST finds for the ship-to, not the billing system's
    sandbox.tax_codes = {"7": {"Name": "NY State", "rates": ["9"]}}
    sandbox.tax_rates = {"9": Decimal(8)}
    return sandbox


@pytest.fixture
def uk_company(sandbox: QuickBooksSandbox) -> QuickBooksSandbox:
    sandbox.tax_mode = "global"
    return sandbox


def test_us_invoice_states_total_tax_so_automated_sales_tax_keeps_the_plans_gross(
    us_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(us_company, tmp_path / "token.json", tax_mode="us")
    plan = us_plan()
    ref = sink.push(plan)
    assert plan.total == Money.of("158.88", "USD")
    assert ref.total == plan.total
    assert ref.tax == plan.tax_total == Money.of("8.88", "USD")
    [stored] = us_company.invoices
    assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in stored["Line"][:2]] == [
        "TAX",
        "NON",
    ]
    assert "GlobalTaxCalculation" not in stored
    assert sink.find([plan])[plan.idempotency_key].tax == Money.of("8.88", "USD")


def test_us_invoice_sent_without_total_tax_gets_the_servers_own_tax(
    us_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    # What the sink avoids: automated sales tax adds tax at its own rate, the total then differs.
    sink = make_sink(us_company, tmp_path / "token.json", tax_mode="us")
    plan = us_plan()
    payload = sink._payload(plan, {})
    del payload["TxnTaxDetail"]
    response = sink.client.request(
        "POST",
        f"v3/company/{us_company.realm_id}/invoice",
        data=dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    stored = response.json()["Invoice"]
    assert Decimal(str(stored["TotalAmt"])) == Decimal("158.00") != plan.total.amount


def test_us_txn_tax_code_is_sent_and_an_unknown_one_is_the_fault_quickbooks_returns(
    us_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    make_sink(us_company, tmp_path / "token.json", tax_mode="us", txn_tax_code="7").push(us_plan(1))
    assert us_company.invoices[0]["TxnTaxDetail"]["TxnTaxCodeRef"] == {"value": "7"}
    sink = make_sink(us_company, tmp_path / "token.json", tax_mode="us", txn_tax_code="70")
    with pytest.raises(RejectedError) as caught:
        sink.push(us_plan(2))
    assert caught.value.provider_code == "2500"
    assert "TxnTaxCodeRef 70" in str(caught.value)


def test_global_invoice_carries_tax_codes_and_states_the_tax_per_rate(
    uk_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(uk_company, tmp_path / "token.json", tax_mode="global", tax_codes=UK_CODES)
    plan = uk_plan()
    ref = sink.push(plan)
    assert plan.tax_total == Money.of("6.02", "GBP")
    assert ref.total == plan.total == Money.of("236.11", "GBP")
    assert ref.tax == plan.tax_total
    [stored] = uk_company.invoices
    assert stored["GlobalTaxCalculation"] == "TaxExcluded"
    codes = [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in stored["Line"][:4]]
    assert codes == ["2", "2", "2", "14"]
    rates = {
        t["TaxLineDetail"]["TaxRateRef"]["value"]: t["Amount"] for t in stored["TxnTaxDetail"]["TaxLine"]
    }
    assert rates == {"4": Decimal("6.02"), "16": Decimal(0)}
    assert uk_company.count("GET", f"/v3/company/{uk_company.realm_id}/query") == 1  # the TaxCode list


def test_company_that_rounds_tax_per_line_is_reported_with_its_own_total_not_the_plans(
    uk_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    uk_company.rerounds_tax = True
    sink = make_sink(uk_company, tmp_path / "token.json", tax_mode="global", tax_codes=UK_CODES)
    plan = uk_plan()
    ref = sink.push(plan)
    assert ref.tax == Money.of("6.03", "GBP") != plan.tax_total
    assert ref.total == Money.of("236.12", "GBP") != plan.total
    found = sink.find([plan])[plan.idempotency_key]
    assert (found.total, found.tax) == (ref.total, ref.tax)


def test_unmapped_treatment_is_refused_naming_invoice_treatment_and_key_before_any_write(
    uk_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    sink = make_sink(uk_company, tmp_path / "token.json", tax_mode="global", tax_codes={"S:20": "2"})
    refused = uk_plan(1, [("10.00", vat_tax("20")), ("5.00", vat_tax("0", "Z"))])
    fine = uk_plan(2, [("10.00", vat_tax("20"))])
    outcomes = sink.push_batch([refused, fine])
    error = outcomes[0].error
    assert isinstance(error, RejectedError)
    assert error.provider_code == "tax_code_unmapped"
    for text in (refused.invoice_number, "Line 2", "Z 0%", "Z:0"):
        assert text in str(error)
    assert outcomes[1].ref is not None
    assert [stored["DocNumber"] for stored in uk_company.invoices] == [fine.invoice_number]


def test_taxed_plan_for_a_sink_without_tax_mode_is_refused(
    sandbox: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    with pytest.raises(RejectedError) as caught:
        make_sink(sandbox, tmp_path / "token.json").push(uk_plan())
    assert caught.value.provider_code == "tax_code_unmapped"
    assert "tax_mode" in str(caught.value)
    assert sandbox.invoices == []


def test_unknown_remote_tax_code_is_the_fault_quickbooks_returns_and_check_names_it(
    uk_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    codes = {"S:20": "2", "Z": "66", "S:17.5": "20"}  # 66 does not exist, 20 is inactive
    sink = make_sink(uk_company, tmp_path / "token.json", tax_mode="global", tax_codes=codes)
    with pytest.raises(ConfigError) as caught:
        sink.check()
    text = str(caught.value)
    assert "'66' (for Z)" in text and "'20' (for S:17.5)" in text and "'2'" not in text
    with pytest.raises(RejectedError) as refused:
        sink.push(uk_plan(1, [("5.00", vat_tax("0", "Z"))]))
    assert refused.value.provider_code == "2500"
    assert "TaxCodeRef 66" in str(refused.value)
    make_sink(uk_company, tmp_path / "token.json", tax_mode="global", tax_codes=UK_CODES).check()


def test_line_without_a_tax_code_in_a_global_company_is_refused_as_quickbooks_does(
    uk_company: QuickBooksSandbox, env: None, tmp_path: Path
) -> None:
    # An untaxed plan keeps today's payload, which a VAT company refuses: the fault is passed on.
    with pytest.raises(RejectedError) as caught:
        make_sink(uk_company, tmp_path / "token.json").push(make_plan(1))
    assert caught.value.provider_code == "6000"
    assert "VAT rate" in str(caught.value)
