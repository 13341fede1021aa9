"""Peppol BIS Billing 3.0 rendering: schema-valid documents that pass the EN 16931 and Peppol rules."""

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
    CUSTOMIZATION_ID,
    PROFILE_ID,
    NotAnEinvoice,
    format_amount,
    read_total,
    read_totals,
    render_invoice,
    unit_code,
)
from connector.errors import InputError
from connector.model import Address, InvoiceLine, InvoicePlan, Money, Party, PaymentTerms
from connector.tax import LineTax, TaxCategory, TaxScheme
from tests.support.einvoice import assert_passes_rules, rule_failures
from tests.support.factories import make_buyer, make_seller, vat
from tests.support.shared import shared_fixture

NS = {"cac": CAC_NS, "cbc": CBC_NS, "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"}
SUPPLIER = make_seller()
S19 = vat("19")
REVERSE_CHARGE = vat("0", "AE", exemption_reason_code="VATEX-EU-AE", exemption_reason="Reverse charge")
EXEMPT = vat("0", "E", exemption_reason_code="VATEX-EU-132-1I", exemption_reason="Exempt: education")
OUTSIDE = vat("", "O", exemption_reason_code="VATEX-EU-O", exemption_reason="Not subject to VAT")


def sales_tax(rate: str, jurisdiction: str) -> LineTax:
    return LineTax(
        scheme=TaxScheme.SALES_TAX,
        category=TaxCategory.STANDARD,
        rate=Decimal(rate),
        jurisdiction=jurisdiction,
    )


def make_line(line_no: int = 1, currency: str = "EUR", **overrides: Any) -> InvoiceLine:
    values: dict[str, Any] = {
        "line_no": line_no,
        "po_line_no": line_no,
        "sku": f"SKU-{line_no}",
        "description": f"Seat licence {line_no}",
        "quantity": Decimal("10"),
        "unit_of_measure": "EA",
        "unit_price": Money.of("12.50", currency),
        "service_start": date(2024, 1, 1),
        "service_end": date(2024, 1, 31),
        "tax": S19,
    }
    values.update(overrides)
    return InvoiceLine(**values)


def make_plan(currency: str = "EUR", **overrides: Any) -> InvoicePlan:
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
            city="Hamburg",
            postal_code="20095",
            country="DE",
            email="ap@acme.example",
        ),
        "ship_to": Address(
            name="Acme Warehouse", lines=("9 Dock Rd",), city="Hamburg", postal_code="20457", country="DE"
        ),
        "lines": (make_line(1, currency), make_line(2, currency, unit_of_measure="MON")),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "memo": "January subscription",
        "buyer": make_buyer("DE", legal_name="Acme Corp GmbH"),
    }
    values.update(overrides)
    return InvoicePlan(**values)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"))))


def assert_valid(document: bytes) -> etree._Element:
    """Valid against the UBL 2.1 schema and without a fatal EN 16931 / Peppol rule failure."""
    schema = _schema()
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    assert_passes_rules(document)
    return root


def render(plan: InvoicePlan, supplier: Party = SUPPLIER) -> etree._Element:
    return assert_valid(render_invoice(plan, supplier))


