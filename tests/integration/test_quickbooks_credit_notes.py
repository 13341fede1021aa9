"""Credit notes through the quickbooks sink over real sockets: CreditMemos in the QuickBooks sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.quickbooks import QuickBooksConfig, QuickBooksSink
from connector.errors import RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money, RemoteRef
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.quickbooks import TOKEN_PATH, QuickBooksSandbox
from tests.support.factories import make_priced_plan, sales_tax, vat_tax

SECRET_ENV = "QBO_TEST_CLIENT_SECRET"
REFRESH_ENV = "QBO_TEST_REFRESH_TOKEN"
UK_CODES = {"S:20": "2", "AE": "14"}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[QuickBooksSandbox]:
    with QuickBooksSandbox(tax_mode="us", ast_rate=Decimal(8)) as running:
        assert isinstance(running, QuickBooksSandbox)
        monkeypatch.setenv(SECRET_ENV, running.client_secret)
        monkeypatch.setenv(REFRESH_ENV, running.initial_refresh_token)
        yield running


def make_sink(sandbox: QuickBooksSandbox, tmp_path: Path, **overrides: Any) -> QuickBooksSink:
    values: dict[str, Any] = {
        "name": "qbo",
        "base_url": sandbox.url,
        "realm_id": sandbox.realm_id,
        "token_url": sandbox.url + TOKEN_PATH,
        "client_id": sandbox.client_id,
        "client_secret_env": SECRET_ENV,
        "refresh_token_file": tmp_path / "token.json",
        "refresh_token_env": REFRESH_ENV,
        "customer_refs": {"CUST-1": "1"},
        "tax_mode": "us",
        "read_timeout": 0.5,
        "per_minute": 60_000,
    }
    values.update(overrides)
    retry = RetryPolicy(max_attempts=3, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(QuickBooksConfig(**values), AdapterContext(), retry=retry)


def us_invoice(n: int = 1) -> InvoicePlan:
    lines = [("100.00", sales_tax("8.875")), ("50.00", sales_tax("0"))]
    return make_priced_plan(n, sink="qbo", customer_ref="CUST-1", currency="USD", lines=lines)


def uk_invoice(n: int = 1) -> InvoicePlan:
    lines = [("10.03", vat_tax("20"))] * 3 + [("200.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    return make_priced_plan(n, sink="qbo", customer_ref="CUST-1", currency="GBP", lines=lines)


def credit_of(invoice: InvoicePlan, ref: RemoteRef | None) -> InvoicePlan:
    return plan_credit_note(
        invoice,
        reason="seats cancelled",
        issue_date=date(2026, 2, 20),
        remote_id=ref.remote_id if ref else "",
    )


def lookup_then_push(sink: QuickBooksSink, plan: InvoicePlan) -> RemoteRef:
    """What the pusher does with a row it claims again: look it up, push only what is missing."""
    found = sink.find([plan])
    return found[plan.idempotency_key] if plan.idempotency_key in found else sink.push(plan)


def memo_posts(request: Request) -> bool:
    return request.method == "POST" and request.path.endswith("/creditmemo")


def test_an_invoice_then_its_credit_memo_hold_the_same_total_and_tax(
    sandbox: QuickBooksSandbox, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path)
    invoice = us_invoice()
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)

    ref = sink.push(credit)

    [stored] = sandbox.credit_memos
    assert (stored["Id"], stored["DocNumber"]) == (ref.remote_id, credit.invoice_number)
    assert stored["Id"] != billed.remote_id
    assert stored["TotalAmt"] == stored["RemainingCredit"] == Decimal("158.88")
    assert stored["TxnTaxDetail"]["TotalTax"] == Decimal("8.88")
    assert invoice.invoice_number in stored["CustomerMemo"]["value"]
    assert invoice.invoice_number in stored["PrivateNote"]
    assert (ref.total, ref.tax) == (credit.total, credit.tax_total) == (billed.total, billed.tax)
    assert ref.total == Money.of("158.88", "USD")
    assert len(sandbox.invoices) == 1


def test_a_vat_credit_memo_states_the_invoices_tax_per_rate(
    sandbox: QuickBooksSandbox, tmp_path: Path
) -> None:
    sandbox.tax_mode = "global"
    sink = make_sink(sandbox, tmp_path, tax_mode="global", tax_codes=UK_CODES)
    invoice = uk_invoice()
    billed = sink.push(invoice)

    ref = sink.push(credit_of(invoice, billed))

    [stored_invoice], [stored_memo] = sandbox.invoices, sandbox.credit_memos
    assert stored_memo["GlobalTaxCalculation"] == "TaxExcluded"
    assert stored_memo["TxnTaxDetail"]["TaxLine"] == stored_invoice["TxnTaxDetail"]["TaxLine"]
    assert stored_memo["TotalAmt"] == stored_invoice["TotalAmt"] == Decimal("236.11")
    assert (ref.total, ref.tax) == (Money.of("236.11", "GBP"), Money.of("6.02", "GBP"))


@pytest.mark.parametrize(
    "fault",
    [Fault(kind="status", status=500, when="after"), Fault(kind="timeout", when="after", delay=0.8)],
    ids=["500-after-write", "timeout-after-write"],
)
def test_a_credit_memo_whose_answer_was_lost_is_found_not_created_again(
    sandbox: QuickBooksSandbox, tmp_path: Path, fault: Fault
) -> None:
    sink = make_sink(sandbox, tmp_path)
    invoice = us_invoice()
    credit = credit_of(invoice, sink.push(invoice))
    sandbox.faults.queue(fault, matches=memo_posts)
    with pytest.raises(UncertainError):
        sink.push(credit)

    ref = lookup_then_push(make_sink(sandbox, tmp_path), credit)  # the next run, a new process

    assert ref.already_existed and ref.total == credit.total
    assert [memo["Id"] for memo in sandbox.credit_memos] == [ref.remote_id]
    assert sandbox.count("POST", f"/v3/company/{sandbox.realm_id}/creditmemo") == 1


def test_a_crash_before_the_outcome_was_recorded_makes_no_second_credit_memo(
    sandbox: QuickBooksSandbox, tmp_path: Path
) -> None:
    sandbox.requestid_window = 0  # no replay to lean on: only the number guards
    sink = make_sink(sandbox, tmp_path)
    invoice = us_invoice()
    credit = credit_of(invoice, sink.push(invoice))
    first = sink.push(credit)  # created; the process dies before the outbox records it

    again = make_sink(sandbox, tmp_path).push(credit)  # even a blind re-send
    found = lookup_then_push(make_sink(sandbox, tmp_path), credit)

    assert again.remote_id == found.remote_id == first.remote_id
    assert again.already_existed and found.already_existed
    assert len(sandbox.credit_memos) == 1


def test_find_returns_invoices_and_credit_memos_from_one_mixed_list(
    sandbox: QuickBooksSandbox, tmp_path: Path
) -> None:
    sink = make_sink(sandbox, tmp_path)
    invoice, unsent = us_invoice(1), us_invoice(2)
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)
    credited = sink.push(credit)

    found = sink.find([credit, unsent, invoice, credit_of(unsent, None)])

    assert {key: ref.remote_id for key, ref in found.items()} == {
        invoice.idempotency_key: billed.remote_id,
        credit.idempotency_key: credited.remote_id,
    }
    assert found[credit.idempotency_key].total == credit.total


def test_a_batch_creates_a_credit_memo_beside_an_invoice(sandbox: QuickBooksSandbox, tmp_path: Path) -> None:
    sink = make_sink(sandbox, tmp_path)
    invoice = us_invoice(1)
    credit = credit_of(invoice, sink.push(invoice))

    outcomes = sink.push_batch([credit, us_invoice(2)])

    assert all(outcome.ref is not None for outcome in outcomes)
    assert [memo["DocNumber"] for memo in sandbox.credit_memos] == [credit.invoice_number]
    assert len(sandbox.invoices) == 2
    assert sandbox.count("POST", f"/v3/company/{sandbox.realm_id}/batch") == 1


def test_a_credit_memo_number_held_by_another_customer_is_refused(
    sandbox: QuickBooksSandbox, tmp_path: Path
) -> None:
    invoice = us_invoice()
    credit = credit_of(invoice, None)
    make_sink(sandbox, tmp_path, customer_refs={"CUST-1": "2"}).push(credit)  # someone else's

    with pytest.raises(RejectedError) as caught:
        make_sink(sandbox, tmp_path).push(credit)

    assert caught.value.provider_code == "6140"
    assert "TxnType=Credit Memo" in str(caught.value)
    assert len(sandbox.credit_memos) == 1
