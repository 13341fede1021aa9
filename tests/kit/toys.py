"""Small in-memory adapters that follow the contract, to break one behaviour at a time."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from connector.errors import (
    AuthenticationError,
    InputProblem,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.model import InvoicePlan, Money, POLine, PurchaseOrder, RemoteRef
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    Capability,
    PullContext,
    PushOutcome,
    SourceBatch,
    SourceRecord,
)

log = logging.getLogger("po_connector.toys")
SECRET = "toy-api-key-0123456789"


@dataclass
class ToyNetwork:
    """The part of a toy remote that checks the key and answers queued faults before serving.

    A fault is any object with `status`, `headers`, `times` and `fired` (the kit's
    `InjectedFault`); each answer it gives counts in its `fired`.
    """

    api_key: str = SECRET
    faults: list[Any] = field(default_factory=list)

    def call(self, key: str) -> None:
        """Raise as a remote would for a refused key or a queued fault; return when it serves."""
        if key != self.api_key:
            raise AuthenticationError("toy: the API key was refused (401)")
        if self.faults:
            fault = self.faults[0]
            fault.fired += 1
            if fault.fired >= fault.times:
                self.faults.pop(0)
            retry_after = float(fault.headers.get("Retry-After", "0"))
            raise RetryableError(
                f"toy: answered {fault.status}", status=fault.status, retry_after=retry_after
            )


def with_retries(network: ToyNetwork, key: str, attempts: int = 4) -> None:
    """Call the toy remote, retrying retryable answers up to `attempts` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            network.call(key)
            return
        except RetryableError:
            if attempt == attempts:
                raise


@dataclass
class Ledger:
    """The remote system of the toy sink: invoices by number, and the next uncertain write."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    network: ToyNetwork = field(default_factory=ToyNetwork)
    lose_next_answer: bool = False
    fail_next_item: str | None = None


class ToySinkConfig(AdapterConfig):
    """Settings of the toy sink."""

    type: str = "toy-sink"
    api_key: str = SECRET


class ToySink:
    """An in-memory accounting system that refuses the customer NOBODY."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.BATCH_PUSH, Capability.CREDIT_NOTES}
    )
    Config: ClassVar[type[AdapterConfig]] = ToySinkConfig

    def __init__(self, config: AdapterConfig, context: AdapterContext, ledger: Ledger | None = None) -> None:
        assert isinstance(config, ToySinkConfig)
        self.name = config.name
        self.api_key = config.api_key
        self.ledger = ledger or Ledger()

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        found = {}
        for plan in plans:
            for invoice in self.ledger.invoices:
                if invoice["number"] == plan.invoice_number:
                    found[plan.idempotency_key] = self._ref(invoice, existed=True)
        return found

    def push(self, plan: InvoicePlan) -> RemoteRef:
        with_retries(self.ledger.network, self.api_key)
        if plan.customer_ref == "NOBODY":
            raise RejectedError("toy: customer NOBODY does not exist", status=400)
        invoice = {
            "id": f"T{len(self.ledger.invoices) + 1}",
            "number": plan.invoice_number,
            "total": plan.total,
        }
        self.ledger.invoices.append(invoice)
        log.debug("created invoice %s", plan.invoice_number)
        if self.ledger.lose_next_answer:
            self.ledger.lose_next_answer = False
            raise UncertainError("toy: the answer was lost", status=500)
        return self._ref(invoice, existed=False)

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        outcomes = []
        for plan in plans:
            try:
                if self.ledger.fail_next_item == plan.invoice_number:
                    self.ledger.fail_next_item = None
                    raise RemoteError("toy: item failed") from None
                outcomes.append(PushOutcome(plan.idempotency_key, ref=self.push(plan)))
            except RemoteError as exc:
                outcomes.append(PushOutcome(plan.idempotency_key, error=exc))
        return outcomes

    @staticmethod
    def _ref(invoice: dict[str, Any], *, existed: bool) -> RemoteRef:
        return RemoteRef(
            remote_id=invoice["id"],
            invoice_number=invoice["number"],
            total=invoice["total"],
            already_existed=existed,
        )


@dataclass
class Catalogue:
    """The remote system of the toy source: POs in the order they changed."""

    pos: list[dict[str, Any]] = field(default_factory=list)
    network: ToyNetwork = field(default_factory=ToyNetwork)


class ToySourceConfig(AdapterConfig):
    """Settings of the toy source."""

    type: str = "toy-source"
    page_size: int = 4
    api_key: str = SECRET


class ToySource:
    """Pages through the catalogue from the cursor (the index of the next PO)."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INCREMENTAL, Capability.FETCH_ONE})
    Config: ClassVar[type[AdapterConfig]] = ToySourceConfig

    def __init__(self, config: ToySourceConfig, context: AdapterContext, catalogue: Catalogue) -> None:
        self.name = config.name
        self.tenant = context.tenant
        self.page_size = config.page_size
        self.api_key = config.api_key
        self.catalogue = catalogue

    def read_page(self, position: int) -> list[dict[str, Any]]:
        """One page of the catalogue from `position`, as the remote serves it."""
        with_retries(self.catalogue.network, self.api_key)
        return self.catalogue.pos[position : position + self.page_size]

    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        position = int((context.cursor or {}).get("position", 0))
        while True:
            page = self.read_page(position)
            batch = SourceBatch(document="toy")
            for offset, raw in enumerate(page):
                self.add(batch, raw, position + offset)
            position = self.next_position(position, len(page))
            batch.cursor = {"position": position}
            yield batch
            if len(page) < self.page_size:
                return

    def next_position(self, position: int, read: int) -> int:
        return position + read

    def add(self, batch: SourceBatch, raw: dict[str, Any], index: int) -> None:
        try:
            quantity = Decimal(raw["quantity"])
            po = self.po(raw["number"], quantity)
        except (ArithmeticError, ValueError) as exc:
            batch.rejections.append(
                InputProblem(self.name, "toy", f"po {index}", "quantity", str(raw["quantity"]), str(exc))
            )
            return
        batch.records.append(SourceRecord(po=po, raw=str(raw), document="toy"))

    def po(self, number: str, quantity: Decimal) -> PurchaseOrder:
        return PurchaseOrder(
            tenant=self.tenant,
            source=self.name,
            external_id=number,
            po_number=number,
            currency="USD",
            lines=(POLine(line_no=1, sku="SEAT", quantity=quantity, unit_price=Money.of("10.00", "USD")),),
            term_start=date(2026, 1, 1),
            source_updated_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=len(number)),
        )

    def fetch(self, po_number: str) -> list[SourceRecord]:
        batch = SourceBatch()
        for index, raw in enumerate(self.catalogue.pos):
            if raw["number"] == po_number:
                self.add(batch, raw, index)
        return batch.records
