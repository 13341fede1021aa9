"""cXML ConfirmationRequest: accept and reject documents valid against Fulfill.dtd's shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from adapters.cxml_confirmation import (
    ConfirmationRoute,
    OrderSeen,
    confirmation_payload_id,
    order_seen,
    render_confirmation,
)
from connector.model import AckDecision, PoAcknowledgement, acknowledgement_id
from tests.support.cxml_fulfill import validate_confirmation
from tests.support.factories import make_po
from tests.support.shared import shared_fixture

ROUTE = ConfirmationRoute(
    url="http://127.0.0.1:9/cxml",
    our_domain="NetworkID",
    our_identity="AN-SUPPLIER-1",
    buyer_domain="NetworkID",
    buyer_identity="AN-BUYER-7",
    shared_secret="s3cret-confirm",
)
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _ack(decision: AckDecision, reason: str = "") -> PoAcknowledgement:
    po = make_po()
    return PoAcknowledgement(
        ack_id=acknowledgement_id(po.key, po.revision, decision),
        po=po,
        decision=decision,
        reason=reason,
        decided_at=NOW,
    )


def test_accept_is_a_valid_confirmation_naming_the_order() -> None:
    ack = _ack(AckDecision.ACCEPT)
    document = render_confirmation(
        ack, ROUTE, OrderSeen("order-77@buyer", "2026-12-01T10:00:00+00:00"), timestamp=NOW
    )
    validate_confirmation(document)
    root = etree.fromstring(document)
    header = root.find("Request/ConfirmationRequest/ConfirmationHeader")
    assert header is not None and header.get("type") == "accept" and header.get("operation") == "new"
    assert header.get("noticeDate") == "2026-12-07T09:30:00+00:00"
    assert root.findtext("Request/ConfirmationRequest/ConfirmationHeader/Total/Money") == str(
        ack.po.total.amount
    )
    reference = root.find("Request/ConfirmationRequest/OrderReference")
    assert reference is not None and reference.get("orderID") == ack.po.po_number
    assert reference.get("orderDate") == "2026-12-01T10:00:00+00:00"
    assert reference.find("DocumentReference").get("payloadID") == "order-77@buyer"  # type: ignore[union-attr]
    assert root.findtext("Header/Sender/Credential/SharedSecret") == "s3cret-confirm"
    assert root.findtext("Header/To/Credential/Identity") == "AN-BUYER-7"
    assert root.get("payloadID") == confirmation_payload_id(ack)


def test_reject_carries_the_reason_and_a_different_payload_id() -> None:
    accept, reject = _ack(AckDecision.ACCEPT), _ack(AckDecision.REJECT, "we do not sell hardware")
    document = render_confirmation(reject, ROUTE, OrderSeen("", ""), timestamp=NOW)
    validate_confirmation(document)
    root = etree.fromstring(document)
    assert root.find("Request/ConfirmationRequest/ConfirmationHeader").get("type") == "reject"  # type: ignore[union-attr]
    assert (
        root.findtext("Request/ConfirmationRequest/ConfirmationHeader/Comments") == "we do not sell hardware"
    )
    assert confirmation_payload_id(accept) != confirmation_payload_id(reject)
    # the same acknowledgement rendered again is the same document apart from its timestamp
    later = render_confirmation(reject, ROUTE, OrderSeen("", ""), timestamp=NOW)
    assert later == document


def test_the_dtd_check_can_fail() -> None:
    document = render_confirmation(_ack(AckDecision.ACCEPT), ROUTE, OrderSeen("p", ""), timestamp=NOW)
    broken = document.replace(b'type="accept"', b'type="maybe"')
    with pytest.raises(AssertionError):
        validate_confirmation(broken)


def test_order_seen_reads_the_stored_order_request() -> None:
    raw = shared_fixture("cxml/OrderRequest-generic.xml").read_text(encoding="utf-8")
    seen = order_seen(raw)
    root = etree.fromstring(raw.encode("utf-8"), etree.XMLParser(load_dtd=False, no_network=True))
    assert seen.payload_id == root.get("payloadID") and seen.payload_id
    assert seen.order_date == root.find("Request/OrderRequest/OrderRequestHeader").get("orderDate")  # type: ignore[union-attr]
    assert order_seen("") == OrderSeen("", "") and order_seen("<not xml") == OrderSeen("", "")
