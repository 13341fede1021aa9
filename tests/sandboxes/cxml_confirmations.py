"""A buyer's cXML endpoint for ConfirmationRequests (order confirmations) on loopback.

Checks what a procurement system checks: the Sender's shared secret (401), the document against
the ConfirmationRequest DTD (406), that the order is one it sent (`orders`: 417 otherwise). A
payloadID it has already received is answered 200 again and not recorded twice: cXML receivers
use payloadID to recognise a re-sent document. The newest accept or reject per order stands, as
the cXML rules say ("the receiving system must discard all previous confirmations").
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from tests.sandboxes.base import Reply, Request, Sandbox
from tests.sandboxes.cxml_buyer import cxml_response
from tests.support.cxml_fulfill import fulfill_dtd

CONFIRMATION_PATH = "/cxml/confirmations"


class CxmlConfirmationBuyer(Sandbox):
    """Takes ConfirmationRequests; `received` maps payloadID -> what it recorded."""

    def __init__(self, *, shared_secret: str, orders: set[str] | None = None) -> None:
        super().__init__()
        self.shared_secret = shared_secret
        self.orders = orders
        self.received: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.duplicates = 0

    def standing(self) -> dict[str, str]:
        """orderID -> the confirmation type that stands (the newest received)."""
        with self.lock:
            return {item["order_id"]: item["type"] for item in self.received.values()}

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != CONFIRMATION_PATH:
            return self._answer(404, "Not Found")
        with self.lock:
            self.posts += 1
        parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
        try:
            root = etree.fromstring(request.body, parser)
        except etree.XMLSyntaxError as exc:
            return self._answer(406, "Not Acceptable", f"not well-formed: {exc}")
        if root.findtext("Header/Sender/Credential/SharedSecret") != self.shared_secret:
            return self._answer(401, "Unauthorized", "unknown sender credentials")
        dtd = fulfill_dtd()
        if not dtd.validate(root):
            return self._answer(406, "Not Acceptable", str(dtd.error_log.filter_from_errors())[:500])
        payload_id = root.get("payloadID", "")
        header = root.find("Request/ConfirmationRequest/ConfirmationHeader")
        reference = root.find("Request/ConfirmationRequest/OrderReference")
        if header is None or reference is None:
            return self._answer(406, "Not Acceptable", "not a ConfirmationRequest")
        order_id = reference.get("orderID", "")
        if self.orders is not None and order_id not in self.orders:
            return self._answer(417, "Expectation Failed", f"unknown order {order_id!r}")
        with self.lock:
            if payload_id in self.received:
                self.duplicates += 1
                return self._answer(200, "OK", "duplicate payloadID: already received")
            self.received[payload_id] = {
                "order_id": order_id,
                "type": header.get("type", ""),
                "comments": header.findtext("Comments") or "",
                "document_reference": reference.find("DocumentReference").get("payloadID", ""),  # type: ignore[union-attr]
            }
        return self._answer(200, "OK")

    @staticmethod
    def _answer(code: int, text: str, detail: str = "") -> Reply:
        return Reply(200, cxml_response(code, text, detail), content_type="text/xml")
