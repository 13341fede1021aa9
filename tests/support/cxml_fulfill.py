"""A DTD for ConfirmationRequest documents, built from the fixtures' cXML 1.2.050 DTD.

The fixtures hold cXML.dtd (whose Request lists the base-protocol requests only) but not
Fulfill.dtd, where ConfirmationRequest lives. Fulfill.dtd is cXML.dtd plus the fulfilment
elements; this builds that shape: the fixture DTD read in place, ConfirmationRequest added to
`%cxml.requests;`, and the declarations of the ConfirmationRequest elements as cXML 1.2.050
states them (element content models and the ConfirmationHeader / ConfirmationStatus attributes).
Every element they refer to (Total, Tax, Comments, OrderReference, DocumentReference, ...) is the
fixture DTD's own declaration.
"""

from __future__ import annotations

import io
from functools import cache

from lxml import etree

from tests.support.shared import shared_fixture

CONFIRMATION_DECLARATIONS = """
<!ELEMENT ConfirmationRequest (ConfirmationHeader, OrderReference,
        (OrderStatusRequestReference | OrderStatusRequestIDInfo)*, ConfirmationItem*)>
<!ELEMENT ConfirmationHeader (DocumentReference?, Total?, Shipping?, Tax?, Contact*, Hazard*,
        Comments*, IdReference*, Extrinsic*)>
<!ATTLIST ConfirmationHeader
    confirmID  CDATA  #IMPLIED
    operation  (new | update) "new"
    type (accept | allDetail | detail | backordered | except | reject | requestToPay | replace) #REQUIRED
    noticeDate CDATA  #REQUIRED
    invoiceID  CDATA  #IMPLIED
    incoTerms  (cfr|cif|cip|cpt|daf|ddp|ddu|deq|des|exw|fas|fca|fob) #IMPLIED
    version    CDATA  #IMPLIED>
<!ELEMENT ConfirmationItem (UnitOfMeasure, Contact*, Hazard*, ConfirmationStatus+)>
<!ATTLIST ConfirmationItem
    lineNumber CDATA #REQUIRED
    quantity   CDATA #REQUIRED>
<!ELEMENT ConfirmationStatus (UnitOfMeasure, (ItemIn | UnitPrice)?, Tax?, Shipping?, Comments*, Extrinsic*)>
<!ATTLIST ConfirmationStatus
    quantity CDATA #REQUIRED
    type (accept | allDetail | detail | backordered | reject | unknown | requestToPay) #REQUIRED
    shipmentDate CDATA #IMPLIED
    deliveryDate CDATA #IMPLIED>
"""


@cache
def fulfill_dtd() -> etree.DTD:
    """The DTD a ConfirmationRequest is validated against (compiled once per test process)."""
    text = shared_fixture("cxml/cXML-1.2.050.dtd").read_text(encoding="utf-8")
    marker = '<!ENTITY % cxml.requests "(ProfileRequest |'
    assert marker in text, "the fixture cXML DTD changed: %cxml.requests not found"
    text = text.replace(marker, '<!ENTITY % cxml.requests "(ProfileRequest | ConfirmationRequest |', 1)
    return etree.DTD(io.BytesIO((text + CONFIRMATION_DECLARATIONS).encode("utf-8")))


def validate_confirmation(document: bytes) -> None:
    """Fail with the DTD's error log unless `document` is a valid ConfirmationRequest."""
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    root = etree.fromstring(document, parser)
    dtd = fulfill_dtd()
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
