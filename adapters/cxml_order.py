"""Map a cXML OrderRequest to the canonical PurchaseOrder, and render cXML Response documents.

Pure functions: bytes in, models out; no files, no network. A document that is not XML, not
cXML or not an OrderRequest raises InputError; a bad field inside an OrderRequest becomes an
InputProblem naming the document, the `ItemOut lineNumber=N`, the field and the value, and the
order is then not mapped at all (`po` is None): half a PO would invoice the wrong thing.

The Sender's SharedSecret is never kept here: it is not part of the canonical model and must
not reach logs or the state database (`redact_shared_secrets` masks it in raw text).
Authentication reads it in the receiver.
"""

from __future__ import annotations

import enum
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import sha256
from typing import Any

from lxml import etree
from pydantic import ValidationError

from adapters.safe_xml import parse_xml
from connector.currency import is_known_currency
from connector.errors import InputError, InputProblem
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder
from connector.redact import MASK

CXML_VERSION = "1.2.050"
CXML_DTD_URL = f"http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/cXML.dtd"
_SHARED_SECRET = re.compile(r"(<SharedSecret\b[^>]*>).*?(</SharedSecret\s*>)", re.DOTALL)
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_WHOLE = re.compile(r"^[0-9]+$")
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
class Credential:
    """A cXML Credential without its secret: the domain and the identity."""

    domain: str
    identity: str

    def matches(self, domain: str, identity: str) -> bool:
        """True for the same identity in the same domain (cXML domains ignore case)."""
        return self.domain.casefold() == domain.casefold() and self.identity == identity


@dataclass(frozen=True)
class CxmlHeader:
    """The cXML envelope: payloadID, timestamp and the From/To/Sender credentials."""

    payload_id: str
    timestamp_text: str
    from_credentials: tuple[Credential, ...]
    to_credentials: tuple[Credential, ...]
    sender_credentials: tuple[Credential, ...]
    user_agent: str = ""

    @property
    def from_identity(self) -> str:
        """The identity of the first From credential: the buyer, as the buyer names itself."""
        return self.from_credentials[0].identity if self.from_credentials else ""


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


def read_header(root: etree._Element) -> CxmlHeader:
    """The envelope of a parsed cXML document; missing parts are empty, nothing is validated."""

    def credentials(party: str) -> tuple[Credential, ...]:
        return tuple(
            Credential(element.get("domain", "").strip(), _text(element.find("Identity")))
            for element in root.iterfind(f"Header/{party}/Credential")
        )

    return CxmlHeader(
        payload_id=root.get("payloadID", "").strip(),
        timestamp_text=root.get("timestamp", "").strip(),
        from_credentials=credentials("From"),
        to_credentials=credentials("To"),
        sender_credentials=credentials("Sender"),
        user_agent=_text(root.find("Header/Sender/UserAgent")),
    )


def redact_shared_secrets(text: str) -> str:
    """The document text with every SharedSecret's content masked, for storing or showing."""
    return _SHARED_SECRET.sub(rf"\g<1>{MASK}\g<2>", text)


