"""UBL 2.1 Order / OrderChange / OrderCancellation -> canonical PO (Peppol BIS Ordering 3.0)."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.ubl_order import UblOrderKind, parse_ubl_order
from connector.errors import InputError
from connector.model import Money, POStatus, PurchaseOrder
from tests.support.shared import shared_fixture

DATA = Path(__file__).resolve().parents[1] / "data" / "ubl"


def parse(name: str, data: bytes | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    body = data if data is not None else (DATA / name).read_bytes()
    return parse_ubl_order(body, source="peppol", document=name, **kwargs)  # type: ignore[arg-type]


def test_the_order_example_is_valid_against_the_oasis_xsd() -> None:
    schema = etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-Order-2.1.xsd"))))
    assert schema.validate(etree.parse(str(DATA / "order.xml"))), schema.error_log


def test_an_order_becomes_revision_1_of_the_canonical_po() -> None:
    doc = parse("order.xml")
    assert doc.kind is UblOrderKind.ORDER and doc.problems == []
    po = doc.po
    assert po is not None
    assert (po.po_number, po.external_id, po.buyer_id, po.revision) == (
        "PO-UBL-1001",
        "7300010000001/PO-UBL-1001",
        "7300010000001",
        1,
    )
    assert po.status is POStatus.OPEN and po.currency == "EUR"
    assert po.buyer_name == "Northwind Traders AB"
    assert po.issued_on == date(2026, 3, 2)
    assert po.source_updated_at == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert (po.term_start, po.term_end) == (date(2026, 4, 1), date(2027, 3, 31))
    assert po.payment_terms is not None and po.payment_terms.net_days == 30
    assert po.bill_to is not None and po.bill_to.city == "Stockholm" and po.bill_to.country == "SE"
    assert po.ship_to is not None and po.ship_to.city == "Gothenburg"
    assert po.extrinsics == {"CustomerReference": "FIN-4711", "AccountingCost": "IT-SaaS"}
    first, second = po.lines
    assert (first.sku, first.quantity, first.unit_price, first.unit_of_measure) == (
        "SKU-PRO-SEAT",
        Decimal("100"),
        Money(amount=Decimal("120.00"), currency="EUR"),
        "C62",
    )
    assert first.supplier_part_aux_id == "NW-LIC-77"
    assert (first.service_start, first.service_end) == (date(2026, 4, 1), date(2027, 3, 31))
    # 1200.00 per base quantity 10 is 120 per unit
    assert second.unit_price == Money(amount=Decimal("120"), currency="EUR")
    assert isinstance(second.unit_price.amount, Decimal)


def test_an_order_change_is_the_next_revision_without_its_cancelled_lines() -> None:
    doc = parse("order-change.xml")
    assert doc.kind is UblOrderKind.ORDER_CHANGE and doc.problems == []
    po = doc.po
    assert po is not None
    assert (po.po_number, po.external_id, po.revision) == ("PO-UBL-1001", "7300010000001/PO-UBL-1001", 2)
    assert po.source_version == "1"  # the change's SequenceNumberID
    assert [(line.line_no, line.sku, line.quantity) for line in po.lines] == [
        (1, "SKU-PRO-SEAT", Decimal("120")),
        (3, "SKU-ONBOARD", Decimal("1")),
    ]
    assert doc.input_key == "ubl|OrderChange|7300010000001/CHG-1001-1"


def test_an_order_cancellation_cancels_the_latest_po_one_revision_higher() -> None:
    changed = parse("order-change.xml").po
    assert changed is not None
    asked: list[tuple[str, str]] = []

    def previous(external_id: str, po_number: str) -> PurchaseOrder | None:
        asked.append((external_id, po_number))
        return changed

    doc = parse("order-cancellation.xml", previous=previous)
    assert asked == [("7300010000001/PO-UBL-1001", "PO-UBL-1001")]
    po = doc.po
    assert po is not None and doc.problems == []
    assert (po.status, po.revision, po.lines) == (POStatus.CANCELLED, 3, changed.lines)
    assert po.comments.endswith("Budget withdrawn")
    assert po.source_updated_at == datetime(2026, 3, 20, 8, 15, tzinfo=UTC)


def test_a_cancellation_of_an_order_never_read_is_a_problem_naming_the_order() -> None:
    doc = parse("order-cancellation.xml")
    assert doc.po is None
    [problem] = doc.problems
    assert (problem.document, problem.field, problem.value) == (
        "order-cancellation.xml",
        "cac:OrderReference/cbc:ID",
        "PO-UBL-1001",
    )


@pytest.mark.parametrize(
    ("old", "new", "location", "field", "value"),
    [
        (
            '<cbc:Quantity unitCode="C62">100</cbc:Quantity>',
            '<cbc:Quantity unitCode="C62">lots</cbc:Quantity>',
            "OrderLine 1",
            "cbc:Quantity",
            "lots",
        ),
        (
            '<cbc:PriceAmount currencyID="EUR">120.00</cbc:PriceAmount>',
            '<cbc:PriceAmount currencyID="USD">120.00</cbc:PriceAmount>',
            "OrderLine 1",
            "cac:Price/cbc:PriceAmount@currencyID",
            "USD",
        ),
        (
            "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>",
            "<cbc:DocumentCurrencyCode>EURO</cbc:DocumentCurrencyCode>",
            "",
            "cbc:DocumentCurrencyCode",
            "EURO",
        ),
        (
            "<cbc:IssueDate>2026-03-02</cbc:IssueDate>",
            "<cbc:IssueDate>02.03.2026</cbc:IssueDate>",
            "",
            "cbc:IssueDate",
            "02.03.2026",
        ),
        (
            "<cbc:ID>SKU-SUPPORT</cbc:ID>",
            "<cbc:ID></cbc:ID>",
            "OrderLine 2",
            "cac:Item/cac:SellersItemIdentification/cbc:ID",
            "",
        ),
        (
            '<cbc:BaseQuantity unitCode="C62">10</cbc:BaseQuantity>',
            '<cbc:BaseQuantity unitCode="C62">7</cbc:BaseQuantity>',
            "OrderLine 2",
            "cac:Price/cbc:BaseQuantity",
            "7",
        ),
    ],
)
def test_a_bad_field_is_a_problem_naming_line_field_and_value_and_no_po(
    old: str, new: str, location: str, field: str, value: str
) -> None:
    text = (DATA / "order.xml").read_text(encoding="utf-8")
    assert old in text
    doc = parse("order.xml", text.replace(old, new, 1).encode())
    assert doc.po is None
    assert [(p.document, p.location, p.field, p.value) for p in doc.problems] == [
        ("order.xml", location, field, value)
    ]


def test_a_document_that_is_no_ubl_order_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        parse("invoice.xml", b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>')
    assert caught.value.problem.field == "root"
    assert "not a UBL Order" in caught.value.problem.reason


def test_entities_are_refused_before_parsing() -> None:
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    with pytest.raises(InputError) as caught:
        parse("order.xml", hostile)
    assert caught.value.problem.field == "DOCTYPE"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_only_input_errors_escape_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(InputError):
        parse("fuzz.xml", data)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=60))
def test_any_field_text_gives_a_po_or_problems_never_a_crash(value: str) -> None:
    text = (DATA / "order.xml").read_text(encoding="utf-8")
    escaped = value.replace("&", "&amp;").replace("<", "&lt;")
    cleaned = "".join(
        c for c in escaped if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
    )
    for old in (
        "100</cbc:Quantity>",
        "120.00</cbc:PriceAmount>",
        "2026-04-01</cbc:StartDate>",
        "SE</cbc:IdentificationCode>",
    ):
        tag = old.split("<", 1)[1]
        try:
            doc = parse("order.xml", text.replace(old, f"{cleaned}<{tag}", 1).encode())
        except InputError:
            continue
        assert (doc.po is None) == bool(doc.problems)
