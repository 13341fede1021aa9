"""What we tell a buyer about a PO revision we received: accepted, or rejected with a reason."""

from __future__ import annotations

import enum
import hashlib

from pydantic import Field

from connector.model.base import Frozen, UtcDateTime
from connector.model.orders import PurchaseOrder


class AckDecision(enum.StrEnum):
    """Whether a PO revision is taken (it becomes binding) or refused."""

    ACCEPT = "accept"
    REJECT = "reject"


class PoAcknowledgement(Frozen):
    """An acknowledgement to send to the buyer's system for one revision of one PO.

    `ack_id` is derived from the PO key, its revision and the decision, so every attempt to send
    it carries the same identifier (a cXML payloadID, a Message-ID): a buyer that has it already
    sees a duplicate, not a second answer.
    """

    ack_id: str
    po: PurchaseOrder
    decision: AckDecision
    reason: str = Field(default="", max_length=2000)
    decided_at: UtcDateTime
    # The PO as it arrived (the stored raw payload and document name), when this revision is the
    # one last stored: a cXML answer names the OrderRequest's payloadID, an e-mail its Message-ID.
    raw: str = ""
    document: str = ""


def acknowledgement_id(po_key: str, revision: int, decision: AckDecision) -> str:
    """The stable id of the acknowledgement of `revision` of the PO keyed `po_key`: 32 hex digits."""
    return hashlib.sha256(f"ack|{po_key}|{revision}|{decision.value}".encode()).hexdigest()[:32]
