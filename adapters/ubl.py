"""Render an invoice plan as a Peppol BIS Billing 3.0 UBL Invoice, and read its totals back.

Pure functions: no files, no network. The document follows EN 16931 in its Peppol BIS Billing
3.0 syntax (CustomizationID and ProfileID below, element order of the UBL 2.1 schemas); which
business rules it meets is checked by `adapters.einvoice_rules`, not here. Amounts are at the
currency's minor unit (JPY none); the tax is the plan's breakdown, one TaxSubtotal per category
and rate, so its tax amounts are the ones the plan's totals carry.

Tax the renderer does not invent: a plan without tax on its lines is refused (`NotAnEinvoice`,
code `tax_unknown`), and the parties' tax ids are printed as the customer master and the
`[supplier]` config state them, so a rule they break (an AE buyer without a VAT id, an O
invoice with a VAT id) is reported by the rules rather than hidden.

US sales tax: EN 16931 knows VAT only (its TaxScheme is always VAT and the categories are
UNCL5305's), and no rule lets a breakdown name another tax or a jurisdiction. A sales-tax line
is therefore rendered in VAT category S at its rate (E or O as stated when it is exempt), the
one category whose rules (BR-S-*) fit a charged tax at a positive rate, and the jurisdictions and
rates are stated in the document note (BT-22; Peppol allows one, R002), so a reader sees which
tax was charged: the breakdown cannot carry them, as BR-S-10 forbids an exemption reason on S. The
seller then needs a VAT id or a tax registration id (BR-S-02): a US vendor's EIN as
`tax_registration_id` (BT-32) does. Groups are merged by category and rate only, as BR-S-08
sums lines by rate: two jurisdictions at one rate are one BG-23.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree
from pydantic import ValidationError

from connector.errors import InputError, InputProblem
from connector.model import Address, InvoiceLine, InvoicePlan, Money, Party, PaymentTerms
from connector.tax import LineTax, TaxCategory, TaxScheme

# format_amount and format_price are re-exported: the NetSuite sink imports them from here.
from connector.values import format_amount as format_amount
from connector.values import format_percent
from connector.values import format_price as format_price

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_NSMAP = {None: INVOICE_NS, "cac": CAC_NS, "cbc": CBC_NS}

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
CREDIT_TRANSFER = "30"  # UNCL4461

# UN/ECE Recommendation 20 codes for the units our POs use most; others pass through.
_UNIT_CODES = {"EA": "C62", "MON": "MON", "": "C62"}
_ALPHA2 = re.compile(r"^[A-Za-z]{2}$")


class NotAnEinvoice(ValueError):
    """The plan cannot make a valid e-invoice at all: `code` says why (e.g. `tax_unknown`)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class InvoiceTotals:
    """What a written invoice states it is worth: PayableAmount and the TaxTotal's TaxAmount."""

    total: Money
    tax: Money | None


@dataclass(frozen=True)
class _Group:
    category: TaxCategory
    rate: Decimal | None
    reason_code: str
    reason: str
    taxable: Decimal
    tax: Decimal


def unit_code(unit_of_measure: str) -> str:
    """The UN/ECE Rec 20 unit code for a PO unit of measure (EA -> C62, none -> C62 'one')."""
    unit = unit_of_measure.strip().upper()
    return _UNIT_CODES.get(unit, unit)


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
    if len(lines) > 2:
        # Peppol carries one address line (BT-162/BT-165); the rest of the street joins it.
        _cbc(_cac(element, "AddressLine"), "Line", ", ".join(lines[2:]))
    _country(element, address.country)


def _endpoint(party: etree._Element, who: Party | None) -> None:
    if who is not None and who.endpoint_id:
        _cbc(party, "EndpointID", who.endpoint_id, schemeID=who.endpoint_scheme)


def _tax_scheme(party: etree._Element, company_id: str, scheme: str) -> None:
    if company_id:
        element = _cac(party, "PartyTaxScheme")
        _cbc(element, "CompanyID", company_id)
        _cbc(_cac(element, "TaxScheme"), "ID", scheme)


