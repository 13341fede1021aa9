"""NetSuite credit notes over real HTTP against the NetSuite sandbox: one credit memo per credit
note, made from and applied to the invoice it credits, found again by lookup after a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal

import pytest
import requests

from adapters.netsuite import NetSuiteSink
from connector.errors import RejectedError, UncertainError
from connector.model import InvoicePlan, RemoteRef
from connector.planning import plan_credit_note
from tests.integration.test_netsuite_sandbox import (
    TOKEN,
    expected_lines,
    lines_of,
    make_sink,
    taxed_plan,
    taxed_sink,
)
from tests.sandboxes.base import Fault
from tests.sandboxes.netsuite import PREFIX, NetSuiteSandbox
from tests.unit.test_netsuite import make_plan


@pytest.fixture
def sandbox() -> Iterator[NetSuiteSandbox]:
    box = NetSuiteSandbox(token=TOKEN, customers={"101"}, items={"501", "502"}, concurrency_limit=5)
    with box:
        yield box


def credit_of(invoice: InvoicePlan, ref: RemoteRef) -> InvoicePlan:
    """The credit note of a pushed invoice, naming the id its push reported."""
    return plan_credit_note(
        invoice, reason="seats cancelled", issue_date=date(2024, 2, 20), remote_id=ref.remote_id
    )


def transforms(box: NetSuiteSandbox) -> int:
    return sum(1 for r in box.log if r.method == "POST" and "/!transform/creditMemo" in r.path)


def next_run(sink: NetSuiteSink, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
    """What the outbox does with claimed rows, in small: look them up, push only the rest."""
    done = dict(sink.find(plans))
    for plan in plans:
        if plan.idempotency_key not in done:
            done[plan.idempotency_key] = sink.push(plan)
    return done


def test_credit_note_is_one_credit_memo_created_from_and_applied_to_its_invoice(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    invoice = make_plan()
    invoice_ref = sink.push(invoice)
    credit = credit_of(invoice, invoice_ref)

    ref = sink.push(credit)

    [memo] = sandbox.credit_memos.values()
    assert memo["id"] == ref.remote_id != invoice_ref.remote_id
    assert memo["createdFrom"] == {"id": invoice_ref.remote_id}
    assert memo["externalId"] == memo["tranId"] == credit.invoice_number
    assert memo["entity"] == {"id": "101"}
    assert lines_of(memo) == expected_lines(invoice)  # the invoice's lines, once
    assert memo["total"] == credit.total.amount == invoice.total.amount
    # NetSuite applies a credit made from an invoice to that invoice
    record = sandbox.invoices[invoice_ref.remote_id]
    assert memo["applied"] == record["total"] and memo["unapplied"] == 0
    assert record["amountRemaining"] == 0
    assert sandbox.credits_of(invoice_ref.remote_id) == [memo]


def test_transform_without_replace_keeps_the_invoices_lines_and_appends_the_bodys(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice_ref = make_sink(sandbox, monkeypatch).push(make_plan())
    body = {
        "externalId": "CN-QUIRK",
        "item": {"items": [{"item": {"id": "501"}, "quantity": 1, "rate": 5, "amount": 5}]},
    }
    answer = requests.post(
        f"{sandbox.url}{PREFIX}/record/v1/invoice/{invoice_ref.remote_id}/!transform/creditMemo",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 204
    memo = sandbox.credit_memo("CN-QUIRK")
    assert memo is not None
    assert len(memo["lines"]) == len(make_plan().lines) + 1
    assert memo["total"] == make_plan().total.amount + 5


def test_taxed_credit_memo_holds_the_invoices_tax_not_the_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    with NetSuiteSandbox(token=TOKEN, customers={"101"}, items={"501", "502"}, default_tax_code="20") as box:
        sink = taxed_sink(box, monkeypatch, read_back=True)
        invoice = taxed_plan()
        credit = credit_of(invoice, sink.push(invoice))

        ref = sink.push(credit)

        memo = box.credit_memo(credit.invoice_number)
        assert memo is not None
        assert len(memo["lines"]) == len(memo["taxDetails"]) == 3  # both sublists replaced, not doubled
        assert memo["taxTotal"] == credit.tax_total.amount == Decimal("6.02")  # the engine would say 6.03
        assert memo["total"] == credit.total.amount == Decimal("36.11")
        assert (ref.total, ref.tax) == (credit.total, credit.tax_total)
        assert box.by_external_id(invoice.invoice_number)["amountRemaining"] == 0  # type: ignore[index]


def test_find_on_a_mixed_list_finds_the_invoice_and_its_credit_note_with_positive_totals(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    invoice = make_plan()
    invoice_ref = sink.push(invoice)
    credit = credit_of(invoice, invoice_ref)
    memo_ref = sink.push(credit)
    never_sent = make_plan("INV-NEVER-SENT")

    calls = sink.client.calls
    found = sink.find([credit, never_sent, invoice])

    assert sink.client.calls == calls + 1  # one SuiteQL query for the mixed list
    assert set(found) == {invoice.idempotency_key, credit.idempotency_key}
    assert found[invoice.idempotency_key].remote_id == invoice_ref.remote_id
    assert found[invoice.idempotency_key].total == invoice.total
    assert found[credit.idempotency_key].remote_id == memo_ref.remote_id
    assert found[credit.idempotency_key].total == credit.total
    assert credit.total.amount > 0


def test_crash_between_create_and_record_makes_no_second_credit_memo(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_plan()
    credit = credit_of(invoice, make_sink(sandbox, monkeypatch).push(invoice))
    make_sink(sandbox, monkeypatch).push(credit)  # created; the process dies before recording it

    done = next_run(make_sink(sandbox, monkeypatch), [invoice, credit])

    assert done[credit.idempotency_key].already_existed
    assert done[credit.idempotency_key].remote_id == sandbox.credit_memo(credit.invoice_number)["id"]  # type: ignore[index]
    assert len(sandbox.credit_memos) == 1 and transforms(sandbox) == 1
    assert sandbox.by_external_id(invoice.invoice_number)["amountRemaining"] == 0  # type: ignore[index]


def test_lost_answer_to_the_transform_is_uncertain_then_found_not_resent(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice, sink.push(invoice))
    sandbox.faults.queue(Fault("status", 502, when="after"), matches=lambda r: "!transform" in r.path)

    with pytest.raises(UncertainError):
        sink.push(credit)

    done = next_run(sink, [credit])
    assert done[credit.idempotency_key].already_existed
    assert done[credit.idempotency_key].total == credit.total
    assert len(sandbox.credit_memos) == 1 and transforms(sandbox) == 1


def test_a_second_transform_is_refused_by_external_id_and_resolves_as_the_first(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice, sink.push(invoice))
    first = sink.push(credit)

    again = sink.push(credit)  # sent without a lookup first: NetSuite refuses the external id

    assert again.already_existed and again.remote_id == first.remote_id
    assert transforms(sandbox) == 2 and len(sandbox.credit_memos) == 1


def test_credit_of_an_invoice_netsuite_does_not_hold_is_rejected(
    sandbox: NetSuiteSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(sandbox, monkeypatch)
    credit = credit_of(make_plan(), RemoteRef(remote_id="999999", invoice_number="INV-00000000000A"))

    with pytest.raises(RejectedError, match="404 NONEXISTENT_ID") as caught:
        sink.push(credit)

    assert caught.value.status == 404
    assert sandbox.credit_memos == {}
