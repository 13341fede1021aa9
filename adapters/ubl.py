"""Render an invoice plan as an OASIS UBL 2.1 Invoice document, and read its total back.

Pure functions: no files, no network. The element order follows the UBL 2.1 schemas
(`UBL-Invoice-2.1.xsd`, `UBL-CommonAggregateComponents-2.1.xsd`); amounts are tax-exclusive
and carry no tax, as the connector invoices what a PO already priced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from lxml import etree
from pydantic import ValidationError

from connector.currency import minor_unit
from connector.errors import InputError, InputProblem
from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_NSMAP = {None: INVOICE_NS, "cac": CAC_NS, "cbc": CBC_NS}

# UN/ECE Recommendation 20 codes for the units our POs use most; others pass through.
_UNIT_CODES = {"EA": "C62", "MON": "MON"}
_ALPHA2 = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class SupplierParty:
    """The vendor issuing the invoice, as printed in AccountingSupplierParty."""

    name: str = "Supplier"
    company_id: str = ""
    street: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    email: str = ""


def unit_code(unit_of_measure: str) -> str:
    """The UN/ECE Rec 20 unit code for a PO unit of measure (EA -> C62)."""
    unit = unit_of_measure.strip().upper()
    return _UNIT_CODES.get(unit, unit)


def format_amount(money: Money) -> str:
    """A final amount with exactly the currency's minor-unit digits (JPY 0, USD 2, KWD 3)."""
    quantum = minor_unit(money.currency)
    return f"{money.amount.quantize(quantum, ROUND_HALF_UP):f}"


def format_price(money: Money) -> str:
    """A unit price: at least the currency's digits, more when the price has them (never rounded)."""
    quantum = minor_unit(money.currency)
    quantized = money.amount.quantize(quantum, ROUND_HALF_UP)
    if quantized == money.amount:
        return f"{quantized:f}"
    return f"{money.amount.normalize():f}"


def _cac(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC_NS}}}{tag}")


def _cbc(parent: etree._Element, tag: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC_NS}}}{tag}", attributes)
    element.text = text
    return element


def _amount(parent: etree._Element, tag: str, money: Money) -> None:
    _cbc(parent, tag, format_amount(money), currencyID=money.currency)


def _period(parent: etree._Element, tag: str, start: date | None, end: date | None) -> None:
    period = _cac(parent, tag)
    if start is not None:
        _cbc(period, "StartDate", start.isoformat())
    if end is not None:
        _cbc(period, "EndDate", end.isoformat())


def _country(parent: etree._Element, country: str) -> None:
    country = country.strip()
    if not country:
        return
    element = _cac(parent, "Country")
    if _ALPHA2.match(country):
        _cbc(element, "IdentificationCode", country.upper())
    else:
        _cbc(element, "Name", country)


def _address(parent: etree._Element, tag: str, address: Address) -> None:
    element = _cac(parent, tag)
    lines = [line for line in address.lines if line.strip()]
    if lines:
        _cbc(element, "StreetName", lines[0])
    if len(lines) > 1:
        _cbc(element, "AdditionalStreetName", lines[1])
    if address.city:
        _cbc(element, "CityName", address.city)
    if address.postal_code:
        _cbc(element, "PostalZone", address.postal_code)
    if address.region:
        _cbc(element, "CountrySubentity", address.region)
    for extra in lines[2:]:
        _cbc(_cac(element, "AddressLine"), "Line", extra)
    _country(element, address.country)


def _supplier(root: etree._Element, supplier: SupplierParty) -> None:
    party = _cac(_cac(root, "AccountingSupplierParty"), "Party")
    if supplier.company_id:
        _cbc(_cac(party, "PartyIdentification"), "ID", supplier.company_id)
    _cbc(_cac(party, "PartyName"), "Name", supplier.name)
    address = Address(
        lines=(supplier.street,) if supplier.street else (),
        city=supplier.city,
        postal_code=supplier.postal_code,
        country=supplier.country,
    )
    if address != Address():
        _address(party, "PostalAddress", address)
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", supplier.name)
    if supplier.company_id:
        _cbc(legal, "CompanyID", supplier.company_id)
    if supplier.email:
        _cbc(_cac(party, "Contact"), "ElectronicMail", supplier.email)


def _customer(root: etree._Element, plan: InvoicePlan) -> None:
    party = _cac(_cac(root, "AccountingCustomerParty"), "Party")
    _cbc(_cac(party, "PartyIdentification"), "ID", plan.customer_ref)
    bill_to = plan.bill_to
    name = (bill_to.name if bill_to else "") or plan.customer_name or plan.customer_ref
    _cbc(_cac(party, "PartyName"), "Name", name)
    if bill_to is not None:
        _address(party, "PostalAddress", bill_to)
        if bill_to.email:
            _cbc(_cac(party, "Contact"), "ElectronicMail", bill_to.email)


