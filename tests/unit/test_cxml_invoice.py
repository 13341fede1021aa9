"""The cXML InvoiceDetailRequest: DTD validity, what it echoes, and how buyer answers are read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import responses
from lxml import etree

from adapters.cxml_invoice import (
    DOCTYPE,
    CxmlInvoiceConfig,
    CxmlInvoiceSink,
    CxmlStatus,
    is_already_used,
    payload_id,
    read_status,
)
from connector.errors import AuthenticationError, RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms
from connector.ports import AdapterContext, AdapterKind, Capability, InvoiceSink
from tests.support.shared import shared_fixture

URL = "https://acme.coupahost.com/cxml/invoices"
SECRET = "cxml-unit-secret-4242"
WHEN = datetime(2024, 2, 2, 9, 30, tzinfo=UTC)


def make_plan(number: str = "INV-0000000000AB", **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": "f" * 64,
        "invoice_number": number,
        "sink": "coupa-invoices",
        "customer_ref": "ACME",
        "customer_name": "Acme Corp",
        "po_number": "6112",
        "po_key": "default/coupa/6112",
        "po_revision": 2,
        "billing_key": "default/billing/sub-1/2024-01-01",
        "currency": "USD",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "payment_terms": PaymentTerms(code="NET30", net_days=30),
        "bill_to": Address(
            name="Acme Corp AP",
            lines=("1 Main St",),
            city="Springfield",
            region="IL",
            postal_code="62701",
            country="US",
            email="ap@acme.test",
        ),
        "lines": (
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="SEAT",
                supplier_part_id="SKU-SEAT-01",
                description="Seats",
                quantity=Decimal("12"),
                unit_of_measure="EA",
                unit_price=Money.of("19.99", "USD"),
                service_start=date(2024, 1, 1),
                service_end=date(2024, 1, 31),
            ),
            InvoiceLine(
                line_no=2,
                po_line_no=2,
                sku="SUPPORT",
                quantity=Decimal("1.5"),
                unit_of_measure="MON",
                unit_price=Money.of("100.125", "USD"),
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "memo": "PO 6112, January",
    }
    values.update(overrides)
    return InvoicePlan(**values)


def make_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> CxmlInvoiceSink:
    monkeypatch.setenv("CXML_SECRET", SECRET)
    values: dict[str, Any] = {
        "name": "coupa-invoices",
        "url": URL,
        "from_domain": "DUNS",
        "from_identity": "supplier-duns",
        "to_domain": "NetworkID",
        "to_identity": "buyer-network-id",
        "sender_domain": "DUNS",
        "sender_identity": "supplier-duns",
        "shared_secret_env": "CXML_SECRET",
        "archive_dir": tmp_path / "archive",
    }
    values.update(overrides)
    return CxmlInvoiceSink(
        CxmlInvoiceConfig(**values), AdapterContext(), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None)
    )


def invoice_dtd() -> etree.DTD:
    return etree.DTD(str(shared_fixture("cxml/InvoiceDetail-1.2.037.dtd")))


def parse(document: bytes) -> etree._Element:
    return etree.fromstring(
        document, etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    )


def answer(code: int, text: str, detail: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?><cXML payloadID="1@buyer" timestamp="2024-02-02T10:00:00+00:00">'
        f'<Response><Status code="{code}" text="{text}">{detail}</Status></Response></cXML>'
    ).encode()


def test_sink_declares_the_sink_port_with_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    assert isinstance(sink, InvoiceSink)
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == frozenset({Capability.LOOKUP})
    assert sink.Config is CxmlInvoiceConfig


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bill_to": None, "payment_terms": None, "memo": ""},
        {
            "currency": "JPY",
            "lines": (
                InvoiceLine(
                    line_no=1,
                    po_line_no=4,
                    sku="SEAT",
                    quantity=Decimal("3"),
                    unit_price=Money.of("1200", "JPY"),
                ),
            ),
        },
    ],
    ids=["full", "minimal", "zero-decimal-currency"],
)
def test_document_is_valid_against_the_invoice_detail_dtd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> None:
    document = make_sink(tmp_path, monkeypatch).render(make_plan(**overrides), timestamp=WHEN)
    dtd = invoice_dtd()
    root = parse(document)
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n" + DOCTYPE.encode())


def test_document_echoes_invoice_po_lines_and_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan()
    root = parse(make_sink(tmp_path, monkeypatch, deployment_mode="test").render(plan, timestamp=WHEN))

    assert root.get("payloadID") == payload_id(plan)
    assert root.get("timestamp") == "2024-02-02T09:30:00+00:00"
    assert root.findtext("Header/Sender/Credential/SharedSecret") == SECRET
    assert root.find("Request").get("deploymentMode") == "test"
    head = root.find("Request/InvoiceDetailRequest/InvoiceDetailRequestHeader")
    assert (head.get("invoiceID"), head.get("purpose"), head.get("operation")) == (
        plan.invoice_number,
        "standard",
        "new",
    )
    assert head.get("invoiceDate") == "2024-02-01T00:00:00+00:00"
    assert head.find("PaymentTerm").get("payInNumberOfDays") == "30"
    assert head.findtext("InvoicePartner/Contact/PostalAddress/City") == "Springfield"
    reference = root.find(".//InvoiceDetailOrderInfo/OrderReference")
    assert reference.get("orderID") == "6112"
    assert reference.find("DocumentReference").get("payloadID") == "6112"
    items = root.findall(".//InvoiceDetailItem")
    assert [(i.get("invoiceLineNumber"), i.get("quantity"), i.findtext("UnitOfMeasure")) for i in items] == [
        ("1", "12", "EA"),
        ("2", "1.5", "MON"),
    ]
    assert [i.find("InvoiceDetailItemReference").get("lineNumber") for i in items] == ["1", "2"]
    assert [i.findtext("InvoiceDetailItemReference/ItemID/SupplierPartID") for i in items] == [
        "SKU-SEAT-01",
        "SUPPORT",
    ]
    assert [i.findtext("UnitPrice/Money") for i in items] == ["19.99", "100.125"]
    assert [i.findtext("SubtotalAmount/Money") for i in items] == ["239.88", "150.19"]
    assert items[0].findtext("Extrinsic[@name='serviceStartDate']") == "2024-01-01"
    summary = root.find(".//InvoiceDetailSummary")
    assert summary.findtext("SubtotalAmount/Money") == "390.07"
    assert summary.findtext("Tax/Money") == "0.00"
    assert summary.findtext("NetAmount/Money") == summary.findtext("DueAmount/Money") == "390.07"
    assert summary.find("DueAmount/Money").get("currency") == "USD"


def test_payload_id_is_the_same_for_every_send_of_a_plan() -> None:
    assert payload_id(make_plan()) == payload_id(make_plan())
    assert payload_id(make_plan()) != payload_id(make_plan("INV-0000000000AC", idempotency_key="e" * 64))


@pytest.mark.parametrize(
    ("status", "already"),
    [
        (
            CxmlStatus(
                417, "Invalid attributes", "Invoice number INV-1 has already been used for this supplier"
            ),
            True,
        ),
        (CxmlStatus(417, "invoice number has already been used for this supplier"), True),
        (CxmlStatus(417, "Invalid order/document reference", "Could not find order header 6112"), False),
        (CxmlStatus(200, "OK", "invoice number already used"), False),
        (
            CxmlStatus(417, "Invoice number INV-1 refused: PO-7 line 1 has already been submitted in full"),
            False,
        ),
        (CxmlStatus(417, "Possible duplicate invoice: same amount as INV-0"), False),
    ],
)
def test_already_used_answer_is_recognised(status: CxmlStatus, already: bool) -> None:
    assert is_already_used(status) is already


def test_read_status_refuses_entity_declarations() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE cXML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<cXML><Response><Status code="200" text="&b;"/></Response></cXML>'
    )
    assert read_status(bomb) is None
    assert read_status(answer(201, "Accepted")) == CxmlStatus(201, "Accepted", "")


@responses.activate
def test_accepted_invoice_is_posted_as_text_xml_and_archived_without_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    plan = make_plan()
    responses.post(URL, body=answer(200, "OK"), content_type="text/xml")

    ref = sink.push(plan)

    request = responses.calls[0].request
    assert request.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert parse(request.body).get("payloadID") == ref.remote_id == payload_id(plan)
    assert (ref.total, ref.already_existed) == (Money.of("390.07", "USD"), False)
    archived = sink.archive_path(plan).read_bytes()
    assert SECRET.encode() not in archived
    assert parse(archived).findtext("Header/Sender/Credential/SharedSecret") == "***"
    assert sink.find([plan, make_plan("INV-NOT-SENT", idempotency_key="0" * 64)]) == {
        plan.idempotency_key: ref.model_copy(update={"already_existed": True})
    }


@responses.activate
@pytest.mark.parametrize("http_status", [417, 200])
def test_duplicate_number_answer_resolves_as_already_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    plan = make_plan()
    detail = f"Invoice number {plan.invoice_number} has already been used for this supplier"
    responses.post(
        URL, status=http_status, body=answer(417, "Invalid attributes", detail), content_type="text/xml"
    )

    ref = sink.push(plan)

    assert ref.already_existed
    assert plan.idempotency_key in sink.find([plan])


@responses.activate
@pytest.mark.parametrize("http_status", [401, 200])
def test_refused_credentials_are_an_authentication_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(
        URL, status=http_status, body=answer(401, "Unauthorized", "bad credentials"), content_type="text/xml"
    )

    with pytest.raises(AuthenticationError, match="401 Unauthorized: bad credentials"):
        sink.push(make_plan())
    assert sink.find([make_plan()]) == {}


@responses.activate
def test_other_buyer_refusal_is_rejected_with_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(
        URL,
        status=417,
        body=answer(417, "Invalid order/document reference", "Could not find order header 6112"),
    )

    with pytest.raises(RejectedError, match="Could not find order header 6112") as caught:
        sink.push(make_plan())
    assert caught.value.provider_code == "417"


@responses.activate
@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (500, answer(500, "Unexpected server error")),
        (200, answer(500, "Unexpected server error")),
        (502, b"<html>bad gateway</html>"),
        (200, b"OK"),
    ],
    ids=["http-500", "status-500-in-200", "gateway-html", "undecodable-200"],
)
def test_server_errors_and_unreadable_answers_are_uncertain_and_sent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int, body: bytes
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(URL, status=http_status, body=body)

    with pytest.raises(UncertainError):
        sink.push(make_plan())
    assert len(responses.calls) == 1
    assert sink.find([make_plan()]) == {}


def test_an_already_used_answer_naming_another_number_is_a_rejection() -> None:
    from adapters.cxml_invoice import named_number

    assert named_number(CxmlStatus(417, "Invoice number INV-9 has already been used")) == "INV-9"
    assert named_number(CxmlStatus(417, "invoice number has already been used for this supplier")) is None
