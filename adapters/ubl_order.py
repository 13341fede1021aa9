"""Map OASIS UBL 2.1 Order, OrderChange and OrderCancellation documents to the canonical PO.

Buyers on Peppol send these (Peppol BIS Ordering 3.0 for the Order; the Advanced Ordering
profile adds OrderChange and OrderCancellation). Semantics followed here:

- An **Order** is revision 1 of the PO whose number is its `cbc:ID`.
- An **OrderChange** restates the whole order (every line, changed or not) and names the order
  in `cac:OrderReference/cbc:ID`; its `cbc:SequenceNumberID` N makes it revision N + 1. A line
  whose `cbc:LineStatusCode` is 4 / Cancelled / Deleted is left out of the revision.
- An **OrderCancellation** names the order and carries no lines: it becomes the latest known
  revision of that PO with status cancelled, one revision higher. The caller hands in what it
  has read before (`previous`); a cancellation of an order not seen yet is a problem, not a PO.

The buyer's version rides on `PurchaseOrder.revision`, the only version field the model has now;
when the model keeps the source's version beside our revision sequence, the Order's 1, the
change's SequenceNumberID + 1 and the cancellation's step belong there.

The buyer is the `cac:BuyerCustomerParty` endpoint ID (else its party identification); the PO's
identity is buyer + order number, as for cXML. A bad field is an InputProblem naming the document,
the `OrderLine N`, the field and the value, and no PO is made (half an order invoices the wrong
thing). Parsing goes through `adapters.safe_xml` (no DTD, no entities, no network).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Context, Inexact
from hashlib import sha256

from lxml import etree
from pydantic import ValidationError

from adapters.cxml_envelope import document_text
from adapters.safe_xml import parse_xml
from adapters.xml_fields import FieldReader
from connector.currency import is_known_currency
from connector.errors import InputError, InputProblem
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder
from connector.ports import SourceBatch, SourceRecord
from mappings.csv_mapping import parse_payment_terms

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
_NS = {"cbc": CBC, "cac": CAC}
_EXACT = Context(prec=28, traps=[Inexact])
_CANCELLED_LINE_CODES = frozenset({"4", "cancelled", "deleted"})


class UblOrderKind(enum.StrEnum):
    """The three UBL ordering documents read here, by their root element's namespace."""

    ORDER = "Order"
    ORDER_CHANGE = "OrderChange"
    ORDER_CANCELLATION = "OrderCancellation"

    @property
    def namespace(self) -> str:
        return f"urn:oasis:names:specification:ubl:schema:xsd:{self.value}-2"


_KINDS = {kind.namespace: kind for kind in UblOrderKind}


@dataclass(frozen=True)
class UblOrderDoc:
    """One UBL ordering document: what it is, its IDs, and the PO or the problems."""

    kind: UblOrderKind
    document_id: str
    order_id: str
    buyer_id: str
    po: PurchaseOrder | None
    problems: list[InputProblem] = field(default_factory=list)

    @property
    def input_key(self) -> str:
        """Once per document: a buyer resending the same document ID is not read twice."""
        return ubl_input_key(self.kind, self.buyer_id, self.document_id)


def ubl_input_key(kind: UblOrderKind, buyer_id: str, document_id: str) -> str:
    """The one-shot key of a UBL ordering document (also its key in the receiver's spool)."""
    return f"ubl|{kind.value}|{buyer_id}/{document_id}"


def ubl_envelope(root: etree._Element) -> tuple[UblOrderKind, str, str] | None:
    """(kind, document ID, buyer party ID) of a UBL ordering document, None for other XML."""
    kind = ubl_kind(root)
    if kind is None:
        return None
    return kind, _text(root, "cbc:ID"), _party_id(root.find("cac:BuyerCustomerParty/cac:Party", _NS))


def ubl_kind(root: etree._Element) -> UblOrderKind | None:
    """The UBL ordering document `root` is, or None when it is not one."""
    return _KINDS.get(etree.QName(root).namespace or "") if isinstance(root.tag, str) else None


PreviousLookup = Callable[[str, str], PurchaseOrder | None]