def text(root: etree._Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"{path} missing"
    return found.text or ""


def texts(root: etree._Element, path: str) -> list[str]:
    return [element.text or "" for element in root.findall(path, NS)]


def test_full_invoice_is_a_peppol_bis_billing_3_invoice() -> None:
    root = render(make_plan())
    assert text(root, "cbc:CustomizationID") == CUSTOMIZATION_ID
    assert text(root, "cbc:ProfileID") == PROFILE_ID
    assert text(root, "cbc:ID") == "INV-2024-0001"
    assert text(root, "cbc:InvoiceTypeCode") == "380"
    assert text(root, "cbc:IssueDate") == "2024-02-01"
    assert text(root, "cbc:Note") == "January subscription"
    assert text(root, "cbc:DocumentCurrencyCode") == "EUR"
    assert text(root, "cbc:BuyerReference") == "ACME-AP-7"
    assert text(root, "cac:InvoicePeriod/cbc:StartDate") == "2024-01-01"
    assert text(root, "cac:InvoicePeriod/cbc:EndDate") == "2024-01-31"


def test_invoice_carries_po_number_in_order_reference() -> None:
    root = render(make_plan(po_number="4500012345"))
    assert text(root, "cac:OrderReference/cbc:ID") == "4500012345"


def test_without_buyer_reference_the_po_number_is_the_reference() -> None:
    # Between German parties the buyer reference is required (DE-R-015); elsewhere the PO will do.
    root = render(make_plan(buyer=make_buyer("FR", buyer_reference=""), bill_to=None, ship_to=None))
    assert root.find("cbc:BuyerReference", NS) is None
    assert text(root, "cac:OrderReference/cbc:ID") == "PO-7781"


def test_due_date_and_payment_terms_come_from_the_plan() -> None:
    root = render(make_plan(due_date=date(2024, 4, 15)))
    assert text(root, "cbc:DueDate") == "2024-04-15"
    note = text(root, "cac:PaymentTerms/cbc:Note")
    assert "NET30" in note
    assert "30 days" in note


def test_supplier_party_carries_endpoint_tax_ids_legal_entity_and_contact() -> None:
    supplier = make_seller(tax_registration_id="27/123/45678")
    root = render(make_plan(), supplier)
    party = root.find("cac:AccountingSupplierParty/cac:Party", NS)
    assert party is not None
    endpoint = party.find("cbc:EndpointID", NS)
    assert endpoint is not None
    assert (endpoint.text, endpoint.get("schemeID")) == ("DE123456789", "9930")
    assert text(party, "cac:PartyName/cbc:Name") == "Cloudlytics GmbH"
    assert text(party, "cac:PostalAddress/cac:Country/cbc:IdentificationCode") == "DE"
    schemes = {
        text(scheme, "cac:TaxScheme/cbc:ID"): text(scheme, "cbc:CompanyID")
        for scheme in party.findall("cac:PartyTaxScheme", NS)
    }
    assert schemes == {"VAT": "DE123456789", "TAX": "27/123/45678"}
    assert text(party, "cac:PartyLegalEntity/cbc:RegistrationName") == "Cloudlytics GmbH"
    assert text(party, "cac:PartyLegalEntity/cbc:CompanyID") == "HRB 12345"
    assert text(party, "cac:Contact/cbc:Name") == "Accounts receivable"
    assert text(party, "cac:Contact/cbc:Telephone") == "+49 30 1234567"
    assert text(party, "cac:Contact/cbc:ElectronicMail") == "billing@cloudlytics.example"


def test_customer_is_the_buyer_master_with_the_po_bill_to_address() -> None:
    root = render(make_plan())
    customer = "cac:AccountingCustomerParty/cac:Party/"
    endpoint = root.find(customer + "cbc:EndpointID", NS)
    assert endpoint is not None
    assert (endpoint.text, endpoint.get("schemeID")) == ("DE987654321", "9930")
    assert text(root, customer + "cac:PartyIdentification/cbc:ID") == "CUST-42"
    assert text(root, customer + "cac:PartyName/cbc:Name") == "Acme Corp GmbH"
    assert text(root, customer + "cac:PartyLegalEntity/cbc:RegistrationName") == "Acme Corp GmbH"
    assert text(root, customer + "cac:PartyTaxScheme/cbc:CompanyID") == "DE987654321"
    assert text(root, customer + "cac:PostalAddress/cbc:StreetName") == "1 Main St"
    assert text(root, customer + "cac:PostalAddress/cbc:AdditionalStreetName") == "Floor 4"
    assert text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:StreetName") == "9 Dock Rd"


def test_bill_to_without_country_takes_the_buyer_master_country() -> None:
    bill_to = Address(name="Acme AP", lines=("Kai 3",), city="Hamburg", postal_code="20457")
    root = render(make_plan(bill_to=bill_to))
    address = "cac:AccountingCustomerParty/cac:Party/cac:PostalAddress/"
    assert text(root, address + "cbc:StreetName") == "Kai 3"
    assert text(root, address + "cac:Country/cbc:IdentificationCode") == "DE"


def test_without_bill_to_the_buyer_master_address_is_used() -> None:
    root = render(make_plan(bill_to=None))
    address = "cac:AccountingCustomerParty/cac:Party/cac:PostalAddress/"
    assert text(root, address + "cbc:StreetName") == "1 Main St"
    assert text(root, address + "cbc:CityName") == "Hamburg"


def test_customer_name_falls_back_to_the_plan_without_a_master_name() -> None:
    root = etree.fromstring(render_invoice(make_plan(buyer=None), SUPPLIER))
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name") == "Acme Corp"
    root = etree.fromstring(render_invoice(make_plan(buyer=None, customer_name=""), SUPPLIER))
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name") == "CUST-42"


def test_payment_means_is_a_credit_transfer_to_the_supplier_account() -> None:
    root = render(make_plan())
    assert text(root, "cac:PaymentMeans/cbc:PaymentMeansCode") == "30"
    assert text(root, "cac:PaymentMeans/cbc:PaymentID") == "INV-2024-0001"
    account = "cac:PaymentMeans/cac:PayeeFinancialAccount/"
    assert text(root, account + "cbc:ID") == "DE89370400440532013000"
    assert text(root, account + "cbc:Name") == "Cloudlytics GmbH"
    assert text(root, account + "cac:FinancialInstitutionBranch/cbc:ID") == "COBADEFFXXX"


def test_no_payment_means_without_a_supplier_account() -> None:
    # Between German parties payment instructions are required (DE-R-001); elsewhere they may go.
    plan = make_plan(buyer=make_buyer("FR"), bill_to=None, ship_to=None)
    root = render(plan, make_seller(payment_account_id="", payment_account_name="", payment_bank_id=""))
    assert root.find("cac:PaymentMeans", NS) is None


def test_one_tax_total_with_the_plans_tax_and_totals() -> None:
    root = render(make_plan())
    assert len(root.findall("cac:TaxTotal", NS)) == 1
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "47.50"
    subtotal = "cac:TaxTotal/cac:TaxSubtotal/"
    assert text(root, subtotal + "cbc:TaxableAmount") == "250.00"
    assert text(root, subtotal + "cbc:TaxAmount") == "47.50"
    assert text(root, subtotal + "cac:TaxCategory/cbc:ID") == "S"
    assert text(root, subtotal + "cac:TaxCategory/cbc:Percent") == "19"
    assert text(root, subtotal + "cac:TaxCategory/cac:TaxScheme/cbc:ID") == "VAT"
    totals = "cac:LegalMonetaryTotal/cbc:"
    assert text(root, totals + "LineExtensionAmount") == "250.00"
    assert text(root, totals + "TaxExclusiveAmount") == "250.00"
    assert text(root, totals + "TaxInclusiveAmount") == "297.50"
    assert text(root, totals + "PayableAmount") == "297.50"


def test_standard_rate_20_in_sterling() -> None:
    lines = (make_line(1, "GBP", tax=vat("20")),)
    root = render(make_plan("GBP", lines=lines, buyer=make_buyer("GB"), bill_to=None, ship_to=None))
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent") == "20"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "25.00"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "150.00"


def test_reverse_charge_states_the_exemption_and_both_vat_ids() -> None:
    plan = make_plan(
        lines=(make_line(1, tax=REVERSE_CHARGE),), buyer=make_buyer("FR"), bill_to=None, ship_to=None
    )
    root = render(plan)
    category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/"
    assert text(root, category + "cbc:ID") == "AE"
    assert text(root, category + "cbc:Percent") == "0"
    assert text(root, category + "cbc:TaxExemptionReasonCode") == "VATEX-EU-AE"
    assert text(root, category + "cbc:TaxExemptionReason") == "Reverse charge"
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "0.00"
    assert (
        text(root, "cac:AccountingCustomerParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID")
        == "FR23334175221"
    )
    assert text(root, "cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory/cbc:ID") == "AE"


def test_exempt_states_its_reason() -> None:
    root = render(make_plan(lines=(make_line(1, tax=EXEMPT),)))
    category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/"
    assert text(root, category + "cbc:ID") == "E"
    assert text(root, category + "cbc:TaxExemptionReasonCode") == "VATEX-EU-132-1I"


def test_zero_rated_has_no_reason_and_no_tax() -> None:
    root = render(make_plan(lines=(make_line(1, tax=vat("0", "Z")),)))
    category = root.find("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory", NS)
    assert category is not None
    assert (text(category, "cbc:ID"), text(category, "cbc:Percent")) == ("Z", "0")
    assert category.find("cbc:TaxExemptionReasonCode", NS) is None
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "125.00"


def test_outside_scope_has_no_percent_and_passes_without_vat_ids() -> None:
    plan = make_plan(
        "USD",
        lines=(make_line(1, "USD", tax=OUTSIDE),),
        buyer=make_buyer("US"),
        bill_to=None,
        ship_to=None,
    )
    root = render(plan, make_seller("US"))
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "O"
    assert root.find("cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:Percent", NS) is None
    assert root.find("cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", NS) is None
    assert root.xpath("//cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']", namespaces=NS) == []


def test_mixed_rates_make_one_subtotal_each() -> None:
    lines = (
        make_line(1, tax=S19),
        make_line(2, tax=vat("7"), unit_price=Money.of("9.99", "EUR"), quantity=Decimal("3")),
        make_line(3, tax=vat("19.00")),
        make_line(4, tax=vat("0", "Z")),
    )
    root = render(make_plan(lines=lines))
    groups = {
        (text(s, "cac:TaxCategory/cbc:ID"), text(s, "cac:TaxCategory/cbc:Percent")): (
            text(s, "cbc:TaxableAmount"),
            text(s, "cbc:TaxAmount"),
        )
        for s in root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    }
    assert groups == {
        ("S", "19"): ("250.00", "47.50"),
        ("S", "7"): ("29.97", "2.10"),
        ("Z", "0"): ("125.00", "0.00"),
    }
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "49.60"
    assert text(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "454.57"


def test_jpy_amounts_have_no_decimals() -> None:
    line = make_line(1, "JPY", quantity=Decimal("3"), unit_price=Money.of("1500", "JPY"), tax=vat("10"))
    root = render(make_plan("JPY", lines=(line,), buyer=make_buyer("JP"), bill_to=None, ship_to=None))
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
    assert payable is not None
    assert (payable.text, payable.get("currencyID")) == ("4950", "JPY")
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == "450"
    assert text(root, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == "1500"


def test_us_sales_tax_is_category_s_at_its_rate_with_the_jurisdictions_in_the_note() -> None:
    lines = (
        make_line(1, "USD", tax=sales_tax("8.875", "US-NY")),
        make_line(2, "USD", tax=sales_tax("8.875", "US-NY-NYC")),
        make_line(3, "USD", tax=sales_tax("6.25", "US-MA")),
    )
    plan = make_plan("USD", lines=lines, buyer=make_buyer("US"), bill_to=None, ship_to=None, memo="")
    root = render(plan, make_seller("US"))
    groups = {
        text(s, "cac:TaxCategory/cbc:Percent"): (text(s, "cac:TaxCategory/cbc:ID"), text(s, "cbc:TaxAmount"))
        for s in root.findall("cac:TaxTotal/cac:TaxSubtotal", NS)
    }
    assert groups == {"8.875": ("S", "22.18"), "6.25": ("S", "7.81")}
    assert text(root, "cac:TaxTotal/cbc:TaxAmount") == plan.tax_total.amount.to_eng_string() == "29.99"
    note = text(root, "cbc:Note")
    assert "US-NY 8.875%" in note and "US-NY-NYC 8.875%" in note and "US-MA 6.25%" in note
    assert (
        text(root, "cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID") == "12-3456789"
    )


def test_untaxed_plan_is_not_an_einvoice() -> None:
    lines = (make_line(1, tax=None),)
    with pytest.raises(NotAnEinvoice) as caught:
        render_invoice(make_plan(lines=lines), SUPPLIER)
    assert caught.value.code == "tax_unknown"
    assert "no tax" in str(caught.value)


def test_lines_carry_quantity_unit_po_line_item_tax_category_and_price() -> None:
    line = make_line(
        3,
        po_line_no=7,
        supplier_part_id="BUYER-PART-9",
        quantity=Decimal("2.5"),
        unit_of_measure="ea",
    )
    root = render(make_plan(lines=(line,)))
    element = root.find("cac:InvoiceLine", NS)
    assert element is not None
    assert text(element, "cbc:ID") == "3"
    quantity = element.find("cbc:InvoicedQuantity", NS)
    assert quantity is not None
    assert (quantity.text, quantity.get("unitCode")) == ("2.5", "C62")
    assert text(element, "cbc:LineExtensionAmount") == "31.25"
    assert text(element, "cac:OrderLineReference/cbc:LineID") == "7"
    assert text(element, "cac:InvoicePeriod/cbc:StartDate") == "2024-01-01"
    assert text(element, "cac:Item/cbc:Name") == "Seat licence 3"
    assert text(element, "cac:Item/cac:SellersItemIdentification/cbc:ID") == "SKU-3"
    assert text(element, "cac:Item/cac:BuyersItemIdentification/cbc:ID") == "BUYER-PART-9"
    assert text(element, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID") == "S"
    assert text(element, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent") == "19"
    assert text(element, "cac:Item/cac:ClassifiedTaxCategory/cac:TaxScheme/cbc:ID") == "VAT"
    assert text(element, "cac:Price/cbc:PriceAmount") == "12.50"


def test_invoice_without_optional_parts_is_still_valid() -> None:
    plan = make_plan(
        payment_terms=None,
        bill_to=None,
        ship_to=None,
        memo="",
        customer_name="",
        lines=(make_line(1, po_line_no=None, description="", unit_of_measure="", supplier_part_id=""),),
    )
    root = render(plan)
    assert root.find("cac:PaymentTerms", NS) is None
    assert root.find("cac:Delivery", NS) is None
    assert root.find("cbc:Note", NS) is None
    assert root.find("cac:InvoiceLine/cac:OrderLineReference", NS) is None
    assert text(root, "cac:InvoiceLine/cac:Item/cbc:Name") == "SKU-1"
    assert root.find("cac:InvoiceLine/cbc:InvoicedQuantity", NS).get("unitCode") == "C62"  # type: ignore[union-attr]


def test_ship_to_without_country_states_no_delivery_address() -> None:
    root = render(make_plan(ship_to=Address(name="Dock 9", lines=("9 Dock Rd",), city="Hamburg")))
    assert root.find("cac:Delivery/cac:DeliveryLocation", NS) is None
    assert text(root, "cac:Delivery/cac:DeliveryParty/cac:PartyName/cbc:Name") == "Dock 9"


def test_one_invoice_line_per_plan_line() -> None:
    root = render(make_plan())
    assert texts(root, "cac:InvoiceLine/cbc:ID") == ["1", "2"]


@pytest.mark.parametrize(
    ("unit", "code"), [("EA", "C62"), ("MON", "MON"), ("hur", "HUR"), (" day ", "DAY"), ("", "C62")]
)
def test_unit_of_measure_maps_to_unece_code(unit: str, code: str) -> None:
    assert unit_code(unit) == code


def test_kwd_amounts_format_with_three_decimals() -> None:
    assert format_amount(Money.of("20.25", "KWD")) == "20.250"


def test_unit_price_finer_than_minor_unit_is_not_rounded() -> None:
    line = make_line(1, quantity=Decimal("1000"), unit_price=Money.of("0.0125", "EUR"))
    root = render(make_plan(lines=(line,)))
    assert text(root, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == "0.0125"
    assert text(root, "cac:InvoiceLine/cbc:LineExtensionAmount") == "12.50"


def test_read_totals_returns_gross_total_and_tax_of_rendered_invoice() -> None:
    plan = make_plan()
    totals = read_totals(render_invoice(plan, SUPPLIER))
    assert totals.total == plan.total == Money.of("297.50", "EUR")
    assert totals.tax == plan.tax_total == Money.of("47.50", "EUR")
    assert read_total(render_invoice(plan, SUPPLIER)) == plan.total


def test_read_totals_of_a_document_without_tax_total_has_no_tax() -> None:
    document = (
        b"<i:Invoice xmlns:i='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'"
        b" xmlns:cac='" + CAC_NS.encode() + b"' xmlns:cbc='" + CBC_NS.encode() + b"'>"
        b"<cac:LegalMonetaryTotal><cbc:PayableAmount currencyID='USD'>10.00"
        b"</cbc:PayableAmount></cac:LegalMonetaryTotal></i:Invoice>"
    )
    totals = read_totals(document)
    assert (totals.total, totals.tax) == (Money.of("10.00", "USD"), None)


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


INTRA_COMMUNITY = vat(
    "0", "K", exemption_reason_code="VATEX-EU-IC", exemption_reason="Intra-community supply"
)


def test_intra_community_supply_passes_with_the_deliver_to_country() -> None:
    ship_to = Address(name="Acme FR", lines=("2 rue Neuve",), city="Paris", postal_code="75002", country="FR")
    plan = make_plan(
        lines=(make_line(1, tax=INTRA_COMMUNITY),), buyer=make_buyer("FR"), bill_to=None, ship_to=ship_to
    )
    root = render(plan)
    assert (
        text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode") == "VATEX-EU-IC"
    )
    assert (
        text(root, "cac:Delivery/cac:DeliveryLocation/cac:Address/cac:Country/cbc:IdentificationCode") == "FR"
    )


def test_intra_community_supply_without_deliver_to_country_breaks_br_ic_12() -> None:
    plan = make_plan(
        lines=(make_line(1, tax=INTRA_COMMUNITY),), buyer=make_buyer("FR"), bill_to=None, ship_to=None
    )
    ids = {failure.rule_id for failure in rule_failures(render_invoice(plan, SUPPLIER)) if failure.fatal}
    assert ids == {"BR-IC-12"}


def test_export_outside_the_eu() -> None:
    export = vat("0", "G", exemption_reason_code="VATEX-EU-G", exemption_reason="Export outside the EU")
    plan = make_plan(
        "USD", lines=(make_line(1, "USD", tax=export),), buyer=make_buyer("US"), bill_to=None, ship_to=None
    )
    root = render(plan)
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "G"
