"""The cXML InvoiceDetailRequest document: a plan (an invoice, or a credit note as a creditMemo)
rendered with its tax, valid against the cXML InvoiceDetail DTD. The Tax elements are
`adapters.cxml_invoice_tax`; reading the buyer's answer and an archived document back is
`adapters.cxml_invoice_answers`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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
from adapters.cxml_invoice_tax import (
    describe_tax,
    exemption_text,
    line_tax,
    plan_line_taxes,
    summary_tax,
    tax_location,
)
from adapters.cxml_invoice_xml import CREDIT, DEBIT, datetime_of, lang, money, price, sub
from connector.model import Address, InvoiceLine, InvoicePlan, Money, Party

__all__ = [
    "DOCTYPE",
    "ArchivedInvoice",  # the answer readers and tax writers are re-exported for this module's importers
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


def _quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _credential(parent: etree._Element, domain: str, identity: str) -> etree._Element:
    credential = sub(parent, "Credential", domain=domain)
    sub(credential, "Identity", identity)
    return credential


def _postal(contact: etree._Element, address: Address) -> None:
    if address.lines and address.city and address.country:
        postal = sub(contact, "PostalAddress")
        for street in address.lines:
            sub(postal, "Street", street)
        sub(postal, "City", address.city)
        if address.region:
            sub(postal, "State", address.region)
        if address.postal_code:
            sub(postal, "PostalCode", address.postal_code)
        sub(postal, "Country", address.country, isoCountryCode=address.country)


def _bill_to(header: etree._Element, plan: InvoicePlan, language: str) -> None:
    address: Address = plan.bill_to or Address()
    contact = sub(sub(header, "InvoicePartner"), "Contact", role="billTo")
    lang(contact, "Name", address.name or plan.customer_name or plan.customer_ref, language)
    _postal(contact, address)
    if address.email:
        sub(contact, "Email", address.email)


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
    partner = sub(header, "InvoicePartner")
    contact = sub(partner, "Contact", role="remitTo")
    lang(contact, "Name", seller.legal_name, language)
    if seller.address is not None:
        _postal(contact, seller.address)
    if seller.contact_email:
        sub(contact, "Email", seller.contact_email)
    prefix, number = split_vat_id(seller.vat_id, seller.country)
    if prefix:
        sub(partner, "IdReference", identifier=prefix, domain="taxPrefix")
    sub(partner, "IdReference", identifier=number, domain="taxNumber")


def _item(order: etree._Element, line: InvoiceLine, language: str, tax: Money | None, sign: Decimal) -> None:
    item = sub(
        order, "InvoiceDetailItem", invoiceLineNumber=str(line.line_no), quantity=_quantity(line.quantity)
    )
    sub(item, "UnitOfMeasure", line.unit_of_measure)  # echoed exactly as the PO had it
    price(item, "UnitPrice", line.unit_price)
    # Coupa accepts a blank PO line number and matches the line by part number and unit.
    reference = sub(
        item,
        "InvoiceDetailItemReference",
        lineNumber=str(line.po_line_no) if line.po_line_no is not None else "",
    )
    sub(sub(reference, "ItemID"), "SupplierPartID", line.supplier_part_id or line.sku)
    if line.description:
        lang(reference, "Description", line.description, language)
    money(item, "SubtotalAmount", line.amount, sign=sign)
    if tax is not None and line.tax is not None:
        line_tax(item, line, line.tax, tax, language, sign=sign)
    if line.service_start is not None:
        sub(item, "Extrinsic", line.service_start.isoformat(), name="serviceStartDate")
    if line.service_end is not None:
        sub(item, "Extrinsic", line.service_end.isoformat(), name="serviceEndDate")


def _header(request: etree._Element, plan: InvoicePlan, language: str, seller: Party | None) -> None:
    """The InvoiceDetailRequestHeader; a credit memo's names the invoice it credits."""
    head = sub(
        request,
        "InvoiceDetailRequestHeader",
        invoiceID=plan.invoice_number,
        purpose="creditMemo" if plan.is_credit_note else "standard",
        operation="new",
        invoiceDate=datetime_of(plan.issue_date),
    )
    # A credit memo with item lines, as Coupa takes one (not the DTD's header-only creditMemo).
    sub(head, "InvoiceDetailHeaderIndicator")
    if plan.is_taxed:
        sub(head, "InvoiceDetailLineIndicator", isTaxInLine="yes")
    else:
        sub(head, "InvoiceDetailLineIndicator")
    _bill_to(head, plan, language)
    if seller is not None and seller.vat_id.strip():
        _remit_to(head, seller, language)
    credits = plan.credits
    if credits is not None:
        # The credited invoice: the payloadID of its document (what this sink reported as its
        # id) and its number and date. The DTD asks that both name the same invoice.
        if credits.remote_id.strip():
            sub(head, "DocumentReference", payloadID=credits.remote_id.strip())
        sub(
            head,
            "InvoiceIDInfo",
            invoiceID=credits.invoice_number,
            invoiceDate=datetime_of(credits.issue_date),
        )
    elif plan.payment_terms is not None:  # nothing is to be paid on a credit
        sub(head, "PaymentTerm", payInNumberOfDays=str(plan.payment_terms.net_days))
    sub(head, "Period", startDate=datetime_of(plan.period_start), endDate=datetime_of(plan.period_end))
    if plan.memo:
        lang(head, "Comments", plan.memo, language)


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
    A credit note is a `creditMemo` naming the invoice it credits (InvoiceIDInfo), with the
    invoice's quantities and unit prices and every amount negative, as cXML signs credits.
    """
    root = etree.Element(
        "cXML",
        payloadID=payload_id(plan),
        timestamp=timestamp.astimezone(UTC).isoformat(timespec="seconds"),
        version=CXML_VERSION,
    )
    root.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    header = sub(root, "Header")
    _credential(sub(header, "From"), credentials.from_domain, credentials.from_identity)
    _credential(sub(header, "To"), credentials.to_domain, credentials.to_identity)
    sender = sub(header, "Sender")
    sender_credential = _credential(sender, credentials.sender_domain, credentials.sender_identity)
    sub(sender_credential, "SharedSecret", credentials.shared_secret)
    sub(sender, "UserAgent", credentials.user_agent)

    request = sub(sub(root, "Request", deploymentMode=deployment_mode), "InvoiceDetailRequest")
    _header(request, plan, language, seller)
    sign = CREDIT if plan.is_credit_note else DEBIT
    order = sub(request, "InvoiceDetailOrder")
    # Coupa's own samples carry the PO number as the DocumentReference payloadID as well.
    reference = sub(sub(order, "InvoiceDetailOrderInfo"), "OrderReference", orderID=plan.po_number)
    sub(reference, "DocumentReference", payloadID=plan.po_number)
    shares = plan_line_taxes(plan) if plan.is_taxed else {}
    for line in plan.lines:
        _item(order, line, language, shares.get(line.line_no), sign)

    # SubtotalAmount is net; NetAmount (subtotal + tax, nothing else charged) and DueAmount gross.
    total = plan.total.quantized()
    summary = sub(request, "InvoiceDetailSummary")
    money(summary, "SubtotalAmount", plan.net_total, sign=sign)
    summary_tax(summary, plan, language, sign=sign)
    money(summary, "NetAmount", total, sign=sign)
    money(summary, "DueAmount", total, sign=sign)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=DOCTYPE)
    return body
