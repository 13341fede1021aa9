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

This module knows the three documents, their identity and the revisions they make; the order's
content (parties, lines, terms) is read by `adapters.ubl_order_content`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from hashlib import sha256

from lxml import etree

from adapters.cxml_envelope import document_text
from adapters.safe_xml import parse_xml
from adapters.ubl_order_content import NS, party_id, read_purchase_order, ubl_text
from adapters.xml_fields import FieldReader
from connector.errors import InputError, InputProblem
from connector.model import POStatus, PurchaseOrder
from connector.ports import SourceBatch, SourceRecord


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
    return kind, ubl_text(root, "cbc:ID"), party_id(root.find("cac:BuyerCustomerParty/cac:Party", NS))


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
    document_id = ubl_text(root, "cbc:ID")
    if not document_id:
        fields.problem("", "cbc:ID", "", "is required")
    if kind is UblOrderKind.ORDER:
        order_id = document_id
    else:
        order_id = ubl_text(root, "cac:OrderReference/cbc:ID")
        if not order_id:
            fields.problem(
                "", "cac:OrderReference/cbc:ID", "", "is required: the order this document changes"
            )
    buyer = buyer_id or party_id(root.find("cac:BuyerCustomerParty/cac:Party", NS))
    if not buyer:
        fields.problem("", "cac:BuyerCustomerParty/cac:Party/cbc:EndpointID", "", "is required")
    external_id = f"{buyer}/{order_id}" if buyer else order_id
    issued = fields.date("", "cbc:IssueDate", ubl_text(root, "cbc:IssueDate"), required=True)
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
        note = ubl_text(root, "cbc:CancellationNote")
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
        sequence = fields.integer(
            "", "cbc:SequenceNumberID", ubl_text(root, "cbc:SequenceNumberID"), minimum=1
        )
        revision = sequence + 1 if sequence is not None else 2
        source_version = str(sequence) if sequence is not None else ""
    return done(
        read_purchase_order(
            fields,
            root,
            kind=kind.value,
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


def _issued_at(fields: FieldReader, root: etree._Element, issued: date | None) -> datetime | None:
    """IssueDate + IssueTime as UTC, when the time carries its offset (else unknown, not guessed)."""
    time_text = ubl_text(root, "cbc:IssueTime")
    if issued is None or not time_text:
        return None
    moment = fields.timestamp("", "cbc:IssueTime", f"{issued.isoformat()}T{time_text}")
    return moment.astimezone(UTC) if moment is not None else None
