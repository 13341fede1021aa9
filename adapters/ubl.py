"""Render an invoice plan as a Peppol BIS Billing 3.0 UBL Invoice (a credit note as a UBL
CreditNote), and read its totals back.

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

The parties (seller, buyer, delivery, payment means) are written by `adapters.ubl_parties`, with
the element builders of `adapters.ubl_xml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree
from pydantic import ValidationError

from adapters.ubl_parties import customer_party, delivery, payment_means, supplier_party
from adapters.ubl_xml import (
    CAC_NS,
    CBC_NS,
    CREDIT_NOTE_NS,
    CREDIT_NOTE_NSMAP,
    INVOICE_NS,
    NSMAP,
    amount,
    cac,
    cbc,
    period,
)
from connector.errors import InputError, InputProblem
from connector.model import InvoiceLine, InvoicePlan, Money, Party, PaymentTerms
from connector.tax import LineTax, TaxCategory, TaxScheme
from connector.values import format_amount, format_percent, format_price

__all__ = [
    "CAC_NS",  # the namespaces and the amount writer are re-exported for this module's importers
    "CBC_NS",
    "CUSTOMIZATION_ID",
    "PROFILE_ID",
    "InvoiceTotals",
    "NotAnEinvoice",
    "format_amount",
    "format_price",
    "read_total",
    "read_totals",
    "render_invoice",
    "unit_code",
]

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

# UN/ECE Recommendation 20 codes for the units our POs use most; others pass through.
_UNIT_CODES = {"EA": "C62", "MON": "MON", "": "C62"}


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


def _payment_terms(root: etree._Element, terms: PaymentTerms, due: date) -> None:
    note = f"{terms.code}: net {terms.net_days} days, due {due.isoformat()}"
    if terms.discount_percent is not None and terms.discount_days is not None:
        note += f"; {terms.discount_percent:f}% discount if paid within {terms.discount_days} days"
    cbc(cac(root, "PaymentTerms"), "Note", note)


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
    element = cac(parent, tag)
    cbc(element, "ID", category.value)
    if category is not TaxCategory.OUTSIDE_SCOPE:
        cbc(element, "Percent", format_percent(rate or Decimal(0)))
    return element


def _tax_total(root: etree._Element, plan: InvoicePlan) -> None:
    currency = plan.currency
    total = cac(root, "TaxTotal")
    amount(total, "TaxAmount", plan.tax_total)
    for group in _groups(plan):
        subtotal = cac(total, "TaxSubtotal")
        amount(subtotal, "TaxableAmount", Money(amount=group.taxable, currency=currency))
        amount(subtotal, "TaxAmount", Money(amount=group.tax, currency=currency))
        category = _tax_category(subtotal, "TaxCategory", group.category, group.rate)
        if group.reason_code:
            cbc(category, "TaxExemptionReasonCode", group.reason_code)
        if group.reason:
            cbc(category, "TaxExemptionReason", group.reason)
        cbc(cac(category, "TaxScheme"), "ID", "VAT")


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


def _line(root: etree._Element, line: InvoiceLine, tax: LineTax, *, credit: bool) -> None:
    element = cac(root, "CreditNoteLine" if credit else "InvoiceLine")
    cbc(element, "ID", str(line.line_no))
    quantity = "CreditedQuantity" if credit else "InvoicedQuantity"
    cbc(element, quantity, f"{line.quantity:f}", unitCode=unit_code(line.unit_of_measure))
    amount(element, "LineExtensionAmount", line.amount)
    if line.service_start is not None or line.service_end is not None:
        period(element, "InvoicePeriod", line.service_start, line.service_end)
    if line.po_line_no is not None:
        cbc(cac(element, "OrderLineReference"), "LineID", str(line.po_line_no))
    item = cac(element, "Item")
    if line.description:
        cbc(item, "Description", line.description)
    cbc(item, "Name", line.description or line.sku)
    if line.supplier_part_id:
        cbc(cac(item, "BuyersItemIdentification"), "ID", line.supplier_part_id)
    cbc(cac(item, "SellersItemIdentification"), "ID", line.sku)
    rate = None if tax.category is TaxCategory.OUTSIDE_SCOPE else tax.percent
    category = _tax_category(item, "ClassifiedTaxCategory", tax.category, rate)
    cbc(cac(category, "TaxScheme"), "ID", "VAT")
    price = cac(element, "Price")
    cbc(price, "PriceAmount", format_price(line.unit_price), currencyID=line.unit_price.currency)


def render_invoice(plan: InvoicePlan, supplier: Party) -> bytes:
    """The plan as a Peppol BIS Billing 3.0 UBL Invoice, or CreditNote for a credit note (UTF-8
    bytes with an XML declaration).

    A credit note (type 381) keeps the invoice's amounts and signs, names the invoice it credits
    in BillingReference (BT-25, BT-26), states no due date (nothing is due to the seller) and
    says in its payment terms how the credit is settled (BR-CO-25).

    Raises NotAnEinvoice (`tax_unknown`) for a plan without tax, and ValueError when a text
    field holds characters XML cannot carry.
    """
    if not plan.is_taxed:
        raise NotAnEinvoice(
            "tax_unknown",
            "the plan carries no tax on its lines; an EN 16931 invoice needs the tax category and "
            "rate of every line",
        )
    credit = plan.credits if plan.is_credit_note else None
    if credit is None:
        root = etree.Element(f"{{{INVOICE_NS}}}Invoice", nsmap=NSMAP)
    else:
        root = etree.Element(f"{{{CREDIT_NOTE_NS}}}CreditNote", nsmap=CREDIT_NOTE_NSMAP)
    cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    cbc(root, "ProfileID", PROFILE_ID)
    cbc(root, "ID", plan.invoice_number)
    cbc(root, "IssueDate", plan.issue_date.isoformat())
    if credit is None:
        cbc(root, "DueDate", plan.due_date.isoformat())
        cbc(root, "InvoiceTypeCode", "380")
    else:
        cbc(root, "CreditNoteTypeCode", "381")
    note = _note(plan)
    if note:
        cbc(root, "Note", note)
    cbc(root, "DocumentCurrencyCode", plan.currency)
    if plan.buyer is not None and plan.buyer.buyer_reference:
        cbc(root, "BuyerReference", plan.buyer.buyer_reference)
    period(root, "InvoicePeriod", plan.period_start, plan.period_end)
    if plan.po_number:  # an invoice made without a PO names none (BuyerReference routes it)
        cbc(cac(root, "OrderReference"), "ID", plan.po_number)
    if credit is not None:
        invoice = cac(cac(root, "BillingReference"), "InvoiceDocumentReference")
        cbc(invoice, "ID", credit.invoice_number)
        cbc(invoice, "IssueDate", credit.issue_date.isoformat())
    supplier_party(root, supplier)
    customer_party(root, plan)
    if plan.ship_to is not None:
        delivery(root, plan.ship_to)
    payment_means(root, plan, supplier)  # a credit note states them too (German rules: DE-R-001)
    if credit is None:
        if plan.payment_terms is not None:
            _payment_terms(root, plan.payment_terms, plan.due_date)
    else:
        settled = f"Credit for invoice {credit.invoice_number}: offset against open invoices or refunded"
        cbc(cac(root, "PaymentTerms"), "Note", settled)
    _tax_total(root, plan)
    totals = cac(root, "LegalMonetaryTotal")
    amount(totals, "LineExtensionAmount", plan.net_total)
    amount(totals, "TaxExclusiveAmount", plan.net_total)
    amount(totals, "TaxInclusiveAmount", plan.total)
    amount(totals, "PayableAmount", plan.total)
    for line in plan.lines:
        if line.tax is not None:  # every line has it: is_taxed above
            _line(root, line, line.tax, credit=credit is not None)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def read_total(xml: bytes, *, document: str = "") -> Money:
    """The PayableAmount of a UBL Invoice or CreditNote with its currencyID, for read-after-write checks.

    Raises InputError naming the document and what is wrong when the total cannot be read.
    """
    return read_totals(xml, document=document).total


def read_totals(xml: bytes, *, document: str = "") -> InvoiceTotals:
    """The PayableAmount (gross) and the TaxTotal's TaxAmount of a UBL Invoice or CreditNote.

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
