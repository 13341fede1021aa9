"""Credit notes through the xero sink over real sockets: created, then allocated to their invoice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from adapters.xero import XeroConfig, XeroSink
from adapters.xero_credit_notes import XeroCreditNotes
from connector.errors import RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money, RemoteRef
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.xero import XeroSandbox
from tests.support.factories import make_priced_plan, vat_tax

TOKEN = "sandbox-token-0123456789"
KNOWN = "CUST-1"
UK_TYPES = {"S:20": "OUTPUT2", "AE": "ECZROUTPUTSERVICES"}


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    box = XeroSandbox(access_token=TOKEN)
    box.add_contact(KNOWN)
    with box:
        yield box


@pytest.fixture
def sink(sandbox: XeroSandbox, monkeypatch: pytest.MonkeyPatch) -> XeroSink:
    monkeypatch.setenv("XERO_TEST_TOKEN", TOKEN)
    return make_sink(sandbox)


def make_sink(sandbox: XeroSandbox, **overrides: Any) -> XeroSink:
    values: dict[str, Any] = {
        "name": "xero",
        "base_url": sandbox.api_url,
        "tenant_id": sandbox.tenant_id,
        "access_token_env": "XERO_TEST_TOKEN",
        "tax_types": UK_TYPES,
        "per_minute": 60000,
        "read_timeout": 0.5,
    }
    values.update(overrides)
    retry = RetryPolicy(base_delay=0.0, sleep=lambda seconds: None)
    return XeroSink(XeroConfig(**values), AdapterContext(), retry=retry)


def invoice_plan(n: int = 1) -> InvoicePlan:
    lines = [("10.03", vat_tax("20"))] * 3 + [("99.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    return make_priced_plan(n, sink="xero", customer_ref=KNOWN, currency="GBP", lines=lines)


def credit_of(invoice: InvoicePlan, ref: RemoteRef | None) -> InvoicePlan:
    return plan_credit_note(
        invoice,
        reason="seats cancelled",
        issue_date=date(2026, 2, 20),
        remote_id=ref.remote_id if ref else "",
    )


def lookup_then_push(sink: XeroSink, plan: InvoicePlan) -> RemoteRef:
    """What the pusher does with a row it claims again: look it up, push only what is missing."""
    found = sink.find([plan])
    return found[plan.idempotency_key] if plan.idempotency_key in found else sink.push(plan)


def allocations(request: Request) -> bool:
    return request.method == "PUT" and request.path.endswith("/Allocations")


def credit_note_puts(sandbox: XeroSandbox) -> int:
    return sum(1 for r in sandbox.log if r.method == "PUT" and r.path.endswith("/CreditNotes"))


def assert_credited_once(sandbox: XeroSandbox, invoice_ref: RemoteRef, credit: InvoicePlan) -> None:
    [stored] = sandbox.credit_notes
    assert stored["CreditNoteNumber"] == credit.invoice_number
    assert (stored["Status"], stored["RemainingCredit"]) == ("PAID", Decimal(0))
    assert [a["Invoice"]["InvoiceID"] for a in stored["Allocations"]] == [invoice_ref.remote_id]
    invoice = sandbox.invoice(invoice_ref.remote_id)
    assert (invoice["AmountDue"], invoice["Status"]) == (Decimal(0), "PAID")


def test_a_credit_note_carries_the_invoices_total_and_tax_and_is_allocated_to_it(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice = invoice_plan()
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)

    ref = sink.push(credit)

    assert_credited_once(sandbox, billed, credit)
    [stored] = sandbox.credit_notes
    assert (stored["Type"], stored["CreditNoteID"]) == ("ACCRECCREDIT", ref.remote_id)
    assert (stored["Total"], stored["TotalTax"]) == (Decimal("135.11"), Decimal("6.02"))
    assert [line["TaxType"] for line in stored["LineItems"]] == ["OUTPUT2"] * 3 + ["ECZROUTPUTSERVICES"]
    assert stored["Reference"].startswith(invoice.invoice_number)
    assert (ref.total, ref.tax) == (billed.total, billed.tax) == (credit.total, credit.tax_total)
    assert ref.total == Money.of("135.11", "GBP")


@pytest.mark.parametrize("window", [360.0, 0.0], ids=["inside-key-window", "after-key-expired"])
def test_a_crash_between_create_and_allocate_is_finished_on_retry_without_a_second_credit_note(
    sandbox: XeroSandbox, sink: XeroSink, monkeypatch: pytest.MonkeyPatch, window: float
) -> None:
    sandbox.idempotency_window = window
    invoice = invoice_plan()
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies once the credit note is created

    with monkeypatch.context() as patched:
        patched.setattr(XeroCreditNotes, "_allocate", killed)
        with pytest.raises(KeyboardInterrupt):
            sink.push(credit)
    assert sandbox.credit_notes[0]["Allocations"] == []
    assert sink.find([credit]) == {}, "an unallocated credit note is not done"

    ref = lookup_then_push(make_sink(sandbox), credit)  # the next run

    assert_credited_once(sandbox, billed, credit)
    assert ref.remote_id == sandbox.credit_notes[0]["CreditNoteID"]
    assert ref.total == credit.total
    assert credit_note_puts(sandbox) == 2 and sandbox.replayed == (1 if window else 0)


def test_a_failed_allocation_leaves_an_uncertain_row_the_next_run_finishes(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice = invoice_plan()
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)
    sandbox.faults.queue(Fault(kind="status", status=503), matches=allocations)

    with pytest.raises(UncertainError):
        sink.push(credit)
    ref = lookup_then_push(make_sink(sandbox), credit)

    assert_credited_once(sandbox, billed, credit)
    assert ref.total == credit.total
    assert credit_note_puts(sandbox) == 2 and sandbox.replayed == 1  # the create was replayed, not redone


def test_an_allocation_whose_answer_was_lost_is_found_done_and_not_made_again(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice = invoice_plan()
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)
    sandbox.faults.queue(Fault(kind="status", status=503, when="after"), matches=allocations)

    with pytest.raises(UncertainError):
        sink.push(credit)
    ref = lookup_then_push(make_sink(sandbox), credit)

    assert ref.already_existed
    assert_credited_once(sandbox, billed, credit)
    assert sum(1 for r in sandbox.log if allocations(r)) == 1


def test_find_returns_the_invoice_and_its_credit_note_from_one_mixed_list(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice, unsent = invoice_plan(1), invoice_plan(2)
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)
    credited = sink.push(credit)

    found = sink.find([credit, unsent, invoice, credit_of(unsent, None)])

    assert {key: ref.remote_id for key, ref in found.items()} == {
        invoice.idempotency_key: billed.remote_id,
        credit.idempotency_key: credited.remote_id,
    }
    assert found[credit.idempotency_key].total == credit.total
    assert found[credit.idempotency_key].tax == credit.tax_total


def test_without_the_invoices_id_the_credit_note_is_allocated_to_the_invoice_of_that_number(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice = invoice_plan()
    billed = sink.push(invoice)

    sink.push(credit_of(invoice, None))

    assert_credited_once(sandbox, billed, credit_of(invoice, None))


def test_a_credit_note_for_an_invoice_xero_does_not_hold_is_refused_before_any_write(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    with pytest.raises(RejectedError, match="not in this Xero organisation"):
        sink.push(credit_of(invoice_plan(), None))
    assert sandbox.credit_notes == []


def test_an_unknown_invoice_id_is_xeros_refusal_naming_the_credit_note_left_unallocated(
    sandbox: XeroSandbox, sink: XeroSink
) -> None:
    invoice = invoice_plan()
    sink.push(invoice)
    credit = credit_of(invoice, RemoteRef(remote_id="00000000-0000-0000-0000-000000000001"))

    with pytest.raises(RejectedError) as caught:
        sink.push(credit)

    [stored] = sandbox.credit_notes
    assert stored["CreditNoteID"] in str(caught.value) and "could not be found" in str(caught.value)
    assert stored["Allocations"] == []


def test_a_batch_allocates_its_credit_note_beside_a_new_invoice(sandbox: XeroSandbox, sink: XeroSink) -> None:
    invoice = invoice_plan(1)
    billed = sink.push(invoice)
    credit = credit_of(invoice, billed)

    outcomes = sink.push_batch([credit, invoice_plan(2)])

    assert [o.error for o in outcomes] == [None, None]
    assert_credited_once(sandbox, billed, credit)
    assert len(sandbox.invoices) == 2


# -- the sandbox behaves as Xero does ------------------------------------------------------------
def api(sandbox: XeroSandbox, method: str, path: str, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", "xero-tenant-id": sandbox.tenant_id}
    return requests.request(method, f"{sandbox.api_url}/{path}", json=body, headers=headers, timeout=5)


def raw_credit_note(number: str, status: str = "AUTHORISED", amount: int = 50) -> dict[str, Any]:
    return {
        "Type": "ACCRECCREDIT",
        "CreditNoteNumber": number,
        "Contact": {"ContactNumber": KNOWN},
        "Date": "2024-02-01",
        "Status": status,
        "CurrencyCode": "EUR",
        "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": amount, "AccountCode": "200"}],
    }


def messages(answer: requests.Response) -> list[str]:
    return [e["Message"] for element in answer.json()["Elements"] for e in element["ValidationErrors"]]


def test_sandbox_keeps_credit_note_numbers_unique_and_refuses_allocations_past_what_is_left(
    sandbox: XeroSandbox,
) -> None:
    invoice = sandbox.add_invoice(InvoiceNumber="INV-1", CurrencyCode="EUR")  # 10.00 due
    assert api(sandbox, "PUT", "CreditNotes", raw_credit_note("CN-1")).status_code == 200
    again = api(sandbox, "PUT", "CreditNotes", raw_credit_note("cn-1"))
    assert (again.status_code, messages(again)) == (400, ["Credit Note # must be unique."])
    note = sandbox.credit_notes[0]

    def allocate(amount: Any, invoice_id: str = invoice["InvoiceID"]) -> requests.Response:
        body = {
            "Allocations": [{"Amount": amount, "Invoice": {"InvoiceID": invoice_id}, "Date": "2024-02-02"}]
        }
        return api(sandbox, "PUT", f"CreditNotes/{note['CreditNoteID']}/Allocations", body)

    too_much = allocate(11)
    assert messages(too_much) == [
        "Credit Note cannot be allocated as amount is greater than amount outstanding"
    ]
    unknown = allocate(5, invoice_id="00000000-0000-0000-0000-000000000009")
    assert "could not be found" in messages(unknown)[0]
    assert allocate(10).status_code == 200
    paid = allocate(1)
    assert "already been paid off" in messages(paid)[0]
    assert sandbox.credit_notes[0]["RemainingCredit"] == Decimal(40)
    assert sandbox.invoice(invoice["InvoiceID"])["Status"] == "PAID"
    bigger = sandbox.add_invoice(
        InvoiceNumber="INV-2",
        CurrencyCode="EUR",
        LineItems=[{"Description": "big", "Quantity": 1, "UnitAmount": Decimal(100)}],
    )
    over_credit = allocate(41, invoice_id=bigger["InvoiceID"])
    assert messages(over_credit) == [
        "Credit Note cannot be allocated as amount is greater than the remaining credit"
    ]


def test_sandbox_refuses_to_allocate_a_draft_credit_note(sandbox: XeroSandbox) -> None:
    invoice = sandbox.add_invoice(InvoiceNumber="INV-1", CurrencyCode="EUR")
    api(sandbox, "PUT", "CreditNotes", raw_credit_note("CN-2", status="DRAFT", amount=5))
    [note] = sandbox.credit_notes
    body = {
        "Allocations": [{"Amount": 5, "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Date": "2024-02-02"}]
    }

    answer = api(sandbox, "PUT", f"CreditNotes/{note['CreditNoteID']}/Allocations", body)

    assert answer.status_code == 400 and "must be AUTHORISED" in messages(answer)[0]
    assert sandbox.invoice(invoice["InvoiceID"])["AmountDue"] == Decimal(10)


def test_sandbox_where_filter_finds_credit_notes_by_number_and_refuses_what_it_cannot_parse(
    sandbox: XeroSandbox,
) -> None:
    for number in ("CN-A", "CN-B", "CN-C"):
        api(sandbox, "PUT", "CreditNotes", raw_credit_note(number))
    where = 'Type=="ACCRECCREDIT" AND (CreditNoteNumber=="cn-a" OR CreditNoteNumber=="CN-C")'

    found = api(sandbox, "GET", f"CreditNotes?where={requests.utils.quote(where)}", None)
    broken = api(sandbox, "GET", "CreditNotes?where=CreditNoteNumber%3D%3D", None)

    assert [c["CreditNoteNumber"] for c in found.json()["CreditNotes"]] == ["CN-A", "CN-C"]
    assert broken.status_code == 400
