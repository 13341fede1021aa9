"""cXML OrderRequest -> canonical PO mapping, and the cXML Response we answer with."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.cxml_order import (
    CXML_DTD_URL,
    Credential,
    OrderOperation,
    OrderRequestDoc,
    parse_order_request,
    render_response,
)
from adapters.safe_xml import safe_parser
from connector.errors import InputError
from connector.model import Money, POStatus
from tests.support.shared import shared_fixture

DATA = Path(__file__).resolve().parents[1] / "data" / "cxml"


def parse(data: bytes, document: str = "order.xml") -> OrderRequestDoc:
    return parse_order_request(data, source="cxml", document=document)


def parse_data(name: str) -> OrderRequestDoc:
    return parse((DATA / name).read_bytes(), name)


def new_order() -> bytes:
    return (DATA / "order-new.xml").read_bytes()


def cxml_dtd() -> etree.DTD:
    return etree.DTD(str(shared_fixture("cxml/cXML-1.2.050.dtd")))


def test_generic_order_request_maps_to_a_canonical_po() -> None:
    data = shared_fixture("cxml/OrderRequest-generic.xml").read_bytes()
    doc = parse(data, "OrderRequest-generic.xml")

    assert doc.problems == []
    assert doc.payload_id == "1625586002.193314.7293@dev"
    assert doc.timestamp == datetime(2000, 10, 13, 2, 39, 9, tzinfo=UTC)
    assert doc.deployment_mode == "test"
    assert doc.operation is OrderOperation.NEW
    assert doc.header.from_credentials == (Credential("NetworkId", "inbound@prominate-platform.com"),)
    assert doc.header.to_credentials == (Credential("NetworkId", "supplier@supplier.com"),)
    po = doc.po
    assert po is not None
    assert (po.po_number, po.external_id, po.revision, po.status) == (
        "DO1234",
        "inbound@prominate-platform.com/DO1234",
        1,
        POStatus.OPEN,
    )
    assert po.currency == "EUR"
    assert po.issued_on == date(2000, 10, 12)
    assert [(line.line_no, line.sku, line.quantity) for line in po.lines] == [
        (1, "1233244", Decimal("10")),
        (2, "1233245", Decimal("20")),
    ]
    assert po.lines[0].unit_price == Money.of("2.10", "EUR")
    assert po.lines[1].description == "hello from item 2"
    assert po.total == Money.of("85.00", "EUR")
    assert po.ship_to is not None and po.bill_to is not None
    assert (po.ship_to.name, po.ship_to.lines, po.ship_to.city, po.ship_to.region, po.ship_to.country) == (
        "Acme",
        ("123 Anystreet",),
        "Sunnyvale",
        "CA",
        "US",
    )
    assert (po.bill_to.name, po.bill_to.postal_code, po.bill_to.country) == ("Zinc GmbH", "42699", "DE")
    assert po.buyer_id == "inbound@prominate-platform.com"
    assert po.raw_sha256 and po.source_updated_at == doc.timestamp


def test_shared_secret_is_kept_nowhere_in_the_parsed_document() -> None:
    doc = parse(shared_fixture("cxml/OrderRequest-generic.xml").read_bytes())
    assert doc.po is not None
    assert "coyote" not in repr(doc)
    assert "coyote" not in doc.po.model_dump_json()


def test_order_fields_terms_extrinsics_and_addresses_are_mapped() -> None:
    po = parse_data("order-new.xml").po
    assert po is not None
    assert (po.term_start, po.term_end) == (date(2024, 1, 1), date(2024, 12, 31))
    assert po.payment_terms is not None
    assert (po.payment_terms.code, po.payment_terms.net_days) == ("NET30", 30)
    assert po.extrinsics["CostCenter"] == "CC-42"
    assert po.extrinsics["line 2 ContractRef"] == "C-9"
    assert po.extrinsics["line 1 requestedDeliveryDate"] == "2024-01-01"
    assert po.comments == "Annual subscription, billed monthly."
    assert po.lines[0].supplier_part_aux_id == "plan-2024"
    assert po.lines[1].unit_of_measure == "MON"
    assert po.bill_to is not None
    assert (po.bill_to.email, po.bill_to.country) == ("ap@northwind.example", "US")
    assert po.ship_to is not None and po.ship_to.lines == ("1 Harbour Road", "Building B")
    assert po.buyer_name == "Northwind Traders Inc."


def test_update_takes_its_order_version_as_revision() -> None:
    doc = parse_data("order-update.xml")
    assert doc.operation is OrderOperation.UPDATE
    assert doc.po is not None
    assert (doc.po.revision, doc.po.status, doc.po.lines[0].quantity) == (2, POStatus.OPEN, Decimal("12"))
    assert doc.po.source_version == "2"


def test_update_without_order_version_still_supersedes_the_original() -> None:
    data = new_order().replace(b'type="new" orderVersion="1"', b'type="update"')
    po = parse(data).po
    assert po is not None and po.revision == 2


def test_new_order_without_order_version_is_revision_one() -> None:
    po = parse(new_order().replace(b' orderVersion="1"', b"")).po
    assert po is not None and po.revision == 1
    assert po.source_version == ""  # the buyer stated no version


def test_delete_cancels_the_po() -> None:
    doc = parse_data("order-delete.xml")
    assert doc.operation is OrderOperation.DELETE
    assert doc.po is not None
    assert (doc.po.status, doc.po.source_status, doc.po.revision) == (POStatus.CANCELLED, "delete", 3)


def test_bad_lines_are_reported_with_document_line_field_and_value() -> None:
    doc = parse_data("order-bad-lines.xml")
    assert doc.po is None
    found = {(p.document, p.location, p.field, p.value) for p in doc.problems}
    assert found == {
        ("order-bad-lines.xml", "ItemOut lineNumber=1", "ItemID/SupplierPartID", ""),
        ("order-bad-lines.xml", "ItemOut lineNumber=2", "quantity", "one"),
    }
    assert doc.payload_id == "20240107.1111.bad@buyer.example"


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [
        (
            b'<Money currency="USD">100.00</Money>',
            b'<Money currency="EUR">100.00</Money>',
            "UnitPrice/Money@currency",
            "EUR",
        ),
        (
            b'<Money currency="USD">120.00</Money>',
            b'<Money currency="USD">1_20</Money>',
            "UnitPrice/Money",
            "1_20",
        ),
        (b'type="new"', b'type="replace"', "OrderRequestHeader@type", "replace"),
        (b'orderVersion="1"', b'orderVersion="v1"', "OrderRequestHeader@orderVersion", "v1"),
        (
            b'orderDate="2024-01-05T09:00:00+01:00"',
            b'orderDate="05/01/2024"',
            "OrderRequestHeader@orderDate",
            "05/01/2024",
        ),
        (b'quantity="10"', b'quantity="0"', "quantity", "0"),
        (b'quantity="10"', 'quantity="١٠"'.encode(), "quantity", "١٠"),
        (b'lineNumber="1"', 'lineNumber="²"'.encode(), "lineNumber", "²"),
        (
            b'<Money currency="USD">1300.00</Money>',
            b'<Money currency="XXY">1300.00</Money>',
            "Total/Money@currency",
            "XXY",
        ),
        (
            b'<PaymentTerm payInNumberOfDays="30"/>',
            b'<PaymentTerm payInNumberOfDays="-5"/>',
            "PaymentTerm@payInNumberOfDays",
            "-5",
        ),
        (
            b'<Extrinsic name="TermStart">2024-01-01',
            b'<Extrinsic name="TermStart">soon',
            "Extrinsic name=TermStart",
            "soon",
        ),
    ],
)
def test_each_bad_field_is_named_and_keeps_the_po_out(old: bytes, new: bytes, field: str, value: str) -> None:
    data = new_order()
    assert old in data
    doc = parse(data.replace(old, new, 1))
    assert doc.po is None
    assert (field, value) in {(p.field, p.value) for p in doc.problems}


def test_missing_line_numbers_follow_the_item_order() -> None:
    data = new_order().replace(b' lineNumber="1"', b"").replace(b' lineNumber="2"', b"")
    po = parse(data).po
    assert po is not None and [line.line_no for line in po.lines] == [1, 2]


def test_item_service_periods_give_line_periods_and_the_term_when_no_extrinsic_does() -> None:
    data = (
        new_order()
        .replace(b'<Extrinsic name="TermStart">2024-01-01</Extrinsic>', b"")
        .replace(b'<Extrinsic name="TermEnd">2024-12-31</Extrinsic>', b"")
        .replace(
            b'<Classification domain="UNSPSC">43232300</Classification>',
            b'<Classification domain="UNSPSC">43232300</Classification>'
            b'<Period startDate="2024-02-01T00:00:00+00:00" endDate="2025-01-31T00:00:00+00:00"/>',
        )
    )
    po = parse(data).po
    assert po is not None
    assert (po.lines[0].service_start, po.lines[0].service_end) == (date(2024, 2, 1), date(2025, 1, 31))
    assert (po.term_start, po.term_end) == (date(2024, 2, 1), date(2025, 1, 31))


def test_early_payment_discount_is_kept_beside_the_net_days() -> None:
    data = new_order().replace(
        b'<PaymentTerm payInNumberOfDays="30"/>',
        b'<PaymentTerm payInNumberOfDays="10">'
        b'<Discount><DiscountPercent percent="2"/></Discount></PaymentTerm>'
        b'<PaymentTerm payInNumberOfDays="45"/>',
    )
    po = parse(data).po
    assert po is not None and po.payment_terms is not None
    terms = po.payment_terms
    assert (terms.code, terms.net_days, terms.discount_percent, terms.discount_days) == (
        "NET45",
        45,
        Decimal("2"),
        10,
    )


def test_a_document_that_is_not_an_order_request_raises_input_error() -> None:
    with pytest.raises(InputError, match="not an OrderRequest"):
        parse(shared_fixture("cxml/response_status_200.xml").read_bytes(), "response.xml")


def test_a_document_that_is_not_cxml_raises_input_error() -> None:
    with pytest.raises(InputError, match="not a cXML document"):
        parse(b"<Order/>")


@pytest.mark.parametrize(
    ("code", "text"),
    [(200, "OK"), (400, "Bad Request"), (401, "Unauthorized"), (500, "Internal Server Error")],
)
def test_response_is_valid_cxml_with_doctype_payload_id_and_timestamp(code: int, text: str) -> None:
    body = render_response("resp-1@test", code, text, detail="why & <how>")
    assert f'<!DOCTYPE cXML SYSTEM "{CXML_DTD_URL}">'.encode() in body
    root = etree.fromstring(body, safe_parser())
    dtd = cxml_dtd()
    assert dtd.validate(root), dtd.error_log
    assert root.get("payloadID") == "resp-1@test"
    assert datetime.fromisoformat(root.get("timestamp", "")).tzinfo is not None
    status = root.find("Response/Status")
    assert status is not None
    assert (status.get("code"), status.get("text"), status.text) == (str(code), text, "why & <how>")


def test_responses_without_a_payload_id_get_a_fresh_unique_one() -> None:
    first = etree.fromstring(render_response(None, 200, "OK"), safe_parser()).get("payloadID")
    second = etree.fromstring(render_response(None, 200, "OK"), safe_parser()).get("payloadID")
    assert first and second and first != second


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(
        [b'quantity="10"', b'lineNumber="1"', b'orderVersion="1"', b'payInNumberOfDays="30"']
    ),
    value=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
def test_any_attribute_value_gives_a_po_or_named_problems_never_a_crash(field: bytes, value: str) -> None:
    name = field.split(b"=")[0]
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").encode()
    doc = parse(new_order().replace(field, name + b'="' + escaped + b'"', 1))
    assert (doc.po is None) == bool(doc.problems)
    for problem in doc.problems:
        assert problem.document == "order.xml" and problem.field


def test_duplicate_line_numbers_keep_the_po_out() -> None:
    doc = parse(new_order().replace(b'lineNumber="2"', b'lineNumber="1"'))
    assert doc.po is None
    assert any("duplicate line numbers" in p.reason for p in doc.problems)


def test_a_utf16_document_is_stored_with_its_shared_secret_masked() -> None:
    from adapters.cxml_order import stored_text

    text = (
        '<?xml version="1.0" encoding="UTF-16"?><cXML><Sender><Credential domain="d"><Identity>i</Identity>'
    )
    text += "<SharedSecret>coyote-secret</SharedSecret></Credential></Sender></cXML>"
    for data in (text.encode("utf-16"), text.replace("UTF-16", "UTF-8").encode("utf-8")):
        stored = stored_text(data)
        assert "coyote-secret" not in stored and "<SharedSecret>" in stored