_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def document_text(data: bytes) -> str:
    """A cXML document's bytes as text, in the encoding it declares (BOM, then XML declaration)."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    declared = _XML_ENCODING.match(data)
    try:
        return data.decode(declared.group(1).decode("ascii") if declared else "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def stored_text(data: bytes) -> str:
    """What may be stored of a received document: its text with every SharedSecret masked."""
    return redact_shared_secrets(document_text(data))


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
    fields = _Fields(source, document)
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
    operation = fields.operation(order_header.get("type", "new"))
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


def _purchase_order(
    fields: _Fields,
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
    fields.decimal("", "Total/Money", _text(total), required=True)
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
        "buyer_name": _text(header.find("BillTo/Address/Name")),
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
    fields: _Fields,
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
    sku = _text(item.find("ItemID/SupplierPartID"))
    if not sku:
        fields.problem(where, "ItemID/SupplierPartID", "", "is required")
    detail = item.find("ItemDetail")
    if detail is None:
        fields.problem(where, "ItemDetail", "", "is required")
        return None
    money = detail.find("UnitPrice/Money")
    price = fields.decimal(where, "UnitPrice/Money", _text(money), required=True)
    price_currency = money.get("currency", "") if money is not None else ""
    if price_currency != currency:
        fields.problem(
            where, "UnitPrice/Money@currency", price_currency, f"differs from the order currency {currency!r}"
        )
    unit = _text(detail.find("UnitOfMeasure"))
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
            description=" ".join(_text_content(detail.find("Description")).split()),
            quantity=quantity,
            unit_price=Money(amount=price, currency=currency),
            unit_of_measure=unit,
            supplier_part_aux_id=_text(item.find("ItemID/SupplierPartAuxiliaryID")),
            service_start=start,
            service_end=end,
        )
    except ValidationError as exc:
        for error in exc.errors():
            where_field = ".".join(str(part) for part in error["loc"])
            fields.problem(where, where_field, str(error.get("input", ""))[:200], error["msg"])
        return None


def _address(fields: _Fields, element: etree._Element | None, party: str) -> Address | None:
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
        return _text(postal.find(tag)) if postal is not None else ""

    return Address(
        name=_text_content(element.find("Name")),
        lines=tuple(_text(s) for s in postal.iterfind("Street")) if postal is not None else (),
        city=postal_text("City"),
        region=postal_text("State"),
        postal_code=postal_text("PostalCode"),
        country=country,
        email=_text(element.find("Email")),
    )


def _payment_terms(fields: _Fields, header: etree._Element) -> PaymentTerms | None:
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
    fields: _Fields, header: etree._Element, extrinsics: dict[str, str], lines: list[POLine]
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
        f"{prefix}{extrinsic.get('name', '').strip()}": _text_content(extrinsic)
        for extrinsic in element.iterfind("Extrinsic")
    }


def _comment_text(comments: etree._Element) -> str:
    # Comments mix text with Attachment elements; only the text is a comment.
    parts = [comments.text or ""] + [child.tail or "" for child in comments]
    return " ".join("".join(parts).split())


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _text_content(element: etree._Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


@dataclass
class _Fields:
    """Reads typed values from attribute and element text, collecting problems as it goes."""

    source: str
    document: str
    problems: list[InputProblem] = field(default_factory=list)

    def problem(self, location: str, name: str, value: str, reason: str) -> None:
        self.problems.append(InputProblem(self.source, self.document, location, name, value, reason))

    def purchase_order(self, values: dict[str, Any], *, whole: str) -> PurchaseOrder | None:
        """The PO from read values, or None with a problem per field the model refuses.

        Nothing is built once a field had a problem. `whole` names the document element a check
        across fields is reported on (its input is the whole order, not one value).
        """
        if self.problems:
            return None
        try:
            return PurchaseOrder.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(part) for part in error["loc"]) or whole
                value = str(error.get("input", "")) if error["loc"] else ""
                self.problem("", name, value[:200], error["msg"])
            return None

    def decimal(
        self, location: str, name: str, text: str | None, *, required: bool = False, positive: bool = False
    ) -> Decimal | None:
        value = (text or "").strip()
        if not value:
            if required:
                self.problem(location, name, "", "is required")
            return None
        if not _DECIMAL.match(value):
            self.problem(location, name, value, "not a decimal number")
            return None
        number = Decimal(value)
        if positive and number <= 0:
            self.problem(location, name, value, "must be greater than zero")
            return None
        return number

    def integer(self, location: str, name: str, text: str | None, *, minimum: int) -> int | None:
        if text is None:
            return None
        value = text.strip()
        if not _WHOLE.match(value) or int(value) < minimum:
            self.problem(location, name, value, f"not a whole number of at least {minimum}")
            return None
        return int(value)

    def date(self, location: str, name: str, text: str | None, *, required: bool = False) -> date | None:
        value = (text or "").strip()
        if not value:
            if required:
                self.problem(location, name, "", "is required")
            return None
        try:
            # The calendar date as the sender wrote it, in the sender's own offset.
            return datetime.fromisoformat(value).date()
        except ValueError:
            self.problem(location, name, value, "not an ISO 8601 date")
            return None

    def timestamp(self, location: str, name: str, text: str) -> datetime | None:
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.problem(location, name, text, "not an ISO 8601 date and time")
            return None
        if moment.tzinfo is None:
            self.problem(location, name, text, "has no timezone offset")
            return None
        return moment.astimezone(UTC)

    def currency(self, location: str, name: str, code: str) -> str:
        code = code.strip()
        if not is_known_currency(code):
            self.problem(location, name, code, "not an ISO 4217 currency code")
        return code

    def operation(self, text: str) -> OrderOperation | None:
        try:
            return OrderOperation(text.strip().lower())
        except ValueError:
            self.problem("", "OrderRequestHeader@type", text, "must be new, update or delete")
            return None


def new_payload_id() -> str:
    """A fresh, globally unique cXML payloadID (time.process-random@host form)."""
    return f"{time.time_ns() // 1_000_000}.{uuid.uuid4().hex}@po-connector"


def render_response(payload_id: str | None, code: int, text: str, *, detail: str = "") -> bytes:
    """A cXML Response with one Status, valid against the cXML 1.2.050 DTD.

    `payload_id` is the Response's own payloadID (a fresh one when None); `text` is the short
    status text (``OK``, ``Bad Request``) and `detail` the optional human explanation.
    """
    root = etree.Element(
        "cXML",
        version=CXML_VERSION,
        payloadID=payload_id or new_payload_id(),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    root.set(_XML_LANG, "en")
    response = etree.SubElement(root, "Response")
    status = etree.SubElement(response, "Status", code=str(code), text=text)
    status.set(_XML_LANG, "en")
    if detail:
        status.text = detail
    return bytes(
        etree.tostring(
            root,
            xml_declaration=True,
            encoding="UTF-8",
            doctype=f'<!DOCTYPE cXML SYSTEM "{CXML_DTD_URL}">',
        )
    )
