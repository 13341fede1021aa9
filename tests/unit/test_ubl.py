"""UBL 2.1 Invoice rendering: schema-valid documents with the plan's numbers, and reading totals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from lxml import etree

from adapters.ubl import (
    CAC_NS,
    CBC_NS,
    SupplierParty,
    read_total,
    render_invoice,
    unit_code,
)
from connector.errors import InputError
from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms
from tests.support.shared import shared_fixture

NS = {"cac": CAC_NS, "cbc": CBC_NS, "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"}
SUPPLIER = SupplierParty(
    name="Vendor GmbH",
    company_id="DE123456789",
    street="Hauptstr. 1",
    city="Berlin",
    postal_code="10115",
    country="DE",
    email="billing@vendor.example",
)


def make_line(line_no: int = 1, currency: str = "USD", **overrides: Any) -> InvoiceLine:
    values: dict[str, Any] = {
        "line_no": line_no,
        "po_line_no": line_no,
        "sku": f"SKU-{line_no}",
        "description": f"Seat licence {line_no}",
        "quantity": Decimal("10"),
        "unit_of_measure": "EA",
        "unit_price": Money.of("12.50", currency),
    }
    values.update(overrides)
    return InvoiceLine(**values)


def make_plan(currency: str = "USD", **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": "k" * 64,
        "invoice_number": "INV-2024-0001",
        "sink": "files",
        "customer_ref": "CUST-42",
        "customer_name": "Acme Corp",
        "po_number": "PO-7781",
        "po_key": "default/coupa/7781",
        "po_revision": 1,
        "billing_key": "default/billing/sub-1/2024-01-01",
        "currency": currency,
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "payment_terms": PaymentTerms(code="NET30", net_days=30),
        "bill_to": Address(
            name="Acme Corp AP",
            lines=("1 Main St", "Floor 4"),
            city="Springfield",
            region="IL",
            postal_code="62701",
            country="US",
            email="ap@acme.example",
        ),
        "ship_to": Address(name="Acme Warehouse", lines=("9 Dock Rd",), city="Springfield"),
        "lines": (make_line(1, currency), make_line(2, currency, unit_of_measure="MON")),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "memo": "January subscription",
    }
    values.update(overrides)
    return InvoicePlan(**values)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"))))


def assert_valid(document: bytes) -> etree._Element:
    schema = _schema()
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    return root


def text(root: etree._Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"{path} missing"
    return found.text or ""


def test_full_invoice_validates_against_ubl_21_schema() -> None:
    root = assert_valid(render_invoice(make_plan(), SUPPLIER))
    assert text(root, "cbc:UBLVersionID") == "2.1"
    assert text(root, "cbc:ID") == "INV-2024-0001"
    assert text(root, "cbc:InvoiceTypeCode") == "380"
    assert text(root, "cbc:IssueDate") == "2024-02-01"
    assert text(root, "cbc:Note") == "January subscription"
    assert text(root, "cbc:DocumentCurrencyCode") == "USD"
    assert text(root, "cac:InvoicePeriod/cbc:StartDate") == "2024-01-01"
    assert text(root, "cac:InvoicePeriod/cbc:EndDate") == "2024-01-31"


def test_invoice_carries_po_number_in_order_reference() -> None:
    root = assert_valid(render_invoice(make_plan(po_number="4500012345"), SUPPLIER))
    assert text(root, "cac:OrderReference/cbc:ID") == "4500012345"


def test_due_date_and_payment_terms_come_from_the_plan() -> None:
    root = assert_valid(render_invoice(make_plan(due_date=date(2024, 4, 15)), SUPPLIER))
    assert text(root, "cbc:DueDate") == "2024-04-15"
    note = text(root, "cac:PaymentTerms/cbc:Note")
    assert "NET30" in note
    assert "30 days" in note


def test_parties_come_from_supplier_and_bill_to() -> None:
    root = assert_valid(render_invoice(make_plan(), SUPPLIER))
    supplier = "cac:AccountingSupplierParty/cac:Party/"
    assert text(root, supplier + "cac:PartyName/cbc:Name") == "Vendor GmbH"
    assert text(root, supplier + "cac:PostalAddress/cac:Country/cbc:IdentificationCode") == "DE"
    customer = "cac:AccountingCustomerParty/cac:Party/"
    assert text(root, customer + "cac:PartyIdentification/cbc:ID") == "CUST-42"
    assert text(root, customer + "cac:PartyName/cbc:Name") == "Acme Corp AP"
    assert text(root, customer + "cac:PostalAddress/cbc:CityName") == "Springfield"
    assert text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:StreetName") == "9 Dock Rd"


def test_customer_name_falls_back_to_customer_ref_without_bill_to() -> None:
    root = assert_valid(render_invoice(make_plan(bill_to=None, customer_name=""), SUPPLIER))
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name") == "CUST-42"


def test_invoice_without_optional_parts_is_still_valid() -> None:
    plan = make_plan(
        payment_terms=None,
        bill_to=None,
        ship_to=None,
        memo="",
        customer_name="",
        lines=(make_line(1, po_line_no=None, description="", unit_of_measure="", supplier_part_id=""),),
    )
    root = assert_valid(render_invoice(plan, SupplierParty()))
    assert root.find("cac:PaymentTerms", NS) is None
    assert root.find("cac:Delivery", NS) is None
    assert root.find("cbc:Note", NS) is None
    assert root.find("cac:InvoiceLine/cac:OrderLineReference", NS) is None
    assert text(root, "cac:InvoiceLine/cac:Item/cbc:Name") == "SKU-1"


def test_lines_carry_quantity_unit_po_line_item_and_price() -> None:
    line = make_line(
        3,
        po_line_no=7,
        supplier_part_id="BUYER-PART-9",
        quantity=Decimal("2.5"),
        unit_of_measure="ea",
        service_start=date(2024, 1, 1),
        service_end=date(2024, 1, 31),
    )
    root = assert_valid(render_invoice(make_plan(lines=(line,)), SUPPLIER))
    element = root.find("cac:InvoiceLine", NS)
    assert element is not None
    assert text(element, "cbc:ID") == "3"
    quantity = element.find("cbc:InvoicedQuantity", NS)
    assert quantity is not None
    assert (quantity.text, quantity.get("unitCode")) == ("2.5", "C62")
    assert text(element, "cbc:LineExtensionAmount") == "31.25"
    assert text(element, "cac:OrderLineReference/cbc:LineID") == "7"
    assert text(element, "cac:InvoicePeriod/cbc:StartDate") == "2024-01-01"
    assert text(element, "cac:Item/cac:SellersItemIdentification/cbc:ID") == "SKU-3"
    assert text(element, "cac:Item/cac:BuyersItemIdentification/cbc:ID") == "BUYER-PART-9"
    assert text(element, "cac:Price/cbc:PriceAmount") == "12.50"


def test_one_invoice_line_per_plan_line() -> None:
    root = assert_valid(render_invoice(make_plan(), SUPPLIER))
    assert [e.text for e in root.findall("cac:InvoiceLine/cbc:ID", NS)] == ["1", "2"]


@pytest.mark.parametrize(("unit", "code"), [("EA", "C62"), ("MON", "MON"), ("hur", "HUR"), (" day ", "DAY")])
def test_unit_of_measure_maps_to_unece_code(unit: str, code: str) -> None:
    assert unit_code(unit) == code


def test_jpy_amounts_have_no_decimals() -> None:
    line = make_line(1, "JPY", quantity=Decimal("3"), unit_price=Money.of("1500", "JPY"))
    root = assert_valid(render_invoice(make_plan("JPY", lines=(line,)), SUPPLIER))
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
    assert payable is not None
    assert (payable.text, payable.get("currencyID")) == ("4500", "JPY")
    assert text(root, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == "1500"


def test_kwd_amounts_have_three_decimals() -> None:
    line = make_line(1, "KWD", quantity=Decimal("2"), unit_price=Money.of("10.125", "KWD"))
    root = assert_valid(render_invoice(make_plan("KWD", lines=(line,)), SUPPLIER))
    for tag in ("LineExtensionAmount", "TaxExclusiveAmount", "PayableAmount"):
        element = root.find(f"cac:LegalMonetaryTotal/cbc:{tag}", NS)
        assert element is not None
        assert (element.text, element.get("currencyID")) == ("20.250", "KWD")


def test_unit_price_finer_than_minor_unit_is_not_rounded() -> None:
    line = make_line(1, quantity=Decimal("1000"), unit_price=Money.of("0.0125", "USD"))
    root = assert_valid(render_invoice(make_plan(lines=(line,)), SUPPLIER))
    assert text(root, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == "0.0125"
    assert text(root, "cac:InvoiceLine/cbc:LineExtensionAmount") == "12.50"


def test_read_total_returns_payable_amount_of_rendered_invoice() -> None:
    plan = make_plan()
    assert read_total(render_invoice(plan, SUPPLIER)) == Money.of("250.00", "USD")
    assert plan.total == Money.of("250.00", "USD")


def test_read_total_reads_the_oasis_example_invoice() -> None:
    example = shared_fixture("ubl-2.1/UBL-Invoice-2.1-Example.xml").read_bytes()
    total = read_total(example)
    assert total.currency == "EUR"
    assert total.amount > 0


def test_read_total_does_not_expand_entities() -> None:
    document = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY big "999999">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
<cac:LegalMonetaryTotal><cbc:PayableAmount currencyID="USD">&big;</cbc:PayableAmount>
</cac:LegalMonetaryTotal></Invoice>"""
    with pytest.raises(InputError):
        read_total(document)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (b"<Invoice", "document"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>", "Payable"),
        (
            b"<i:Invoice xmlns:i='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'"
            b" xmlns:cac='" + CAC_NS.encode() + b"' xmlns:cbc='" + CBC_NS.encode() + b"'>"
            b"<cac:LegalMonetaryTotal><cbc:PayableAmount currencyID='XXX'>1.00"
            b"</cbc:PayableAmount></cac:LegalMonetaryTotal></i:Invoice>",
            "currencyID",
        ),
        (
            b"<i:Invoice xmlns:i='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'"
            b" xmlns:cac='" + CAC_NS.encode() + b"' xmlns:cbc='" + CBC_NS.encode() + b"'>"
            b"<cac:LegalMonetaryTotal><cbc:PayableAmount currencyID='USD'>NaN"
            b"</cbc:PayableAmount></cac:LegalMonetaryTotal></i:Invoice>",
            "PayableAmount",
        ),
    ],
)
def test_read_total_names_what_is_wrong(document: bytes, field: str) -> None:
    with pytest.raises(InputError) as caught:
        read_total(document, document="out/INV-1.xml")
    assert field in caught.value.problem.field
    assert caught.value.problem.document == "out/INV-1.xml"


def test_text_xml_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError):
        render_invoice(make_plan(memo="bell \x07"), SUPPLIER)