def parse_ubl_order(
    data: bytes,
    *,
    source: str,
    document: str,
    tenant: str = "default",
    buyer_id: str = "",
    previous: PreviousLookup = lambda external_id, po_number: None,
) -> UblOrderDoc:
    """Parse a UBL Order, OrderChange or OrderCancellation into the canonical PO.

    Raises InputError when `data` is not well-formed XML or not one of the three documents;
    field problems come back in `problems` with `po` None. `buyer_id` overrides the buyer party.
    `previous(external_id, po_number)` is the latest PO read before, for a cancellation.
    """
    root = parse_xml(data, source=source, document=document)
    return read_ubl_order(
        root,
        raw_sha256=sha256(data).hexdigest(),
        source=source,
        document=document,
        tenant=tenant,
        buyer_id=buyer_id,
        previous=previous,
    )


def ubl_batch(
    data: bytes,
    root: etree._Element,
    *,
    source: str,
    document: str,
    tenant: str,
    buyer_id: str = "",
    input_key: str | None = None,
    previous: PreviousLookup = lambda external_id, po_number: None,
) -> SourceBatch:
    """The batch of one UBL ordering document; `input_key` defaults to the document's own."""
    doc = read_ubl_order(
        root,
        raw_sha256=sha256(data).hexdigest(),
        source=source,
        document=document,
        tenant=tenant,
        buyer_id=buyer_id,
        previous=previous,
    )
    records = [SourceRecord(po=doc.po, raw=document_text(data), document=document)] if doc.po else []
    key = input_key or doc.input_key
    return SourceBatch(records=records, rejections=list(doc.problems), input_key=key, document=document)


def read_ubl_order(
    root: etree._Element,
    *,
    raw_sha256: str,
    source: str,
    document: str,
    tenant: str = "default",
    buyer_id: str = "",
    previous: PreviousLookup = lambda external_id, po_number: None,
) -> UblOrderDoc:
    """`parse_ubl_order` on a tree already parsed safely."""
    kind = ubl_kind(root)
    if kind is None:
        value = str(root.tag) if isinstance(root.tag, str) else ""
        raise InputError(
            InputProblem(
                source, document, "", "root", value, "not a UBL Order, OrderChange or OrderCancellation"
            )
        )
    fields = FieldReader(source, document)
    document_id = _text(root, "cbc:ID")
    if not document_id:
        fields.problem("", "cbc:ID", "", "is required")
    if kind is UblOrderKind.ORDER:
        order_id = document_id
    else:
        order_id = _text(root, "cac:OrderReference/cbc:ID")
        if not order_id:
            fields.problem(
                "", "cac:OrderReference/cbc:ID", "", "is required: the order this document changes"
            )
    buyer = buyer_id or _party_id(root.find("cac:BuyerCustomerParty/cac:Party", _NS))
    if not buyer:
        fields.problem("", "cac:BuyerCustomerParty/cac:Party/cbc:EndpointID", "", "is required")
    external_id = f"{buyer}/{order_id}" if buyer else order_id
    issued = fields.date("", "cbc:IssueDate", _text(root, "cbc:IssueDate"), required=True)
    updated_at = _issued_at(fields, root, issued)

    def done(po: PurchaseOrder | None) -> UblOrderDoc:
        return UblOrderDoc(
            kind, document_id, order_id, buyer, None if fields.problems else po, fields.problems
        )

    if kind is UblOrderKind.ORDER_CANCELLATION:
        if fields.problems:
            return done(None)
        prior = previous(external_id, order_id)
        if prior is None:
            fields.problem(
                "", "cac:OrderReference/cbc:ID", order_id, "cancels an order this source has not read"
            )
            return done(None)
        note = _text(root, "cbc:CancellationNote")
        return done(
            prior.model_copy(
                update={
                    "source": source,
                    "revision": prior.revision + 1,
                    "status": POStatus.CANCELLED,
                    "source_status": "cancelled",
                    "comments": "\n".join(filter(None, (prior.comments, note))),
                    "source_updated_at": updated_at,
                    "raw_sha256": raw_sha256,
                }
            )
        )
    revision, source_version = 1, ""
    if kind is UblOrderKind.ORDER_CHANGE:
        sequence = fields.integer("", "cbc:SequenceNumberID", _text(root, "cbc:SequenceNumberID"), minimum=1)
        revision = sequence + 1 if sequence is not None else 2
        source_version = str(sequence) if sequence is not None else ""
    return done(
        _purchase_order(
            fields,
            root,
            kind=kind,
            order_id=order_id,
            external_id=external_id,
            buyer_id=buyer,
            revision=revision,
            source_version=source_version,
            tenant=tenant,
            issued=issued,
            updated_at=updated_at,
            raw_sha256=raw_sha256,
        )
    )


