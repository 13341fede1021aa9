"""The `cxml` PO source: cXML OrderRequests from the receiver's spool and/or a folder of files.

Every document becomes one batch whose input key is ``cxml|<payloadID>``, so each document is
processed once however often it is listed (a buyer's retry has the same payloadID and was stored
once anyway). Documents are read oldest first: an update then lands after the order it changes.
Orders sent with ``deploymentMode="test"`` are refused unless `include_test_orders` is set, so a
buyer's test order never becomes a real invoice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from hashlib import sha256
from pathlib import Path
from typing import Any, ClassVar
from wsgiref.types import WSGIApplication

from pydantic import model_validator

from adapters.cxml_buyers import CxmlBuyerConfig
from adapters.cxml_confirmation import Confirmer, order_seen, route_of
from adapters.cxml_envelope import stored_text
from adapters.cxml_order import parse_order_request
from adapters.cxml_receiver import app_from_config
from adapters.cxml_spool import CxmlSpool
from adapters.safe_xml import parse_xml
from adapters.ubl_order import PreviousLookup, ubl_batch, ubl_kind
from connector.errors import ConfigError, InputError, InputProblem
from connector.model import PoAcknowledgement, POStatus, PurchaseOrder
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    Capability,
    PullContext,
    SourceBatch,
    SourceRecord,
)
from connector.registry import validate_block


class CxmlSourceConfig(AdapterConfig):
    """Where received cXML orders are read from, and (for the receiver) who may send them."""

    type: str = "cxml"
    spool_dir: Path | None = None
    folder: Path | None = None
    buyer_id: str = ""  # empty: the From identity of each document
    include_test_orders: bool = False
    buyers: tuple[CxmlBuyerConfig, ...] = ()

    @model_validator(mode="after")
    def _has_a_place(self) -> CxmlSourceConfig:
        if self.spool_dir is None and self.folder is None:
            raise ValueError("set spool_dir, folder or both")
        return self


def parse_cxml_file(
    path: Path,
    *,
    source: str,
    tenant: str = "default",
    buyer_id: str = "",
    include_test_orders: bool = True,
    previous: PreviousLookup = lambda external_id, po_number: None,
) -> SourceBatch:
    """One cXML OrderRequest or UBL ordering document file as a batch: its PO, or the problems.

    `previous` finds the latest PO read before, which a UBL OrderCancellation turns cancelled.
    """
    document = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        # No input key: a file that cannot be read now is tried again on the next run.
        problem = InputProblem(source, document, "", "file", "", f"cannot be read: {exc.strerror}")
        return SourceBatch(rejections=[problem], document=document)
    content_key = f"cxml|sha256:{sha256(data).hexdigest()}"
    try:
        root = parse_xml(data, source=source, document=document)
    except InputError as exc:
        return SourceBatch(rejections=[exc.problem], input_key=content_key, document=document)
    if ubl_kind(root) is not None:
        return ubl_batch(
            data, root, source=source, document=document, tenant=tenant, buyer_id=buyer_id, previous=previous
        )
    try:
        order = parse_order_request(data, source=source, document=document, tenant=tenant, buyer_id=buyer_id)
    except InputError as exc:
        return SourceBatch(rejections=[exc.problem], input_key=content_key, document=document)
    input_key = f"cxml|{order.payload_id}" if order.payload_id else content_key
    if order.deployment_mode == "test" and not include_test_orders:
        problem = InputProblem(
            source, document, "", "Request@deploymentMode", "test", "a test order; include_test_orders is off"
        )
        return SourceBatch(rejections=[problem], input_key=input_key, document=document)
    records = []
    if order.po is not None:
        # The raw payload is kept in the state database, where a secret must never go.
        raw = stored_text(data)
        records.append(SourceRecord(po=order.po, raw=raw, document=document))
    return SourceBatch(
        records=records,
        rejections=list(order.problems),
        input_key=input_key,
        document=document,
    )


class CxmlSource:
    """Reads cXML OrderRequests stored by the receiver (spool) or dropped in a folder."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH_ONE, Capability.INSPECT, Capability.RECEIVE, Capability.ACKNOWLEDGE}
    )
    Config: ClassVar[type[AdapterConfig]] = CxmlSourceConfig
    inspect_suffixes: ClassVar[frozenset[str]] = frozenset({".xml", ".cxml"})

    @classmethod
    def inspect_file(
        cls, path: Path, block: Mapping[str, Any] | None, context: AdapterContext
    ) -> list[SourceBatch]:
        """`inspect FILE`: the one document, test orders included (nothing is stored)."""
        name = str(block.get("name", "inspect")) if block else "inspect"
        buyer_id = str(block.get("buyer_id", "")) if block else ""
        return [parse_cxml_file(path, source=name, tenant=context.tenant, buyer_id=buyer_id)]

    @classmethod
    def receiver(cls, block: Mapping[str, Any], context: AdapterContext) -> WSGIApplication:
        """`serve`: the cXML receiver storing into this source's spool, its buyers' secrets resolved."""
        config = validate_block("sources", block, CxmlSourceConfig)
        if config.spool_dir is None:
            raise ConfigError(f"sources {config.name!r}: spool_dir: required to receive orders")
        return app_from_config(config.buyers, config.spool_dir, base_dir=context.base_dir)

    def __init__(self, config: CxmlSourceConfig, context: AdapterContext) -> None:
        self.name = config.name
        self._tenant = context.tenant
        self._buyer_id = config.buyer_id
        self._include_test_orders = config.include_test_orders
        self.spool = CxmlSpool(context.resolve(config.spool_dir)) if config.spool_dir else None
        self.folder = context.resolve(config.folder) if config.folder else None
        if self.folder is not None and not self.folder.is_dir():
            raise ConfigError(f"source {config.name!r}: folder {str(self.folder)!r} is not a directory")
        self._confirmers = {
            buyer.from_identity.casefold(): Confirmer(
                f"{config.name}:{buyer.name}", route_of(buyer, context.base_dir)
            )
            for buyer in config.buyers
            if buyer.confirmation_url
        }

    def acknowledge(self, ack: PoAcknowledgement) -> str:
        """A ConfirmationRequest (accept, or reject with the reason) to the PO's buyer, when the
        buyer has a `confirmation_url`; otherwise nothing is sent, and the record says so."""
        confirmer = self._confirmers.get(ack.po.buyer_id.casefold())
        if confirmer is None:
            return f"not sent: buyer {ack.po.buyer_id!r} has no confirmation_url"
        return confirmer.send(ack, order_seen(ack.raw))

    def documents(self) -> list[Path]:
        """Every document of the spool and the folder, oldest first."""
        paths = self.spool.list() if self.spool else []
        if self.folder is not None:
            paths += [
                p
                for p in self.folder.iterdir()
                if p.suffix.lower() == ".xml" and not p.name.startswith(".") and p.is_file()
            ]
        return sorted(paths, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        """One batch per document not processed before, oldest first."""
        seen: set[str] = set()
        for path in self.documents():
            batch = self._read(path)
            if batch.input_key is not None:
                if batch.input_key in seen or context.is_processed(batch.input_key):
                    continue
                seen.add(batch.input_key)
            yield batch

    def fetch(self, po_number: str) -> list[SourceRecord]:
        """Every stored revision of the PO with this number, oldest first."""
        return [
            record
            for path in self.documents()
            for record in self._read(path).records
            if record.po.po_number == po_number
        ]

    def _read(self, path: Path, *, resolve_cancellations: bool = True) -> SourceBatch:
        def previous(external_id: str, po_number: str) -> PurchaseOrder | None:
            # The documents read before (a UBL OrderCancellation carries no lines of its own).
            known = [
                record.po
                for other in self.documents()
                if other != path
                for record in self._read(other, resolve_cancellations=False).records
                if record.po.external_id == external_id and record.po.status is not POStatus.CANCELLED
            ]
            return max(known, key=lambda po: po.revision, default=None)

        return parse_cxml_file(
            path,
            source=self.name,
            tenant=self._tenant,
            buyer_id=self._buyer_id,
            include_test_orders=self._include_test_orders,
            previous=previous if resolve_cancellations else lambda external_id, po_number: None,
        )
