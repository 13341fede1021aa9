"""cXML credit memos over real HTTP against a buyer endpoint that checks the DTD, numbers and the
credited invoice: one credit memo per credit note, tied to the invoice, never sent twice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from lxml import etree

from adapters.cxml_invoice import CxmlInvoiceSink
from adapters.cxml_invoice_document import DOCTYPE, read_status
from connector.errors import UncertainError
from connector.model import InvoicePlan, RemoteRef
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from tests.integration.test_cxml_invoice_sandbox import SECRET, make_sink, vat_plan
from tests.sandboxes.base import Fault
from tests.sandboxes.cxml_buyer import INVOICE_PATH, CxmlBuyerSandbox
from tests.support.factories import make_seller
from tests.support.shared import shared_fixture
from tests.unit.test_cxml_invoice import make_plan

HEAD = "Request/InvoiceDetailRequest/InvoiceDetailRequestHeader"


@pytest.fixture
def buyer() -> Iterator[CxmlBuyerSandbox]:
    box = CxmlBuyerSandbox(
        shared_secret=SECRET,
        dtd_path=shared_fixture("cxml/InvoiceDetail-1.2.037.dtd"),
        orders={"6112": {1, 2}, "PO-1": {1, 2, 3}},
    )
    with box:
        yield box


def credit_of(invoice: InvoicePlan, ref: RemoteRef | None) -> InvoicePlan:
    """The credit note of an invoice, naming the id its push reported (none if never pushed)."""
    return plan_credit_note(
        invoice,
        reason="seats cancelled",
        issue_date=date(2024, 2, 20),
        remote_id=ref.remote_id if ref else "",
    )


def next_run(sink: CxmlInvoiceSink, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
    """What the outbox does with claimed rows, in small: look them up, push only the rest."""
    done = dict(sink.find(plans))
    for plan in plans:
        if plan.idempotency_key not in done:
            done[plan.idempotency_key] = sink.push(plan)
    return done


def post(buyer: CxmlBuyerSandbox, root: etree._Element) -> tuple[int, str, str]:
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=DOCTYPE)
    answer = requests.post(
        f"{buyer.url}{INVOICE_PATH}", data=document, headers={"Content-Type": "text/xml"}, timeout=5
    )
    status = read_status(answer.content)
    assert status is not None
    return status.code, status.text, status.detail


def test_buyer_holds_one_credit_memo_tied_to_the_invoice_with_its_amounts_negative(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller("DE")))
    invoice = vat_plan()
    credit = credit_of(invoice, sink.push(invoice))

    ref = sink.push(credit)

    held = buyer.invoices[credit.invoice_number]
    assert (held["purpose"], held["credits"], held["po_number"]) == (
        "creditMemo",
        invoice.invoice_number,
        "PO-1",
    )
    assert held["credits_date"] == "2026-11-01T00:00:00+00:00"
    assert (held["subtotal"], held["tax"], held["due_amount"]) == (
        -invoice.net_total.amount,
        -invoice.tax_total.amount,
        -invoice.total.amount,
    )
    assert held["due_amount"] == Decimal("-325.97")
    assert [line["tax"] for line in held["lines"]] == [Decimal("-19.00"), Decimal("-7.00"), Decimal("0.00")]
    assert [line["quantity"] for line in held["lines"]] == [line.quantity for line in invoice.lines]
    assert buyer.invoices[invoice.invoice_number]["credit_notes"] == [credit.invoice_number]
    assert [n for n, i in buyer.invoices.items() if i["purpose"] == "creditMemo"] == [credit.invoice_number]
    assert (ref.total, ref.tax, ref.already_existed) == (credit.total, credit.tax_total, False)
    assert ref.total.amount > 0


def test_find_on_a_mixed_list_finds_the_invoice_and_its_credit_note(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    invoice = vat_plan()
    invoice_ref = sink.push(invoice)
    credit = credit_of(invoice, invoice_ref)
    credit_ref = sink.push(credit)

    found = sink.find([credit, make_plan("INV-NEVER-SENT", idempotency_key="0" * 64), invoice])

    assert set(found) == {invoice.idempotency_key, credit.idempotency_key}
    assert found[invoice.idempotency_key].remote_id == invoice_ref.remote_id
    assert (
        found[credit.idempotency_key].remote_id
        == credit_ref.remote_id
        == buyer.invoices[credit.invoice_number]["payload_id"]
    )
    assert (found[credit.idempotency_key].total, found[credit.idempotency_key].tax) == (
        credit.total,
        credit.tax_total,
    )


def test_crash_between_delivery_and_record_sends_no_second_credit_memo(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_plan()
    credit = credit_of(invoice, make_sink(buyer, tmp_path, monkeypatch).push(invoice))
    make_sink(buyer, tmp_path, monkeypatch).push(credit)  # delivered; the process dies before recording it
    posts = buyer.count("POST", INVOICE_PATH)

    done = next_run(make_sink(buyer, tmp_path, monkeypatch), [invoice, credit])

    assert done[credit.idempotency_key].already_existed
    assert done[credit.idempotency_key].total == credit.total
    assert buyer.count("POST", INVOICE_PATH) == posts  # found in the archive: nothing re-sent
    assert buyer.invoices[invoice.invoice_number]["credit_notes"] == [credit.invoice_number]


def test_lost_answer_is_resent_and_the_used_number_resolves_it_as_delivered(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice, sink.push(invoice))
    buyer.faults.queue(Fault("status", 500, when="after"))

    with pytest.raises(UncertainError):
        sink.push(credit)
    assert credit.invoice_number in buyer.invoices and sink.find([credit]) == {}

    done = next_run(sink, [credit])

    assert done[credit.idempotency_key].already_existed
    assert buyer.invoices[invoice.invoice_number]["credit_notes"] == [credit.invoice_number]
    assert credit.idempotency_key in sink.find([credit])


def test_credit_of_an_invoice_the_buyer_never_received_is_refused_and_not_archived(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    credit = credit_of(make_plan(), None)

    with pytest.raises(
        UncertainError, match="500 Unexpected server error: creditMemo without the original invoice"
    ):
        sink.push(credit)

    assert buyer.invoices == {}
    assert sink.find([credit]) == {}


def test_buyer_refuses_a_credit_memo_without_the_original_invoice_or_with_a_positive_due(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice, sink.push(invoice))
    when = datetime(2024, 2, 20, tzinfo=UTC)

    unnamed = etree.fromstring(sink.render(credit, timestamp=when))
    head = unnamed.find(HEAD)
    for name in ("InvoiceIDInfo", "DocumentReference"):
        head.remove(head.find(name))
    assert post(buyer, unnamed) == (500, "Unexpected server error", "creditMemo without the original invoice")

    positive = etree.fromstring(sink.render(credit, timestamp=when))
    for money in positive.iterfind(".//Money"):
        money.text = (money.text or "").lstrip("-")
    code, text, detail = post(buyer, positive)
    assert (code, text) == (417, "Invalid attributes")
    assert detail == "A creditMemo's DueAmount must be negative, not 390.07"

    assert list(buyer.invoices) == [invoice.invoice_number]
    assert buyer.invoices[invoice.invoice_number]["credit_notes"] == []


def test_a_credit_note_number_already_used_is_refused_like_an_invoice_number(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice, sink.push(invoice))
    sink.push(credit)

    again = make_sink(buyer, tmp_path / "elsewhere", monkeypatch).push(credit)  # no archive there

    assert again.already_existed
    assert buyer.invoices[invoice.invoice_number]["credit_notes"] == [credit.invoice_number]