def _purchase_order(
    fields: FieldReader,
    root: etree._Element,
    *,
    kind: UblOrderKind,
    order_id: str,
    external_id: str,
    buyer_id: str,
    revision: int,
    source_version: str,
    tenant: str,
    issued: date | None,
    updated_at: datetime | None,
    raw_sha256: str,
) -> PurchaseOrder | None:
    currency = fields.currency("", "cbc:DocumentCurrencyCode", _text(root, "cbc:DocumentCurrencyCode"))
    extrinsics = {
        name: value
        for name, path in (
            ("CustomerReference", "cbc:CustomerReference"),
            ("AccountingCost", "cbc:AccountingCost"),
            ("QuotationReference", "cac:QuotationDocumentReference/cbc:ID"),
            ("ContractReference", "cac:Contract/cbc:ID"),
        )
        if (value := _text(root, path))
    }
    lines: list[POLine] = []
    for position, line in enumerate(root.iterfind("cac:OrderLine", _NS), start=1):
        item = line.find("cac:LineItem", _NS)
        if item is None:
            fields.problem(f"OrderLine #{position}", "cac:LineItem", "", "is required")
            continue
        if _text(item, "cbc:LineStatusCode").casefold() in _CANCELLED_LINE_CODES:
            continue
        if (po_line := _line(fields, item, position, currency)) is not None:
            lines.append(po_line)
    if not lines and not fields.problems:
        fields.problem("", "cac:OrderLine", "", f"an {kind} needs at least one line")
    period = "cac:Delivery/cac:RequestedDeliveryPeriod"
    term_start = fields.date("", f"{period}/cbc:StartDate", _text(root, f"{period}/cbc:StartDate"))
    term_end = fields.date("", f"{period}/cbc:EndDate", _text(root, f"{period}/cbc:EndDate"))
    starts = [line.service_start for line in lines if line.service_start]
    ends = [line.service_end for line in lines if line.service_end]
    buyer_party = root.find("cac:BuyerCustomerParty/cac:Party", _NS)
    billing_party = root.find("cac:AccountingCustomerParty/cac:Party", _NS)
    values = {
        "tenant": tenant,
        "source": fields.source,
        "external_id": external_id,
        "po_number": order_id,
        "revision": revision,
        "source_version": source_version,
        "status": POStatus.OPEN,
        "source_status": kind.value,
        "buyer_id": buyer_id,
        "buyer_name": _party_name(buyer_party),
        "bill_to": _address(fields, billing_party if billing_party is not None else buyer_party, "BillTo"),
        "ship_to": _address(
            fields, root.find("cac:Delivery/cac:DeliveryLocation", _NS), "ShipTo", "cac:Address"
        ),
        "currency": currency,
        "payment_terms": _payment_terms(root, extrinsics),
        "term_start": term_start or (min(starts) if starts else None),
        "term_end": term_end or (max(ends) if ends else None),
        "issued_on": issued,
        "lines": tuple(lines),
        "comments": "\n".join(_text(note) for note in root.iterfind("cbc:Note", _NS) if _text(note)),
        "source_updated_at": updated_at,
        "raw_sha256": raw_sha256,
        "extrinsics": extrinsics,
    }
    return fields.purchase_order(values, whole=kind.value)