def _delivery(root: etree._Element, ship_to: Address) -> None:
    delivery = _cac(root, "Delivery")
    _address(_cac(delivery, "DeliveryLocation"), "Address", ship_to)
    if ship_to.name:
        _cbc(_cac(_cac(delivery, "DeliveryParty"), "PartyName"), "Name", ship_to.name)


def _payment_terms(root: etree._Element, terms: PaymentTerms, due: date) -> None:
    element = _cac(root, "PaymentTerms")
    _cbc(element, "ID", terms.code)
    note = f"{terms.code}: net {terms.net_days} days, due {due.isoformat()}"
    if terms.discount_percent is not None and terms.discount_days is not None:
        note += f"; {terms.discount_percent:f}% discount if paid within {terms.discount_days} days"
    _cbc(element, "Note", note)


def _line(root: etree._Element, line: InvoiceLine) -> None:
    element = _cac(root, "InvoiceLine")
    _cbc(element, "ID", str(line.line_no))
    code = unit_code(line.unit_of_measure)
    quantity = f"{line.quantity:f}"
    if code:
        _cbc(element, "InvoicedQuantity", quantity, unitCode=code)
    else:
        _cbc(element, "InvoicedQuantity", quantity)
    _amount(element, "LineExtensionAmount", line.amount)
    if line.service_start is not None or line.service_end is not None:
        _period(element, "InvoicePeriod", line.service_start, line.service_end)
    if line.po_line_no is not None:
        _cbc(_cac(element, "OrderLineReference"), "LineID", str(line.po_line_no))
    item = _cac(element, "Item")
    if line.description:
        _cbc(item, "Description", line.description)
    _cbc(item, "Name", line.description or line.sku)
    if line.supplier_part_id:
        _cbc(_cac(item, "BuyersItemIdentification"), "ID", line.supplier_part_id)
    _cbc(_cac(item, "SellersItemIdentification"), "ID", line.sku)
    price = _cac(element, "Price")
    _cbc(price, "PriceAmount", format_price(line.unit_price), currencyID=line.unit_price.currency)


def render_invoice(plan: InvoicePlan, supplier: SupplierParty) -> bytes:
    """The plan as a UBL 2.1 Invoice document (UTF-8 bytes with an XML declaration).

    Raises ValueError when a text field holds characters XML cannot carry.
    """
    root = etree.Element(f"{{{INVOICE_NS}}}Invoice", nsmap=_NSMAP)
    _cbc(root, "UBLVersionID", "2.1")
    _cbc(root, "ID", plan.invoice_number)
    _cbc(root, "IssueDate", plan.issue_date.isoformat())
    _cbc(root, "DueDate", plan.due_date.isoformat())
    _cbc(root, "InvoiceTypeCode", "380")
    if plan.memo:
        _cbc(root, "Note", plan.memo)
    _cbc(root, "DocumentCurrencyCode", plan.currency)
    _period(root, "InvoicePeriod", plan.period_start, plan.period_end)
    _cbc(_cac(root, "OrderReference"), "ID", plan.po_number)
    _supplier(root, supplier)
    _customer(root, plan)
    if plan.ship_to is not None:
        _delivery(root, plan.ship_to)
    if plan.payment_terms is not None:
        _payment_terms(root, plan.payment_terms, plan.due_date)
    totals = _cac(root, "LegalMonetaryTotal")
    total = plan.total
    _amount(totals, "LineExtensionAmount", total)
    _amount(totals, "TaxExclusiveAmount", total)
    _amount(totals, "PayableAmount", total)
    for line in plan.lines:
        _line(root, line)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def read_total(xml: bytes, *, document: str = "") -> Money:
    """The PayableAmount of a UBL Invoice with its currencyID, for read-after-write checks.

    Raises InputError naming the document and what is wrong when the total cannot be read.
    """

    def problem(field: str, value: str, reason: str) -> InputError:
        return InputError(InputProblem("ubl", document, "", field, value, reason))

    try:
        root = etree.fromstring(xml, _safe_parser())
    except etree.XMLSyntaxError as exc:
        raise problem("document", "", f"not well-formed XML: {exc}") from exc
    path = f"{{{CAC_NS}}}LegalMonetaryTotal/{{{CBC_NS}}}PayableAmount"
    element = root.find(path)
    if element is None:
        raise problem("LegalMonetaryTotal/PayableAmount", "", "element is missing")
    text = (element.text or "").strip()
    currency = element.get("currencyID", "")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise problem("PayableAmount", text, "not a decimal amount") from exc
    if not amount.is_finite():
        raise problem("PayableAmount", text, "not a finite amount")
    try:
        return Money(amount=amount, currency=currency)
    except ValidationError as exc:
        raise problem("PayableAmount/@currencyID", currency, "unknown ISO 4217 code") from exc