def _legal_entity(party: etree._Element, name: str, registration_id: str) -> None:
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", name)
    if registration_id:
        _cbc(legal, "CompanyID", registration_id)


def _contact(party: etree._Element, name: str, telephone: str, email: str) -> None:
    if name or telephone or email:
        contact = _cac(party, "Contact")
        if name:
            _cbc(contact, "Name", name)
        if telephone:
            _cbc(contact, "Telephone", telephone)
        if email:
            _cbc(contact, "ElectronicMail", email)


def _supplier(root: etree._Element, supplier: Party) -> None:
    party = _cac(_cac(root, "AccountingSupplierParty"), "Party")
    _endpoint(party, supplier)
    _cbc(_cac(party, "PartyName"), "Name", supplier.legal_name)
    if supplier.address is not None:
        _address(party, "PostalAddress", supplier.address)
    _tax_scheme(party, supplier.vat_id, "VAT")
    _tax_scheme(party, supplier.tax_registration_id, "TAX")
    _legal_entity(party, supplier.legal_name, supplier.legal_registration_id)
    _contact(party, supplier.contact_name, supplier.contact_telephone, supplier.contact_email)


def customer_address(plan: InvoicePlan) -> Address | None:
    """The buyer's postal address: the PO's bill-to where there is one, its country from the master."""
    master = plan.buyer.address if plan.buyer is not None else None
    bill_to = plan.bill_to
    if bill_to is None:
        return master
    if not bill_to.country.strip() and master is not None and master.country:
        return bill_to.model_copy(update={"country": master.country})
    return bill_to


def customer_name(plan: InvoicePlan) -> str:
    """The buyer's legal name from the master, else the plan's customer name, else its reference."""
    if plan.buyer is not None and plan.buyer.legal_name:
        return plan.buyer.legal_name
    return plan.customer_name or plan.customer_ref


def _customer(root: etree._Element, plan: InvoicePlan) -> None:
    buyer = plan.buyer
    party = _cac(_cac(root, "AccountingCustomerParty"), "Party")
    _endpoint(party, buyer)
    _cbc(_cac(party, "PartyIdentification"), "ID", plan.customer_ref)
    name = customer_name(plan)
    _cbc(_cac(party, "PartyName"), "Name", name)
    address = customer_address(plan)
    if address is not None:
        _address(party, "PostalAddress", address)
    if buyer is not None:
        _tax_scheme(party, buyer.vat_id, "VAT")
    _legal_entity(party, name, buyer.legal_registration_id if buyer is not None else "")
    email = (buyer.contact_email if buyer is not None else "") or (plan.bill_to.email if plan.bill_to else "")
    _contact(party, "", "", email)


def _delivery(root: etree._Element, ship_to: Address) -> None:
    # A deliver-to address needs its country (BR-57); without one only the name is stated.
    if not ship_to.country.strip() and not ship_to.name:
        return
    delivery = _cac(root, "Delivery")
    if ship_to.country.strip():
        _address(_cac(delivery, "DeliveryLocation"), "Address", ship_to)
    if ship_to.name:
        _cbc(_cac(_cac(delivery, "DeliveryParty"), "PartyName"), "Name", ship_to.name)


def _payment_means(root: etree._Element, plan: InvoicePlan, supplier: Party) -> None:
    # A credit transfer must name the account (BR-61): without one, no payment means is stated.
    if not supplier.payment_account_id:
        return
    means = _cac(root, "PaymentMeans")
    _cbc(means, "PaymentMeansCode", CREDIT_TRANSFER, name="Credit transfer")
    _cbc(means, "PaymentID", plan.invoice_number)
    account = _cac(means, "PayeeFinancialAccount")
    _cbc(account, "ID", supplier.payment_account_id)
    if supplier.payment_account_name:
        _cbc(account, "Name", supplier.payment_account_name)
    if supplier.payment_bank_id:
        _cbc(_cac(account, "FinancialInstitutionBranch"), "ID", supplier.payment_bank_id)