def _line(fields: FieldReader, item: etree._Element, position: int, currency: str) -> POLine | None:
    number_text = _text(item, "cbc:ID")
    line_no = fields.integer(f"OrderLine #{position}", "cac:LineItem/cbc:ID", number_text, minimum=1)
    where = f"OrderLine {number_text or f'#{position}'}"
    before = len(fields.problems)
    quantity_element = item.find("cbc:Quantity", _NS)
    quantity = fields.decimal(where, "cbc:Quantity", _text(quantity_element), required=True, positive=True)
    unit = (quantity_element.get("unitCode", "") if quantity_element is not None else "").strip() or "EA"
    sku = _text(item, "cac:Item/cac:SellersItemIdentification/cbc:ID") or _text(
        item, "cac:Item/cac:StandardItemIdentification/cbc:ID"
    )
    if not sku:
        fields.problem(where, "cac:Item/cac:SellersItemIdentification/cbc:ID", "", "is required")
    price_element = item.find("cac:Price/cbc:PriceAmount", _NS)
    price = fields.decimal(where, "cac:Price/cbc:PriceAmount", _text(price_element), required=True)
    price_currency = price_element.get("currencyID", "") if price_element is not None else ""
    # A bad order currency is reported once, not again on every line.
    if price_element is not None and is_known_currency(currency) and price_currency != currency:
        fields.problem(
            where,
            "cac:Price/cbc:PriceAmount@currencyID",
            price_currency,
            f"differs from the order currency {currency!r}",
        )
    base = fields.decimal(
        where, "cac:Price/cbc:BaseQuantity", _text(item, "cac:Price/cbc:BaseQuantity"), positive=True
    )
    if price is not None and base is not None and base != 1:
        try:
            price = _EXACT.divide(price, base)
        except Inexact:  # a price per base quantity that is no exact unit price
            fields.problem(
                where, "cac:Price/cbc:BaseQuantity", str(base), f"{price} per {base} is no exact unit price"
            )
            price = None
    period = "cac:Delivery/cac:RequestedDeliveryPeriod"
    start = fields.date(where, f"{period}/cbc:StartDate", _text(item, f"{period}/cbc:StartDate"))
    end = fields.date(where, f"{period}/cbc:EndDate", _text(item, f"{period}/cbc:EndDate"))
    if len(fields.problems) > before or line_no is None or quantity is None or price is None:
        return None
    if not is_known_currency(currency):
        return None  # reported once for the order
    try:
        return POLine(
            line_no=line_no,
            sku=sku,
            description=" ".join(
                (_text(item, "cac:Item/cbc:Name") or _text(item, "cac:Item/cbc:Description")).split()
            ),
            quantity=quantity,
            unit_price=Money(amount=price, currency=currency),
            unit_of_measure=unit,
            supplier_part_aux_id=_text(item, "cac:Item/cac:BuyersItemIdentification/cbc:ID"),
            service_start=start,
            service_end=end,
        )
    except ValidationError as exc:
        for error in exc.errors():
            fields.problem(
                where, ".".join(str(p) for p in error["loc"]), str(error.get("input", ""))[:200], error["msg"]
            )
        return None


def _issued_at(fields: FieldReader, root: etree._Element, issued: date | None) -> datetime | None:
    """IssueDate + IssueTime as UTC, when the time carries its offset (else unknown, not guessed)."""
    time_text = _text(root, "cbc:IssueTime")
    if issued is None or not time_text:
        return None
    moment = fields.timestamp("", "cbc:IssueTime", f"{issued.isoformat()}T{time_text}")
    return moment.astimezone(UTC) if moment is not None else None


def _payment_terms(root: etree._Element, extrinsics: dict[str, str]) -> PaymentTerms | None:
    note = _text(root, "cac:PaymentTerms/cbc:Note")
    if not note:
        return None
    try:
        return parse_payment_terms(note)
    except ValueError:  # free text ("within a month of delivery") is kept, not refused
        extrinsics["PaymentTerms"] = note
        return None


def _party_id(party: etree._Element | None) -> str:
    if party is None:
        return ""
    return _text(party, "cbc:EndpointID") or _text(party, "cac:PartyIdentification/cbc:ID")


def _party_name(party: etree._Element | None) -> str:
    if party is None:
        return ""
    return _text(party, "cac:PartyLegalEntity/cbc:RegistrationName") or _text(party, "cac:PartyName/cbc:Name")


def _address(
    fields: FieldReader, holder: etree._Element | None, role: str, path: str = "cac:PostalAddress"
) -> Address | None:
    postal = holder.find(path, _NS) if holder is not None else None
    if holder is None or postal is None:
        return None
    country = _text(postal, "cac:Country/cbc:IdentificationCode").upper()
    if country and (len(country) != 2 or not country.isalpha() or not country.isascii()):
        fields.problem(
            "", f"{role} cac:Country/cbc:IdentificationCode", country, "not an ISO 3166-1 alpha-2 code"
        )
    lines = [_text(postal, "cbc:StreetName"), _text(postal, "cbc:AdditionalStreetName")]
    lines += [_text(line, "cbc:Line") for line in postal.iterfind("cac:AddressLine", _NS)]
    return Address(
        name=_party_name(holder) or _text(holder, "cbc:Name"),
        lines=tuple(line for line in lines if line),
        city=_text(postal, "cbc:CityName"),
        region=_text(postal, "cbc:CountrySubentity"),
        postal_code=_text(postal, "cbc:PostalZone"),
        country=country,
        email=_text(holder, "cac:Contact/cbc:ElectronicMail"),
    )


def _text(element: etree._Element | None, path: str = "") -> str:
    if element is None:
        return ""
    found = element.find(path, _NS) if path else element
    return (found.text or "").strip() if found is not None else ""
