"""The cXML InvoiceDetailRequest document: a plan rendered with its tax, valid against the cXML
InvoiceDetail DTD. Reading the buyer's answer and an archived document back is
`adapters.cxml_invoice_answers`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from lxml import etree

from adapters.cxml_invoice_answers import (
    ArchivedInvoice,
    CxmlStatus,
    is_already_used,
    named_number,
    read_archived,
    read_status,
)
from connector.model import Address, InvoiceLine, InvoicePlan, Money, Party
from connector.tax import ZERO_TAX, LineTax, TaxCategory, TaxScheme, TaxSubtotal, line_tax_amounts
from connector.values import format_amount, format_percent, format_price

__all__ = [
    "DOCTYPE",
    "ArchivedInvoice",  # the answer readers are re-exported for this module's importers
    "Credentials",
    "CxmlStatus",
    "describe_tax",
    "exemption_text",
    "is_already_used",
    "named_number",
    "payload_id",
    "plan_line_taxes",
    "read_archived",
    "read_status",
    "render_invoice_request",
    "split_vat_id",
    "tax_location",
]

CXML_VERSION = "1.2.037"


DOCTYPE = f'<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/InvoiceDetail.dtd">'


@dataclass(frozen=True)
class Credentials:
    """The cXML Header: who sends, to whom, and the secret that proves it."""

    from_domain: str
    from_identity: str
    to_domain: str
    to_identity: str
    sender_domain: str
    sender_identity: str
    shared_secret: str
    user_agent: str = "po-connector 0.1"


def payload_id(plan: InvoicePlan) -> str:
    """The document's payloadID: the same for every send of the plan, as cXML asks of retries."""
    return f"{plan.idempotency_key[:32]}.{plan.invoice_number}@po-connector"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _lang(parent: etree._Element, tag: str, text: str, language: str) -> etree._Element:
    element = _sub(parent, tag, text)
    element.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    return element


def _money(parent: etree._Element, tag: str, money: Money, *, price: bool = False) -> None:
    text = format_price(money) if price else format_amount(money)
    _sub(_sub(parent, tag), "Money", text, currency=money.currency)