def _payment_terms(root: etree._Element, terms: PaymentTerms, due: date) -> None:
    note = f"{terms.code}: net {terms.net_days} days, due {due.isoformat()}"
    if terms.discount_percent is not None and terms.discount_days is not None:
        note += f"; {terms.discount_percent:f}% discount if paid within {terms.discount_days} days"
    _cbc(_cac(root, "PaymentTerms"), "Note", note)


def _groups(plan: InvoicePlan) -> list[_Group]:
    """The plan's breakdown by category and rate only (sales-tax jurisdictions merged)."""
    merged: dict[tuple[str, Decimal | None], _Group] = {}
    for group in plan.tax_breakdown:
        rate = None if group.category is TaxCategory.OUTSIDE_SCOPE else (group.rate or Decimal(0)).normalize()
        key = (group.category.value, rate)
        seen = merged.get(key)
        if seen is None:
            merged[key] = _Group(
                group.category,
                rate,
                group.exemption_reason_code,
                group.exemption_reason,
                group.taxable_amount,
                group.tax_amount,
            )
        else:
            merged[key] = _Group(
                seen.category,
                rate,
                seen.reason_code or group.exemption_reason_code,
                seen.reason or group.exemption_reason,
                seen.taxable + group.taxable_amount,
                seen.tax + group.tax_amount,
            )
    return list(merged.values())


def _tax_category(
    parent: etree._Element, tag: str, category: TaxCategory, rate: Decimal | None
) -> etree._Element:
    element = _cac(parent, tag)
    _cbc(element, "ID", category.value)
    if category is not TaxCategory.OUTSIDE_SCOPE:
        _cbc(element, "Percent", format_percent(rate or Decimal(0)))
    return element


def _tax_total(root: etree._Element, plan: InvoicePlan) -> None:
    currency = plan.currency
    total = _cac(root, "TaxTotal")
    _amount(total, "TaxAmount", plan.tax_total)
    for group in _groups(plan):
        subtotal = _cac(total, "TaxSubtotal")
        _amount(subtotal, "TaxableAmount", Money(amount=group.taxable, currency=currency))
        _amount(subtotal, "TaxAmount", Money(amount=group.tax, currency=currency))
        category = _tax_category(subtotal, "TaxCategory", group.category, group.rate)
        if group.reason_code:
            _cbc(category, "TaxExemptionReasonCode", group.reason_code)
        if group.reason:
            _cbc(category, "TaxExemptionReason", group.reason)
        _cbc(_cac(category, "TaxScheme"), "ID", "VAT")


def _note(plan: InvoicePlan) -> str:
    """The document note (Peppol allows one): the memo, then the sales-tax jurisdictions."""
    parts = [plan.memo.strip()] if plan.memo.strip() else []
    sales = sorted(
        {
            (line.tax.jurisdiction, line.tax.rate)
            for line in plan.lines
            if line.tax is not None and line.tax.scheme is TaxScheme.SALES_TAX
        },
        key=lambda item: (item[0], item[1] or Decimal(0)),
    )
    if sales:
        shown = ", ".join(
            f"{where or 'no jurisdiction'} {format_percent(rate or Decimal(0))}%" for where, rate in sales
        )
        parts.append(f"US sales tax (stated as VAT category S at its rate): {shown}")
    return "; ".join(parts)


def _line(root: etree._Element, line: InvoiceLine, tax: LineTax) -> None:
    element = _cac(root, "InvoiceLine")
    _cbc(element, "ID", str(line.line_no))
    _cbc(element, "InvoicedQuantity", f"{line.quantity:f}", unitCode=unit_code(line.unit_of_measure))
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
    rate = None if tax.category is TaxCategory.OUTSIDE_SCOPE else tax.percent
    category = _tax_category(item, "ClassifiedTaxCategory", tax.category, rate)
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")
    price = _cac(element, "Price")
    _cbc(price, "PriceAmount", format_price(line.unit_price), currencyID=line.unit_price.currency)


