"""Answering a cXML buyer: a ConfirmationRequest (type accept, or reject with the reason) for the
OrderRequest a PO revision came in, posted to the buyer's cXML endpoint with our credentials.

The document follows Fulfill.dtd (cXML 1.2.050): ConfirmationRequest (ConfirmationHeader,
OrderReference), the header with `type`, `noticeDate`, `confirmID` and `operation="new"`, the PO
total and, for a rejection, the reason as Comments; OrderReference names the order by its
`orderID`, `orderDate` and the OrderRequest's payloadID (DocumentReference). The payloadID of the
confirmation comes from the acknowledgement id, so a re-send after a lost answer is the same
document: a buyer that already has it answers as for a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from lxml import etree

from adapters.cxml_buyers import CxmlBuyerConfig
from adapters.cxml_invoice_answers import read_status
from adapters.cxml_invoice_xml import lang, money, sub
from adapters.safe_xml import parse_xml
from connector.errors import AuthenticationError, ConnectorError, InputError, RejectedError, UncertainError
from connector.http import HttpClient
from connector.model import AckDecision, PoAcknowledgement

CXML_VERSION = "1.2.050"
DOCTYPE = f'<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/Fulfill.dtd">'


@dataclass(frozen=True)
class ConfirmationRoute:
    """Where and as whom a buyer's confirmations go: its endpoint, both identities, the secret."""

    url: str
    our_domain: str
    our_identity: str
    buyer_domain: str
    buyer_identity: str
    shared_secret: str = field(repr=False)
    user_agent: str = "po-connector"


@dataclass(frozen=True)
class OrderSeen:
    """What the acknowledged OrderRequest said of itself: its payloadID and order date."""

    payload_id: str
    order_date: str


def route_of(buyer: CxmlBuyerConfig, base_dir: Path) -> ConfirmationRoute:
    """A configured buyer's confirmation route: we are its To identity, it is the From one."""
    credential = buyer.credential(base_dir)
    return ConfirmationRoute(
        url=buyer.confirmation_url,
        our_domain=buyer.to_domain or "NetworkID",
        our_identity=buyer.to_identity,
        buyer_domain=buyer.from_domain,
        buyer_identity=buyer.from_identity,
        shared_secret=credential.shared_secret,
    )


def order_seen(raw: str) -> OrderSeen:
    """The payloadID and orderDate of a stored OrderRequest ("" where it does not say)."""
    if not raw:
        return OrderSeen("", "")
    try:
        root = parse_xml(raw.encode("utf-8"), source="acknowledgement", document="stored order")
    except InputError:
        return OrderSeen("", "")
    header = root.find("Request/OrderRequest/OrderRequestHeader")
    return OrderSeen(root.get("payloadID", ""), header.get("orderDate", "") if header is not None else "")


def confirmation_payload_id(ack: PoAcknowledgement) -> str:
    return f"{ack.ack_id}.confirm@po-connector"


def render_confirmation(
    ack: PoAcknowledgement,
    route: ConfirmationRoute,
    order: OrderSeen,
    *,
    timestamp: datetime,
    language: str = "en-US",
) -> bytes:
    """The ConfirmationRequest for `ack` (valid against Fulfill.dtd 1.2.050)."""
    stamp = timestamp.astimezone(UTC).isoformat(timespec="seconds")
    root = etree.Element(
        "cXML", payloadID=confirmation_payload_id(ack), timestamp=stamp, version=CXML_VERSION
    )
    root.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    header = sub(root, "Header")
    sub(sub(sub(header, "From"), "Credential", domain=route.our_domain), "Identity", route.our_identity)
    sub(sub(sub(header, "To"), "Credential", domain=route.buyer_domain), "Identity", route.buyer_identity)
    sender = sub(header, "Sender")
    credential = sub(sender, "Credential", domain=route.our_domain)
    sub(credential, "Identity", route.our_identity)
    sub(credential, "SharedSecret", route.shared_secret)
    sub(sender, "UserAgent", route.user_agent)

    request = sub(sub(root, "Request", deploymentMode="production"), "ConfirmationRequest")
    confirmation = sub(
        request,
        "ConfirmationHeader",
        type="accept" if ack.decision is AckDecision.ACCEPT else "reject",
        noticeDate=ack.decided_at.astimezone(UTC).isoformat(timespec="seconds"),
        confirmID=f"{ack.po.po_number}-r{ack.po.revision}",
        operation="new",
    )
    money(confirmation, "Total", ack.po.total.quantized())
    if ack.reason:
        lang(confirmation, "Comments", ack.reason, language)
    reference = sub(request, "OrderReference", orderID=ack.po.po_number)
    if order.order_date:
        reference.set("orderDate", order.order_date)
    sub(reference, "DocumentReference", payloadID=order.payload_id or ack.po.external_id)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=DOCTYPE)
    return body


class Confirmer:
    """Posts confirmations to one buyer's endpoint and reads its cXML Status."""

    def __init__(
        self, name: str, route: ConfirmationRoute, *, session: requests.Session | None = None
    ) -> None:
        self.name = name
        self.route = route
        self.client = HttpClient(
            route.url,
            name=f"cxml-confirmation:{name}",
            timeout=(5.0, 30.0),
            headers={"Accept": "text/xml"},
            classify=self._classify,
            session=session,
        )

    def send(self, ack: PoAcknowledgement, order: OrderSeen) -> str:
        """Post the confirmation; its payloadID is what the buyer holds."""
        document = render_confirmation(ack, self.route, order, timestamp=datetime.now(UTC))
        self.client.request(
            "POST",
            self.route.url,
            data=document,
            headers={"Content-Type": "text/xml; charset=UTF-8"},
            idempotent=False,
        )
        return confirmation_payload_id(ack)

    def _classify(self, response: requests.Response) -> ConnectorError | None:
        status = read_status(response.content)
        if response.status_code in (401, 403) or (status is not None and status.code in (401, 403)):
            said = status.describe() if status is not None else f"HTTP {response.status_code}"
            return AuthenticationError(f"{self.name}: buyer refused our credentials: {said}")
        if status is None:
            if response.status_code < 300:
                return UncertainError(
                    f"{self.name}: buyer answered {response.status_code} without a readable cXML Status",
                    status=response.status_code,
                )
            return None
        if 200 <= status.code < 300:
            return None
        message = f"{self.name}: buyer answered {status.describe()}"
        if 400 <= status.code < 500:
            return RejectedError(message, status=status.code, provider_code=str(status.code))
        return UncertainError(message, status=status.code, provider_code=str(status.code))
