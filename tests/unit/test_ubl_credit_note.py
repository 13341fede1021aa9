"""UBL CreditNote (type 381): schema-valid, passes the EN 16931 and Peppol rules, names its invoice."""

from __future__ import annotations

from datetime import date
from functools import cache

import pytest
from lxml import etree

from adapters.ubl import CAC_NS, CBC_NS, read_totals, render_invoice
from connector.model import Money
from connector.planning import credit_note_number, plan_credit_note
from tests.support.einvoice import assert_passes_rules, rule_failures
from tests.support.factories import make_buyer, make_seller, make_taxed_plan, sales_tax, vat
from tests.support.shared import shared_fixture

CN = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS = {"cac": CAC_NS, "cbc": CBC_NS, "cn": CN}
SUPPLIER = make_seller()


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"))))


def _credit(**plan_options: object) -> tuple[bytes, etree._Element]:
    invoice = make_taxed_plan(1, **plan_options)  # type: ignore[arg-type]
    credit = plan_credit_note(invoice, reason="seats cancelled", issue_date=date(2026, 12, 7))
    document = render_invoice(credit, SUPPLIER)
    root = etree.fromstring(document)
    assert _schema().validate(root), _schema().error_log
    return document, root


def _text(root: etree._Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, f"{path} missing"
    return found.text or ""


def test_credit_note_is_a_381_credit_note_naming_the_invoice_it_credits() -> None:
    invoice = make_taxed_plan(1)
    document, root = _credit()
    assert root.tag == f"{{{CN}}}CreditNote"
    assert _text(root, "cbc:CreditNoteTypeCode") == "381"
    assert _text(root, "cbc:ID") == credit_note_number("default", invoice.invoice_number)
    assert _text(root, "cbc:IssueDate") == "2026-12-07"
    assert _text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == invoice.invoice_number
    assert _text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:IssueDate") == "2026-11-01"
    assert _text(root, "cac:OrderReference/cbc:ID") == invoice.po_number
    assert root.find("cbc:DueDate", NS) is None
    assert root.findall("cac:InvoiceLine", NS) == []
    lines = root.findall("cac:CreditNoteLine", NS)
    assert len(lines) == len(invoice.lines)
    assert _text(lines[0], "cbc:CreditedQuantity") == "2"
    assert_passes_rules(document)


def test_credit_note_amounts_keep_their_sign_and_equal_the_invoice() -> None:
    invoice = make_taxed_plan(1, taxes=(vat("19"), vat("7")))
    document, _ = _credit(taxes=(vat("19"), vat("7")))
    totals = read_totals(document)
    assert totals.total == invoice.total and totals.total.amount > 0
    assert totals.tax == invoice.tax_total
    assert_passes_rules(document)


def test_reverse_charge_credit_note_passes_the_rules() -> None:
    buyer = make_buyer("FR")
    reverse = vat("0", "AE", exemption_reason_code="VATEX-EU-AE", exemption_reason="Reverse charge")
    document, _ = _credit(taxes=(reverse,), buyer=buyer)
    assert_passes_rules(document)


def test_us_sales_tax_credit_note_passes_the_rules() -> None:
    seller_us = make_seller("US", vat_id="", tax_registration_id="12-3456789")
    invoice = make_taxed_plan(1, taxes=(sales_tax("8.875", "US-NY"),), currency="USD", buyer=make_buyer("US"))
    credit = plan_credit_note(invoice, reason="wrong seat count", issue_date=date(2026, 12, 7))
    document = render_invoice(credit, seller_us)
    assert _schema().validate(etree.fromstring(document)), _schema().error_log
    assert_passes_rules(document)
    assert read_totals(document).total == Money.of(str(invoice.total.amount), "USD")


def test_breaking_the_billing_reference_is_caught_by_the_rules() -> None:
    """The rule test can fail: an empty BillingReference ID breaks BR-55 / R008."""
    _document, root = _credit()
    reference = root.find("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", NS)
    assert reference is not None
    reference.text = ""
    broken = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    fatal = [failure.rule_id for failure in rule_failures(broken) if failure.fatal]
    assert fatal, "an empty invoice reference must break a rule"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_credit_note_needs_a_reason(reason: str) -> None:
    with pytest.raises(ValueError):
        plan_credit_note(make_taxed_plan(1), reason=reason.strip(), issue_date=date(2026, 12, 7))
