"""The cXML credit memo: valid against the InvoiceDetail DTD, naming the invoice it credits, its
amounts negative and its quantities and prices as invoiced, archived and found as positive."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from lxml import etree

from adapters.cxml_invoice_document import payload_id, read_archived
from connector.model import InvoicePlan, Money
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from tests.support.factories import make_seller
from tests.unit.test_cxml_invoice import (
    URL,
    WHEN,
    amount,
    answer,
    invoice_dtd,
    make_plan,
    make_sink,
    parse,
    taxed_plans,
)

HEAD = "Request/InvoiceDetailRequest/InvoiceDetailRequestHeader"
SUMMARY = "Request/InvoiceDetailRequest/InvoiceDetailSummary"
SUMMARY_AMOUNTS = ("SubtotalAmount", "Tax", "NetAmount", "DueAmount")


def credit_of(invoice: InvoicePlan, remote_id: str | None = None) -> InvoicePlan:
    """The credit note of an invoice this sink delivered (its id is the document's payloadID)."""
    return plan_credit_note(
        invoice,
        reason="seats cancelled",
        issue_date=date(2024, 2, 20),
        remote_id=payload_id(invoice) if remote_id is None else remote_id,
    )


def render(plan: InvoicePlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> etree._Element:
    sink = make_sink(tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller("DE")))
    root = parse(sink.render(plan, timestamp=WHEN))
    dtd = invoice_dtd()
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    return root


@pytest.mark.parametrize("name", ["untaxed", *taxed_plans()])
def test_credit_memo_is_valid_against_the_dtd_and_its_amounts_are_the_invoices_negated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    invoice = make_plan() if name == "untaxed" else taxed_plans()[name]
    invoice_root = render(invoice, tmp_path / "invoice", monkeypatch)
    credit_root = render(credit_of(invoice), tmp_path / "credit", monkeypatch)

    invoice_items = invoice_root.findall(".//InvoiceDetailItem")
    credit_items = credit_root.findall(".//InvoiceDetailItem")
    assert len(credit_items) == len(invoice_items) == len(invoice.lines)
    for billed, credited in zip(invoice_items, credit_items, strict=True):
        # Coupa: a credit memo's quantity and unit price are positive, as invoiced
        assert credited.get("quantity") == billed.get("quantity")
        assert credited.findtext("UnitPrice/Money") == billed.findtext("UnitPrice/Money")
        assert amount(credited, "SubtotalAmount/Money") == -amount(billed, "SubtotalAmount/Money") < 0
        for path in ("Tax/Money", "Tax/TaxDetail/TaxableAmount/Money", "Tax/TaxDetail/TaxAmount/Money"):
            if billed.find(path) is not None:
                assert amount(credited, path) == -amount(billed, path)
    for name_ in SUMMARY_AMOUNTS:
        assert amount(credit_root, f"{SUMMARY}/{name_}/Money") == -amount(
            invoice_root, f"{SUMMARY}/{name_}/Money"
        )
    credit_due = amount(credit_root, f"{SUMMARY}/DueAmount/Money")
    assert credit_due == -invoice.total.quantized().amount < 0
    lines_tax = sum((amount(i, "Tax/Money") for i in credit_items if i.find("Tax") is not None), Decimal(0))
    if invoice.is_taxed:
        assert lines_tax == amount(credit_root, f"{SUMMARY}/Tax/Money") == -invoice.tax_total.amount


def test_credit_memo_header_names_the_invoice_it_credits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_plan()
    credit = credit_of(invoice)

    root = render(credit, tmp_path, monkeypatch)

    head = root.find(HEAD)
    assert (head.get("invoiceID"), head.get("purpose"), head.get("operation")) == (
        credit.invoice_number,
        "creditMemo",
        "new",
    )
    assert head.get("invoiceDate") == "2024-02-20T00:00:00+00:00"
    info = head.find("InvoiceIDInfo")
    assert (info.get("invoiceID"), info.get("invoiceDate")) == (
        invoice.invoice_number,
        "2024-02-01T00:00:00+00:00",
    )
    assert head.find("DocumentReference").get("payloadID") == payload_id(invoice)
    assert head.find("PaymentTerm") is None  # nothing is to be paid on a credit
    assert head.findtext("Comments") == f"Credit note for invoice {invoice.invoice_number}: seats cancelled"
    assert root.get("payloadID") == payload_id(credit) != payload_id(invoice)
    assert root.find(".//InvoiceDetailOrderInfo/OrderReference").get("orderID") == "6112"


def test_credit_without_the_invoices_payload_id_names_it_by_number_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = render(credit_of(make_plan(), remote_id=""), tmp_path, monkeypatch).find(HEAD)
    assert head.find("DocumentReference") is None
    assert head.find("InvoiceIDInfo").get("invoiceID") == make_plan().invoice_number


def test_untaxed_credit_memo_keeps_a_zero_tax_unsigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = render(credit_of(make_plan()), tmp_path, monkeypatch)
    assert root.findtext(f"{SUMMARY}/Tax/Money") == "0.00"
    assert root.findtext(f"{SUMMARY}/DueAmount/Money") == "-390.07"


@responses.activate
def test_pushed_credit_memo_is_archived_and_found_with_positive_total_and_tax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller()))
    invoice = taxed_plans()["mixed-rates-remainder"]
    credit = credit_of(invoice)
    responses.post(URL, body=answer(200, "OK"), content_type="text/xml")

    invoice_ref = sink.push(invoice)
    ref = sink.push(credit)

    assert parse(responses.calls[1].request.body).find(HEAD).get("purpose") == "creditMemo"
    assert (ref.remote_id, ref.total, ref.tax) == (payload_id(credit), credit.total, credit.tax_total)
    assert ref.total == Money.of("152.68", "EUR") and ref.tax == Money.of("8.01", "EUR")
    archived = read_archived(sink.archive_path(credit).read_bytes(), document="archive")
    assert (archived.total, archived.tax) == (credit.total, credit.tax_total)

    found = sink.find([credit, make_plan("INV-NOT-SENT", idempotency_key="0" * 64), invoice])

    assert found == {
        invoice.idempotency_key: invoice_ref.model_copy(update={"already_existed": True}),
        credit.idempotency_key: ref.model_copy(update={"already_existed": True}),
    }