def render_invoice(plan: InvoicePlan, supplier: Party) -> bytes:
    """The plan as a Peppol BIS Billing 3.0 UBL Invoice (UTF-8 bytes with an XML declaration).

    Raises NotAnEinvoice (`tax_unknown`) for a plan without tax, and ValueError when a text
    field holds characters XML cannot carry.
    """
    if not plan.is_taxed:
        raise NotAnEinvoice(
            "tax_unknown",
            "the plan carries no tax on its lines; an EN 16931 invoice needs the tax category and "
            "rate of every line",
        )
    root = etree.Element(f"{{{INVOICE_NS}}}Invoice", nsmap=_NSMAP)
    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", PROFILE_ID)
    _cbc(root, "ID", plan.invoice_number)
    _cbc(root, "IssueDate", plan.issue_date.isoformat())
    _cbc(root, "DueDate", plan.due_date.isoformat())
    _cbc(root, "InvoiceTypeCode", "380")
    note = _note(plan)
    if note:
        _cbc(root, "Note", note)
    _cbc(root, "DocumentCurrencyCode", plan.currency)
    if plan.buyer is not None and plan.buyer.buyer_reference:
        _cbc(root, "BuyerReference", plan.buyer.buyer_reference)
    _period(root, "InvoicePeriod", plan.period_start, plan.period_end)
    if plan.po_number:  # an invoice made without a PO names none (BuyerReference routes it)
        _cbc(_cac(root, "OrderReference"), "ID", plan.po_number)
    _supplier(root, supplier)
    _customer(root, plan)
    if plan.ship_to is not None:
        _delivery(root, plan.ship_to)
    _payment_means(root, plan, supplier)
    if plan.payment_terms is not None:
        _payment_terms(root, plan.payment_terms, plan.due_date)
    _tax_total(root, plan)
    totals = _cac(root, "LegalMonetaryTotal")
    _amount(totals, "LineExtensionAmount", plan.net_total)
    _amount(totals, "TaxExclusiveAmount", plan.net_total)
    _amount(totals, "TaxInclusiveAmount", plan.total)
    _amount(totals, "PayableAmount", plan.total)
    for line in plan.lines:
        if line.tax is not None:  # every line has it: is_taxed above
            _line(root, line, line.tax)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def read_total(xml: bytes, *, document: str = "") -> Money:
    """The PayableAmount of a UBL Invoice with its currencyID, for read-after-write checks.

    Raises InputError naming the document and what is wrong when the total cannot be read.
    """
    return read_totals(xml, document=document).total


def read_totals(xml: bytes, *, document: str = "") -> InvoiceTotals:
    """The PayableAmount (gross) and the TaxTotal's TaxAmount of a UBL Invoice.

    The tax is None for a document without a TaxTotal (files written before tax was carried).
    Raises InputError naming the document and what is wrong when an amount cannot be read.
    """

    def problem(field: str, value: str, reason: str) -> InputError:
        return InputError(InputProblem("ubl", document, "", field, value, reason))

    try:
        root = etree.fromstring(xml, _safe_parser())
    except etree.XMLSyntaxError as exc:
        raise problem("document", "", f"not well-formed XML: {exc}") from exc

    def money(element: etree._Element, name: str) -> Money:
        text = (element.text or "").strip()
        currency = element.get("currencyID", "")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise problem(name, text, "not a decimal amount") from exc
        if not amount.is_finite():
            raise problem(name, text, "not a finite amount")
        try:
            return Money(amount=amount, currency=currency)
        except ValidationError as exc:
            raise problem(f"{name}/@currencyID", currency, "unknown ISO 4217 code") from exc

    payable = root.find(f"{{{CAC_NS}}}LegalMonetaryTotal/{{{CBC_NS}}}PayableAmount")
    if payable is None:
        raise problem("LegalMonetaryTotal/PayableAmount", "", "element is missing")
    total = money(payable, "PayableAmount")
    tax_amount = root.find(f"{{{CAC_NS}}}TaxTotal/{{{CBC_NS}}}TaxAmount")
    tax = None if tax_amount is None else money(tax_amount, "TaxTotal/TaxAmount")
    return InvoiceTotals(total=total, tax=tax)
