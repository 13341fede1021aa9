"""A buyer's cXML invoice endpoint (Coupa `/cxml/invoices` style) on loopback.

Answers each POSTed InvoiceDetailRequest synchronously with a cXML `Response` whose
`Status@code` follows Coupa's invoice transmission codes: 200 accepted; 401 bad credentials;
406 unparsable or not valid against the DTD (when `dtd_path` is given); 417 "Invalid
attributes" when the invoice number has already been used for this supplier; 417 "Invalid
order/document reference" for a PO it does not know (when `orders` is given); 417 "Invalid
attributes" when the amounts do not add up as Coupa checks them: the lines' SubtotalAmounts
must sum to the summary SubtotalAmount, with line-level tax (`isTaxInLine="yes"`) the lines'
Tax must sum to the summary Tax, and SubtotalAmount + Tax must be the DueAmount, all in the
invoice's currency; 450 for a cXML version other than 1.2.x. The HTTP status mirrors the code
unless `http_status_mirrors_code` is False, in which case every answer is HTTP 200 and only the
cXML Status tells.

Credit memos (`purpose="creditMemo"`): 500 "Unexpected server error" for a creditMemo without
the original invoice (no `InvoiceIDInfo@invoiceID`) or naming an invoice it never received, as
Coupa answers; 417 "Invalid attributes" unless the DueAmount is negative (the DTD's rule) and
every line's quantity and unit price are positive (Coupa's rule for a credit memo); its number
is refused when already used, invoice or credit alike. An accepted credit memo is recorded with
the invoice it credits, and that invoice lists it in `credit_notes`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

from connector.model import utcnow
from tests.sandboxes.base import Reply, Request, Sandbox

INVOICE_PATH = "/cxml/invoices"
SUMMARY = "Request/InvoiceDetailRequest/InvoiceDetailSummary"


class AmountProblem(ValueError):
    """An amount the buyer cannot accept; the text is what it answers."""


def _money(element: etree._Element | None, path: str, currency: str) -> Decimal:
    """The amount of the Money at `path` under `element`; 0 when absent, AmountProblem when bad."""
    money = element.find(path) if element is not None else None
    if money is None:
        return Decimal(0)
    if money.get("currency") != currency:
        raise AmountProblem(f"{path} is in {money.get('currency')!r}, the invoice in {currency!r}")
    try:
        amount = Decimal((money.text or "").strip())
    except InvalidOperation:
        raise AmountProblem(f"{path} {money.text!r} is not an amount") from None
    if not amount.is_finite():
        raise AmountProblem(f"{path} {money.text!r} is not an amount")
    return amount


def check_amounts(root: etree._Element) -> dict[str, Any]:
    """The summary's subtotal, tax and due amount, once the lines and summary agree (Coupa's checks)."""
    summary = root.find(SUMMARY)
    due = summary.find("DueAmount/Money") if summary is not None else None
    if summary is None or due is None:
        raise AmountProblem("the InvoiceDetailSummary has no DueAmount")
    currency = due.get("currency", "")
    subtotal = _money(summary, "SubtotalAmount/Money", currency)
    tax = _money(summary, "Tax/Money", currency)
    due_amount = _money(summary, "DueAmount/Money", currency)
    items = list(root.iterfind(".//InvoiceDetailItem"))
    lines_subtotal = sum((_money(item, "SubtotalAmount/Money", currency) for item in items), Decimal(0))
    if lines_subtotal != subtotal:
        raise AmountProblem(
            f"Line subtotals sum to {lines_subtotal} {currency}, "
            f"the invoice subtotal is {subtotal} {currency}"
        )
    indicator = root.find(
        "Request/InvoiceDetailRequest/InvoiceDetailRequestHeader/InvoiceDetailLineIndicator"
    )
    if indicator is not None and indicator.get("isTaxInLine") == "yes":
        # Lines without a Tax count as zero, as the DTD says of line-level indicators.
        lines_tax = sum((_money(item, "Tax/Money", currency) for item in items), Decimal(0))
        if lines_tax != tax:
            raise AmountProblem(
                f"Line tax amounts sum to {lines_tax} {currency}, the invoice tax is {tax} {currency}"
            )
    if subtotal + tax != due_amount:
        raise AmountProblem(
            f"Subtotal {subtotal} {currency} plus tax {tax} {currency} is {subtotal + tax} {currency}, "
            f"the due amount is {due_amount} {currency}"
        )
    return {"subtotal": subtotal, "tax": tax, "due_amount": due_amount, "currency": currency}


def check_credit(root: etree._Element, amounts: dict[str, Any]) -> None:
    """A creditMemo's signs: a negative DueAmount, positive quantities and unit prices."""
    if amounts["due_amount"] >= 0:
        raise AmountProblem(f"A creditMemo's DueAmount must be negative, not {amounts['due_amount']}")
    for item in root.iterfind(".//InvoiceDetailItem"):
        number = item.get("invoiceLineNumber")
        quantity = Decimal(item.get("quantity", "0"))
        price = _money(item, "UnitPrice/Money", amounts["currency"])
        if quantity <= 0 or price <= 0:
            raise AmountProblem(
                f"Line {number}: a credit memo's quantity and unit price must be positive "
                f"(quantity {quantity}, unit price {price})"
            )


def cxml_response(code: int, text: str, detail: str = "") -> bytes:
    """A cXML Response document with one Status."""
    root = etree.Element(
        "cXML", payloadID=f"{utcnow().timestamp()}.sandbox@buyer.test", timestamp=utcnow().isoformat()
    )
    status = etree.SubElement(etree.SubElement(root, "Response"), "Status", code=str(code), text=text)
    if detail:
        status.text = detail
    doctype = '<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.037/cXML.dtd">'
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=doctype))


