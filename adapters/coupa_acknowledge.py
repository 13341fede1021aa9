"""Answering a Coupa buyer: an accepted PO is marked exported, the version we read and no other.

`PUT /api/purchase_orders/:id?exported=true` is a request of its own (Coupa ignores other
changes sent with it) and needs the `core.purchase_order.write` scope. A new PO version resets
`exported` to false, which is how revisions are found; so marking a version we have not pulled
would hide it. The current version is read first: when it is newer than the one answered,
nothing is marked, and the newer version is answered once it is pulled. Setting the flag twice
is harmless, so a lost answer is simply sent again. Coupa's PO API carries no rejection.
"""

from __future__ import annotations

import json
from typing import Any

from connector.errors import ConfigError, RetryableError
from connector.http import HttpClient
from connector.model import AckDecision, PoAcknowledgement

PO_PATH = "/api/purchase_orders"
WRITE_SCOPE = "core.purchase_order.write"


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def mark_exported(http: HttpClient, scopes: str, name: str, ack: PoAcknowledgement) -> str:
    """Mark the acknowledged PO version exported; what was done, for the acknowledgement's record."""
    if ack.decision is AckDecision.REJECT:
        return "left unexported: Coupa's PO API carries no rejection; tell the buyer"
    if WRITE_SCOPE not in scopes.split():
        raise ConfigError(f"{name}: marking POs exported needs the {WRITE_SCOPE!r} scope in `scopes`")
    path = f"{PO_PATH}/{ack.po.external_id}"
    current = _json_object(http.request("GET", path, params={"fields": '["id","version","exported"]'}).text)
    version = str(current.get("version", ""))
    if ack.po.source_version and version and version != ack.po.source_version:
        return (
            f"not marked exported: Coupa holds version {version}, this answer is for {ack.po.source_version}"
        )
    exported = _json_object(http.request("PUT", path, params={"exported": "true"}).text)
    if exported.get("exported") is not True:
        raise RetryableError(f"{name}: PO {ack.po.po_number} was not marked exported")
    return f"exported at {exported.get('last-exported-at', '')}"
