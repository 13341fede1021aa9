"""Map a cXML OrderRequest to the canonical PurchaseOrder.

Pure functions: bytes in, models out; no files, no network. A document that is not XML, not
cXML or not an OrderRequest raises InputError; a bad field inside an OrderRequest becomes an
InputProblem naming the document, the `ItemOut lineNumber=N`, the field and the value, and the
order is then not mapped at all (`po` is None): half a PO would invoice the wrong thing.

The envelope (Header credentials, document text with its SharedSecret masked, Response
documents) is `adapters.cxml_envelope`; the typed-field reader is `adapters.xml_fields`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from hashlib import sha256

from lxml import etree
from pydantic import ValidationError

from adapters.cxml_envelope import (
    CXML_DTD_URL,
    Credential,
    CxmlHeader,
    read_header,
    render_response,
    stored_text,
)
from adapters.safe_xml import parse_xml
from adapters.xml_fields import FieldReader, element_content, element_text
from connector.errors import InputError, InputProblem
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder

__all__ = [
    "CXML_DTD_URL",  # the envelope's names, re-exported for the importers of this module
    "Credential",
    "CxmlHeader",
    "OrderOperation",
    "OrderRequestDoc",
    "order_request_element",
    "parse_order_request",
    "render_response",
    "stored_text",
]

_ALPHA2 = re.compile(r"^[A-Z]{2}$")
# Extrinsic names buyers use for a subscription term, compared without case or punctuation.
_TERM_PREFIXES = ("", "term", "service", "subscription", "contract", "period")
_TERM_START_NAMES = frozenset(p + s for p in _TERM_PREFIXES for s in ("start", "startdate"))
_TERM_END_NAMES = frozenset(p + s for p in _TERM_PREFIXES for s in ("end", "enddate"))


class OrderOperation(enum.StrEnum):
    """What an OrderRequest does to the order: `OrderRequestHeader@type`."""

    NEW = "new"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class OrderRequestDoc:
    """One OrderRequest as received: its envelope, what it does, and the PO or the problems."""

    header: CxmlHeader
    timestamp: datetime | None
    deployment_mode: str
    operation: OrderOperation | None
    order_id: str
    po: PurchaseOrder | None
    problems: list[InputProblem] = field(default_factory=list)

    @property
    def payload_id(self) -> str:
        return self.header.payload_id


def order_request_element(root: etree._Element, *, source: str, document: str) -> etree._Element:
    """The OrderRequest element of a cXML document, or InputError when it is not one."""
    if root.tag != "cXML":
        raise InputError(InputProblem(source, document, "", "root", str(root.tag), "not a cXML document"))
    order = root.find("Request/OrderRequest")
    if order is None:
        kinds = [str(child.tag) for child in root.iterfind("Request/*")] or [str(c.tag) for c in root]
        raise InputError(
            InputProblem(source, document, "", "Request", ",".join(kinds), "not an OrderRequest")
        )
    return order


def parse_order_request(
    data: bytes, *, source: str, document: str, tenant: str = "default", buyer_id: str = ""
) -> OrderRequestDoc:
    """Parse a cXML OrderRequest into its envelope and canonical PO.

    Raises InputError when `data` is not a well-formed cXML OrderRequest; field problems are
    returned in `problems` with `po` None. `buyer_id` defaults to the From identity.
    """
    root = parse_xml(data, source=source, document=document)
    order = order_request_element(root, source=source, document=document)
    header = read_header(root)
    fields = FieldReader(source, document)
    if not header.payload_id:
        fields.problem("", "cXML@payloadID", "", "is required")
    timestamp = fields.timestamp("", "cXML@timestamp", header.timestamp_text)
    request = order.getparent()
    deployment_mode = (request.get("deploymentMode") if request is not None else None) or "production"
    order_header = order.find("OrderRequestHeader")
    if order_header is None:
        fields.problem("", "OrderRequestHeader", "", "is required")
        return OrderRequestDoc(header, timestamp, deployment_mode, None, "", None, fields.problems)
    order_id = order_header.get("orderID", "").strip()
    operation = _operation(fields, order_header.get("type", "new"))
    po = _purchase_order(
        fields,
        order,
        order_header,
        order_id=order_id,
        operation=operation,
        tenant=tenant,
        buyer_id=buyer_id or header.from_identity,
        updated_at=timestamp,
        raw_sha256=sha256(data).hexdigest(),
    )
    return OrderRequestDoc(header, timestamp, deployment_mode, operation, order_id, po, fields.problems)


def _operation(fields: FieldReader, text: str) -> OrderOperation | None:
    try:
        return OrderOperation(text.strip().lower())
    except ValueError:
        fields.problem("", "OrderRequestHeader@type", text, "must be new, update or delete")
        return None


def _purchase_order(
    fields: FieldReader,
    order: etree._Element,
    header: etree._Element,
    *,
    order_id: str,
    operation: OrderOperation | None,
    tenant: str,
    buyer_id: str,
    updated_at: datetime | None,
    raw_sha256: str,
) -> PurchaseOrder | None:
    if not order_id:
        fields.problem("", "OrderRequestHeader@orderID", "", "is required")
    version_text = header.get("orderVersion")
    version = fields.integer("", "OrderRequestHeader@orderVersion", version_text, minimum=0)
    if version is None and version_text is None:
        # Without orderVersion a change or a cancellation still supersedes the original order.
        version = 1 if operation in (None, OrderOperation.NEW) else 2
    issued = fields.date("", "OrderRequestHeader@orderDate", header.get("orderDate"), required=True)
    total = header.find("Total/Money")
    currency = fields.currency(
        "", "Total/Money@currency", total.get("currency", "") if total is not None else ""
    )
    fields.decimal("", "Total/Money", element_text(total), required=True)
    extrinsics = _extrinsics(header, prefix="")
    lines = [
        line
        for position, item in enumerate(order.iterfind("ItemOut"), start=1)
        if (line := _line(fields, item, position, currency, extrinsics)) is not None
    ]
    if not lines and not fields.problems:
        fields.problem("", "ItemOut", "", "an OrderRequest needs at least one ItemOut")
    term_start, term_end = _term(fields, header, extrinsics, lines)
    values = {
        "tenant": tenant,
        "source": fields.source,
        # Two buyers may use the same orderID: the buyer is part of the PO's identity.
        "external_id": f"{buyer_id}/{order_id}" if buyer_id else order_id,
        "po_number": order_id,
        "revision": version,
        "source_version": (version_text or "").strip() if version is not None else "",
        "status": POStatus.CANCELLED if operation is OrderOperation.DELETE else POStatus.OPEN,
        "source_status": operation.value if operation else "",
        "buyer_id": buyer_id,
        "buyer_name": element_text(header.find("BillTo/Address/Name")),
        "bill_to": _address(fields, header.find("BillTo/Address"), "BillTo"),
        "ship_to": _address(fields, header.find("ShipTo/Address"), "ShipTo"),
        "currency": currency,
        "payment_terms": _payment_terms(fields, header),
        "term_start": term_start,
        "term_end": term_end,
        "issued_on": issued,
        "lines": tuple(lines),
        "comments": "\n".join(filter(None, (_comment_text(c) for c in header.iterfind("Comments")))),
        "source_updated_at": updated_at,
        "raw_sha256": raw_sha256,
        "extrinsics": extrinsics,
    }
    return fields.purchase_order(values, whole="OrderRequest")


def _line(
    fields: FieldReader,
    item: etree._Element,
    position: int,
    currency: str,
    extrinsics: dict[str, str],
) -> POLine | None:
    number_text = item.get("lineNumber")
    line_no = fields.integer(f"ItemOut #{position}", "lineNumber", number_text, minimum=1)
    if number_text is None:
        line_no = position  # lineNumber is optional in cXML; the order of ItemOut numbers them
    where = f"ItemOut lineNumber={line_no if line_no is not None else number_text}"
    before = len(fields.problems)
    quantity = fields.decimal(where, "quantity", item.get("quantity"), required=True, positive=True)
    sku = element_text(item.find("ItemID/SupplierPartID"))
    if not sku:
        fields.problem(where, "ItemID/SupplierPartID", "", "is required")
    detail = item.find("ItemDetail")
    if detail is None:
        fields.problem(where, "ItemDetail", "", "is required")
        return None
    money = detail.find("UnitPrice/Money")
    price = fields.decimal(where, "UnitPrice/Money", element_text(money), required=True)
    price_currency = money.get("currency", "") if money is not None else ""
    if price_currency != currency:
        fields.problem(
            where, "UnitPrice/Money@currency", price_currency, f"differs from the order currency {currency!r}"
        )
    unit = element_text(detail.find("UnitOfMeasure"))
    if not unit:
        fields.problem(where, "UnitOfMeasure", "", "is required")
    delivery = fields.date(where, "requestedDeliveryDate", item.get("requestedDeliveryDate"))
    period = item.find(".//Period")
    start = end = None
    if period is not None:
        start = fields.date(where, "Period@startDate", period.get("startDate"), required=True)
        end = fields.date(where, "Period@endDate", period.get("endDate"), required=True)
    if len(fields.problems) > before or line_no is None or quantity is None or price is None:
        return None
    if delivery is not None:
        extrinsics[f"line {line_no} requestedDeliveryDate"] = delivery.isoformat()
    extrinsics.update(_extrinsics(detail, prefix=f"line {line_no} "))
    try:
        return POLine(
            line_no=line_no,
            sku=sku,
            description=" ".join(element_content(detail.find("Description")).split()),
            quantity=quantity,
            unit_price=Money(amount=price, currency=currency),
            unit_of_measure=unit,
            supplier_part_aux_id=element_text(item.find("ItemID/SupplierPartAuxiliaryID")),
            service_start=start,
            service_end=end,
        )
    except ValidationError as exc:
        for error in exc.errors():
            where_field = ".".join(str(part) for part in error["loc"])
            fields.problem(where, where_field, str(error.get("input", ""))[:200], error["msg"])
        return None


def _address(fields: FieldReader, element: etree._Element | None, party: str) -> Address | None:
    if element is None:
        return None
    postal = element.find("PostalAddress")
    country_element = postal.find("Country") if postal is not None else None
    country = (
        (
            (country_element.get("isoCountryCode") if country_element is not None else None)
            or element.get("isoCountryCode")
            or ""
        )
        .strip()
        .upper()
    )
    if country and not _ALPHA2.match(country):
        fields.problem(
            "", f"{party}/Address Country@isoCountryCode", country, "not an ISO 3166-1 alpha-2 code"
        )

    def postal_text(tag: str) -> str:
        return element_text(postal.find(tag)) if postal is not None else ""

    return Address(
        name=element_content(element.find("Name")),
        lines=tuple(element_text(s) for s in postal.iterfind("Street")) if postal is not None else (),
        city=postal_text("City"),
        region=postal_text("State"),
        postal_code=postal_text("PostalCode"),
        country=country,
        email=element_text(element.find("Email")),
    )


def _payment_terms(fields: FieldReader, header: etree._Element) -> PaymentTerms | None:
    net_days: list[int] = []
    discount: tuple[Decimal, int] | None = None
    for term in header.iterfind("PaymentTerm"):
        days = fields.integer("", "PaymentTerm@payInNumberOfDays", term.get("payInNumberOfDays"), minimum=0)
        if days is None:
            continue
        percent = term.find("Discount/DiscountPercent")
        if percent is None:
            net_days.append(days)
            continue
        value = fields.decimal("", "PaymentTerm/Discount/DiscountPercent@percent", percent.get("percent"))
        if value is not None and discount is None:
            discount = (value, days)
    if not net_days and discount is None:
        return None
    net = max(net_days) if net_days else discount[1] if discount else 0
    return PaymentTerms(
        code=f"NET{net}",
        net_days=net,
        discount_percent=discount[0] if discount else None,
        discount_days=discount[1] if discount else None,
    )


def _term(
    fields: FieldReader, header: etree._Element, extrinsics: dict[str, str], lines: list[POLine]
) -> tuple[date | None, date | None]:
    """The subscription term: from Extrinsics, else the header's effective/expiration dates,
    else the span of the lines' service periods."""
    start = end = None
    for name, value in extrinsics.items():
        key = re.sub(r"[^a-z]", "", name.lower())
        if key in _TERM_START_NAMES:
            start = fields.date("", f"Extrinsic name={name}", value)
        elif key in _TERM_END_NAMES:
            end = fields.date("", f"Extrinsic name={name}", value)
    start = start or fields.date("", "OrderRequestHeader@effectiveDate", header.get("effectiveDate"))
    end = end or fields.date("", "OrderRequestHeader@expirationDate", header.get("expirationDate"))
    starts = [line.service_start for line in lines if line.service_start]
    ends = [line.service_end for line in lines if line.service_end]
    return start or (min(starts) if starts else None), end or (max(ends) if ends else None)


def _extrinsics(element: etree._Element, *, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}{extrinsic.get('name', '').strip()}": element_content(extrinsic)
        for extrinsic in element.iterfind("Extrinsic")
    }


def _comment_text(comments: etree._Element) -> str:
    # Comments mix text with Attachment elements; only the text is a comment.
    parts = [comments.text or ""] + [child.tail or "" for child in comments]
    return " ".join("".join(parts).split())