class CxmlBuyerSandbox(Sandbox):
    """Accepts InvoiceDetailRequests; `invoices` maps invoiceID -> what the buyer recorded
    (invoices and credit memos alike, as their numbers share one namespace)."""

    def __init__(
        self,
        *,
        shared_secret: str = "buyer-shared-secret",
        supplier_identity: str = "supplier-duns",
        buyer_identity: str = "buyer-network-id",
        dtd_path: Path | None = None,
        orders: dict[str, set[int]] | None = None,
        http_status_mirrors_code: bool = True,
    ) -> None:
        super().__init__()
        self.shared_secret = shared_secret
        self.supplier_identity = supplier_identity
        self.buyer_identity = buyer_identity
        self.dtd = etree.DTD(str(dtd_path)) if dtd_path else None
        self.orders = orders
        self.http_status_mirrors_code = http_status_mirrors_code
        self.invoices: dict[str, dict[str, Any]] = {}

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != INVOICE_PATH:
            return self._answer(404, "Not Found", f"no endpoint {request.method} {request.path}")
        parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
        try:
            root = etree.fromstring(request.body, parser)
        except etree.XMLSyntaxError as exc:
            return self._answer(406, "Not Acceptable", f"unparsable document: {exc}")
        if self.dtd is not None and not self.dtd.validate(root):
            errors = "; ".join(str(e) for e in self.dtd.error_log.filter_from_errors()[:3])
            return self._answer(406, "Not Acceptable", f"DTD validation failed: {errors}")
        if not root.get("version", "").startswith("1.2."):
            return self._answer(
                450, "Not Implemented", f"cXML version {root.get('version')!r} is not supported"
            )
        secret = root.findtext("Header/Sender/Credential/SharedSecret")
        supplier = root.findtext("Header/From/Credential/Identity")
        buyer = root.findtext("Header/To/Credential/Identity")
        if secret != self.shared_secret or supplier != self.supplier_identity or buyer != self.buyer_identity:
            return self._answer(401, "Unauthorized", "Authentication failed: bad credentials")
        head = root.find("Request/InvoiceDetailRequest/InvoiceDetailRequestHeader")
        if head is None:
            return self._answer(406, "Not Acceptable", "no InvoiceDetailRequestHeader")
        invoice_id = head.get("invoiceID", "")
        po_number = root.find(".//InvoiceDetailOrderInfo/OrderReference")
        order_id = po_number.get("orderID", "") if po_number is not None else ""
        lines = [
            {
                "invoice_line": int(item.get("invoiceLineNumber", "0")),
                "po_line": item.find("InvoiceDetailItemReference").get("lineNumber"),
                "quantity": Decimal(item.get("quantity", "0")),
                "part": item.findtext("InvoiceDetailItemReference/ItemID/SupplierPartID"),
                "uom": item.findtext("UnitOfMeasure"),
                "unit_price": Decimal(item.findtext("UnitPrice/Money") or "0"),
                "tax": Decimal(item.findtext("Tax/Money") or "0"),
            }
            for item in root.iterfind(".//InvoiceDetailItem")
        ]
        if self.orders is not None:
            known = self.orders.get(order_id)
            unknown_lines = [
                line["po_line"]
                for line in lines
                if known is not None and int(line["po_line"] or 0) not in known
            ]
            if known is None or unknown_lines:
                return self._answer(
                    417,
                    "Invalid order/document reference",
                    f"Could not find order header {order_id} {unknown_lines}",
                )
        purpose = head.get("purpose", "standard")
        original = head.find("InvoiceIDInfo")
        credits = original.get("invoiceID", "").strip() if original is not None else ""
        try:
            amounts = check_amounts(root)
            if purpose == "creditMemo":
                check_credit(root, amounts)
        except AmountProblem as problem:
            return self._answer(417, "Invalid attributes", str(problem))
        with self.lock:
            if invoice_id in self.invoices:
                return self._answer(
                    417,
                    "Invalid attributes",
                    f"Invoice number {invoice_id} has already been used for this supplier",
                )
            if purpose == "creditMemo" and self.invoices.get(credits, {}).get("purpose") != "standard":
                named = f" ({credits!r} was never received)" if credits else ""
                return self._answer(
                    500, "Unexpected server error", f"creditMemo without the original invoice{named}"
                )
            if purpose == "creditMemo":
                self.invoices[credits]["credit_notes"].append(invoice_id)
            self.invoices[invoice_id] = {
                "purpose": purpose,
                "credits": credits if purpose == "creditMemo" else None,
                "credits_date": original.get("invoiceDate") if original is not None else None,
                "credit_notes": [],
                "payload_id": root.get("payloadID"),
                "po_number": order_id,
                "deployment_mode": root.find("Request").get("deploymentMode", "production"),
                "lines": lines,
                **amounts,
                "supplier_tax_id": "".join(
                    str(reference.get("identifier", ""))
                    for reference in head.xpath("InvoicePartner[Contact/@role='remitTo']/IdReference")
                    if reference.get("domain") in ("taxPrefix", "taxNumber")
                ),
                "document": request.body,
            }
        return self._answer(200, "OK")

    def _answer(self, code: int, text: str, detail: str = "") -> Reply:
        status = code if self.http_status_mirrors_code else 200
        return Reply(status, cxml_response(code, text, detail), content_type="text/xml; charset=UTF-8")