def _timestamp(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def _quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _credential(parent: etree._Element, domain: str, identity: str) -> etree._Element:
    credential = _sub(parent, "Credential", domain=domain)
    _sub(credential, "Identity", identity)
    return credential


def _postal(contact: etree._Element, address: Address) -> None:
    if address.lines and address.city and address.country:
        postal = _sub(contact, "PostalAddress")
        for street in address.lines:
            _sub(postal, "Street", street)
        _sub(postal, "City", address.city)
        if address.region:
            _sub(postal, "State", address.region)
        if address.postal_code:
            _sub(postal, "PostalCode", address.postal_code)
        _sub(postal, "Country", address.country, isoCountryCode=address.country)


def _bill_to(header: etree._Element, plan: InvoicePlan, language: str) -> None:
    address: Address = plan.bill_to or Address()
    contact = _sub(_sub(header, "InvoicePartner"), "Contact", role="billTo")
    _lang(contact, "Name", address.name or plan.customer_name or plan.customer_ref, language)
    _postal(contact, address)
    if address.email:
        _sub(contact, "Email", address.email)


def split_vat_id(vat_id: str, country: str = "") -> tuple[str, str]:
    """A VAT id as Coupa's taxPrefix and taxNumber: ("DE", "123456789") for DE123456789.

    The prefix is the id's leading country letters (CHE for Swiss ids, else two letters); an id
    without them takes the seller's country as its prefix.
    """
    text = vat_id.strip()
    upper = text.upper()
    size = 3 if upper.startswith("CHE") else 2 if upper[:2].isalpha() and upper[:2].isascii() else 0
    if size:
        return upper[:size], text[size:].lstrip(" -")
    return country.upper(), text


def _remit_to(header: etree._Element, seller: Party, language: str) -> None:
    """The supplier with its VAT id, as Coupa's compliant invoicing reads it."""
    partner = _sub(header, "InvoicePartner")
    contact = _sub(partner, "Contact", role="remitTo")
    _lang(contact, "Name", seller.legal_name, language)
    if seller.address is not None:
        _postal(contact, seller.address)
    if seller.contact_email:
        _sub(contact, "Email", seller.contact_email)
    prefix, number = split_vat_id(seller.vat_id, seller.country)
    if prefix:
        _sub(partner, "IdReference", identifier=prefix, domain="taxPrefix")
    _sub(partner, "IdReference", identifier=number, domain="taxNumber")


# What a category is called in a Tax Description, and the reason a zero-tax TaxDetail gives
# when the plan states only an exemption code (Coupa wants a Description on exempt and
# reverse-charge details).
_CATEGORY_NAMES = {
    TaxCategory.STANDARD: "standard rate",
    TaxCategory.ZERO_RATED: "zero rated",
    TaxCategory.EXEMPT: "exempt",
    TaxCategory.REVERSE_CHARGE: "reverse charge",
    TaxCategory.INTRA_COMMUNITY: "intra-community supply",
    TaxCategory.EXPORT: "export",
    TaxCategory.OUTSIDE_SCOPE: "outside the scope of tax",
    TaxCategory.CANARY_ISLANDS: "Canary Islands IGIC",
    TaxCategory.CEUTA_MELILLA: "Ceuta and Melilla IPSI",
}


_ZERO_TAX_REASONS = {
    TaxCategory.ZERO_RATED: "Zero rated",
    TaxCategory.EXEMPT: "Exempt from tax",
    TaxCategory.REVERSE_CHARGE: "Reverse charge: the customer accounts for the VAT",
    TaxCategory.INTRA_COMMUNITY: "Intra-community supply, exempt from VAT",
    TaxCategory.EXPORT: "Export outside the EU, exempt from VAT",
    TaxCategory.OUTSIDE_SCOPE: "Not subject to VAT",
}


_EXEMPT_DETAIL = {TaxCategory.ZERO_RATED: "zeroRated", TaxCategory.EXEMPT: "exempt"}


def describe_tax(tax: LineTax | TaxSubtotal) -> str:
    """A Tax Description: "VAT standard rate 19%", "Sales tax US-NY 8.875%", "VAT reverse charge 0%"."""
    words = ["VAT", _CATEGORY_NAMES[tax.category]]
    if tax.scheme is TaxScheme.SALES_TAX:
        # a charged sales tax is named by where it is due; only exemptions say so
        named = "" if tax.category is TaxCategory.STANDARD else _CATEGORY_NAMES[tax.category]
        words = ["Sales tax", tax.jurisdiction, named]
    words.append(f"{format_percent(tax.rate or Decimal(0))}%")
    return " ".join(word for word in words if word)


def exemption_text(tax: LineTax | TaxSubtotal) -> str:
    """The reason a zero-tax detail states: the plan's text, its code in brackets."""
    code = tax.exemption_reason_code.strip()
    text = tax.exemption_reason.strip() or _ZERO_TAX_REASONS.get(tax.category, "")
    if code and code not in text:
        return f"{text} ({code})" if text else code
    return text


def tax_location(jurisdiction: str) -> str:
    """The TaxLocation of a US sales tax: the state (NY for US-NY), else the jurisdiction as given."""
    code = jurisdiction.strip().upper()
    return code[3:] if code.startswith("US-") and len(code) > 3 else code


def _tax_detail(
    parent: etree._Element,
    tax: LineTax | TaxSubtotal,
    taxable: Money,
    amount: Money,
    language: str,
) -> None:
    attributes = {
        "purpose": "tax",
        "category": "sales" if tax.scheme is TaxScheme.SALES_TAX else "vat",
        "percentageRate": format_percent(tax.rate or Decimal(0)),
    }
    if tax.category in _EXEMPT_DETAIL:
        attributes["exemptDetail"] = _EXEMPT_DETAIL[tax.category]
    detail = _sub(parent, "TaxDetail", **attributes)
    _money(detail, "TaxableAmount", taxable)
    _money(detail, "TaxAmount", amount)
    if tax.jurisdiction:
        _lang(detail, "TaxLocation", tax_location(tax.jurisdiction), language)
    if tax.category in ZERO_TAX:
        reason = exemption_text(tax)
        _lang(detail, "Description", reason, language)
        if tax.exemption_reason_code.strip():
            exemption = _sub(detail, "TaxExemption", exemptCode=tax.exemption_reason_code.strip())
            _lang(exemption, "ExemptReason", reason, language)


def _line_tax(item: etree._Element, line: InvoiceLine, tax: LineTax, amount: Money, language: str) -> None:
    element = _sub(item, "Tax")
    _sub(element, "Money", format_amount(amount), currency=amount.currency)
    _lang(element, "Description", describe_tax(tax), language)
    _tax_detail(element, tax, line.amount, amount, language)


def _summary_tax(summary: etree._Element, plan: InvoicePlan, language: str) -> None:
    tax = _sub(summary, "Tax")
    _sub(tax, "Money", format_amount(plan.tax_total), currency=plan.currency)
    groups = plan.tax_breakdown
    if not groups:
        _lang(tax, "Description", "No tax", language)
        return
    _lang(tax, "Description", "; ".join(describe_tax(group) for group in groups), language)
    for group in groups:
        _tax_detail(
            tax,
            group,
            Money(amount=group.taxable_amount, currency=plan.currency),
            Money(amount=group.tax_amount, currency=plan.currency),
            language,
        )


def _item(order: etree._Element, line: InvoiceLine, language: str, tax: Money | None) -> None:
    item = _sub(
        order, "InvoiceDetailItem", invoiceLineNumber=str(line.line_no), quantity=_quantity(line.quantity)
    )
    _sub(item, "UnitOfMeasure", line.unit_of_measure)  # echoed exactly as the PO had it
    _money(item, "UnitPrice", line.unit_price, price=True)
    # Coupa accepts a blank PO line number and matches the line by part number and unit.
    reference = _sub(
        item,
        "InvoiceDetailItemReference",
        lineNumber=str(line.po_line_no) if line.po_line_no is not None else "",
    )
    _sub(_sub(reference, "ItemID"), "SupplierPartID", line.supplier_part_id or line.sku)
    if line.description:
        _lang(reference, "Description", line.description, language)
    _money(item, "SubtotalAmount", line.amount)
    if tax is not None and line.tax is not None:
        _line_tax(item, line, line.tax, tax, language)
    if line.service_start is not None:
        _sub(item, "Extrinsic", line.service_start.isoformat(), name="serviceStartDate")
    if line.service_end is not None:
        _sub(item, "Extrinsic", line.service_end.isoformat(), name="serviceEndDate")


def plan_line_taxes(plan: InvoicePlan) -> dict[int, Money]:
    """Each line's tax by line number, summing to each breakdown group's tax to the minor unit."""
    amounts = line_tax_amounts(
        ((line.line_no, line.amount.amount, line.tax) for line in plan.lines if line.tax is not None),
        plan.tax_breakdown,
        plan.currency,
    )
    return {number: Money(amount=amount, currency=plan.currency) for number, amount in amounts.items()}


def render_invoice_request(
    plan: InvoicePlan,
    credentials: Credentials,
    *,
    timestamp: datetime,
    deployment_mode: str = "production",
    language: str = "en-US",
    seller: Party | None = None,
) -> bytes:
    """The plan as a cXML InvoiceDetailRequest, valid against InvoiceDetail.dtd 1.2.037.

    A taxed plan carries its tax on each line (`isTaxInLine`), each line's share such that the
    lines sum to every breakdown group exactly, and the breakdown in the summary; an untaxed
    plan carries a zero summary Tax ("No tax"). A `seller` with a VAT id is the remitTo partner.
    """
    root = etree.Element(
        "cXML",
        payloadID=payload_id(plan),
        timestamp=timestamp.astimezone(UTC).isoformat(timespec="seconds"),
        version=CXML_VERSION,
    )
    root.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    header = _sub(root, "Header")
    _credential(_sub(header, "From"), credentials.from_domain, credentials.from_identity)
    _credential(_sub(header, "To"), credentials.to_domain, credentials.to_identity)
    sender = _sub(header, "Sender")
    sender_credential = _credential(sender, credentials.sender_domain, credentials.sender_identity)
    _sub(sender_credential, "SharedSecret", credentials.shared_secret)
    _sub(sender, "UserAgent", credentials.user_agent)

    request = _sub(_sub(root, "Request", deploymentMode=deployment_mode), "InvoiceDetailRequest")
    head = _sub(
        request,
        "InvoiceDetailRequestHeader",
        invoiceID=plan.invoice_number,
        purpose="standard",
        operation="new",
        invoiceDate=_timestamp(plan.issue_date),
    )
    _sub(head, "InvoiceDetailHeaderIndicator")
    taxed = plan.is_taxed
    if taxed:
        _sub(head, "InvoiceDetailLineIndicator", isTaxInLine="yes")
    else:
        _sub(head, "InvoiceDetailLineIndicator")
    _bill_to(head, plan, language)
    if seller is not None and seller.vat_id.strip():
        _remit_to(head, seller, language)
    if plan.payment_terms is not None:
        _sub(head, "PaymentTerm", payInNumberOfDays=str(plan.payment_terms.net_days))
    _sub(head, "Period", startDate=_timestamp(plan.period_start), endDate=_timestamp(plan.period_end))
    if plan.memo:
        _lang(head, "Comments", plan.memo, language)

    order = _sub(request, "InvoiceDetailOrder")
    # Coupa's own samples carry the PO number as the DocumentReference payloadID as well.
    reference = _sub(_sub(order, "InvoiceDetailOrderInfo"), "OrderReference", orderID=plan.po_number)
    _sub(reference, "DocumentReference", payloadID=plan.po_number)
    shares = plan_line_taxes(plan) if taxed else {}
    for line in plan.lines:
        _item(order, line, language, shares.get(line.line_no))

    # SubtotalAmount is net; NetAmount (subtotal + tax, nothing else charged) and DueAmount gross.
    total = plan.total.quantized()
    summary = _sub(request, "InvoiceDetailSummary")
    _money(summary, "SubtotalAmount", plan.net_total)
    _summary_tax(summary, plan, language)
    _money(summary, "NetAmount", total)
    _money(summary, "DueAmount", total)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=DOCTYPE)
    return body
