"""The adapter contract: the three ports a source, a billing system or a sink implements.

An adapter is a small class with a pydantic `Config` model, a `kind`, declared `capabilities`
and a handful of methods. The pull loop, the state, retries, rate limits and the outbox belong
to the core (`connector.intake`, `connector.reconcile`, `connector.pushing`); adapters never
touch the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable
from wsgiref.types import WSGIApplication

from pydantic import BaseModel, ConfigDict

from connector.errors import InputProblem, RemoteError
from connector.kinds import AdapterKind as AdapterKind
from connector.kinds import Capability as Capability
from connector.model import BillingPeriod, InvoicePlan, Party, PurchaseOrder, RemoteRef


class AdapterConfig(BaseModel):
    """Base of every adapter's config model: a named block chosen by `type`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str


@dataclass(frozen=True)
class AdapterContext:
    """What the core hands an adapter when it builds it."""

    tenant: str = "default"
    base_dir: Path = Path(".")
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("po_connector"))
    # The vendor issuing the invoices (`[supplier]`), for sinks that print the seller.
    supplier: Party | None = None

    def resolve(self, path: Path | str) -> Path:
        """A path from the config: relative ones are relative to the config file's folder."""
        return self.base_dir / path


@dataclass(frozen=True)
class SourceRecord:
    """A PO as pulled: the canonical form plus the raw payload it came from."""

    po: PurchaseOrder
    raw: str
    document: str = ""


@dataclass
class PullContext:
    """Per-run inputs to a pull: the stored cursor and the already-processed input keys."""

    cursor: dict[str, Any] | None
    started_at: datetime
    is_processed: Callable[[str], bool] = lambda key: False
    stream: str = "default"
    since: datetime | None = None  # resync: records changed since then (the core filters too)
    # The same question for many keys in one lookup (the core's state answers it in a few
    # queries); unset, `processed_among` asks `is_processed` key by key.
    processed_many: Callable[[Collection[str]], set[str]] | None = None

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """Which of `keys` were committed as processed inputs before."""
        if self.processed_many is not None:
            return self.processed_many(keys)
        return {key for key in keys if self.is_processed(key)}


@dataclass
class SourceBatch:
    """A unit the core commits in one transaction: records, rejections and the cursor after them.

    `input_key` identifies a one-shot input (an e-mail message + attachment hash, a cXML
    payloadID): once committed it is never processed again. `after_commit` runs after the
    transaction commits (e.g. mark an IMAP message seen).
    """

    records: list[SourceRecord] = field(default_factory=list)
    rejections: list[InputProblem] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    input_key: str | None = None
    document: str = ""
    after_commit: Callable[[], None] | None = None
    # More keys recorded as processed with the batch (another name the same input is known by).
    also_processed: tuple[str, ...] = ()


@dataclass
class BillingBatch:
    """Billing periods pulled together, committed with the cursor after them."""

    records: list[BillingPeriod] = field(default_factory=list)
    rejections: list[InputProblem] = field(default_factory=list)
    cursor: dict[str, Any] | None = None


@dataclass(frozen=True)
class PushOutcome:
    """The result of one plan in a batch push: a remote reference or the error it met."""

    idempotency_key: str
    ref: RemoteRef | None = None
    error: RemoteError | None = None


@runtime_checkable
class POSource(Protocol):
    """Pulls purchase orders from a buyer's procurement channel."""

    name: str

    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        """Yield batches from the cursor on; each is committed before the next is asked for."""
        ...

    def fetch(self, po_number: str) -> list[SourceRecord]:
        """Fetch one PO again, ignoring the cursor (resync). Empty when not found."""
        ...


@runtime_checkable
class BillingSource(Protocol):
    """Pulls subscription billing periods from the vendor's billing system."""

    name: str

    def pull(self, context: PullContext) -> Iterator[BillingBatch]:
        """Yield batches of billing periods from the cursor on."""
        ...


@runtime_checkable
class InvoiceSink(Protocol):
    """Creates invoices in an accounting system, idempotently by the plan's number."""

    name: str

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices that already exist remotely, keyed by idempotency key (batched lookup)."""
        ...

    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Create the invoice; raise a RemoteError subclass that says what happened on failure."""
        ...


@runtime_checkable
class ReadyCheck(Protocol):
    """An adapter that can tell, without a remote call, whether it can work at all.

    `check_ready()` raises ConfigError when it cannot (a token file that cannot be read, a folder
    that cannot be written); the core calls it before it claims work for the adapter.
    """

    def check_ready(self) -> None:
        """Raise ConfigError naming what is wrong; return when the adapter can work."""
        ...


@runtime_checkable
class BatchInvoiceSink(InvoiceSink, Protocol):
    """A sink that can create several invoices in one call, with per-item outcomes."""

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        """Create several invoices; a failed item never fails its neighbours."""
        ...


class FileInspector(Protocol):
    """A source class (capability `inspect`) that parses one local file without storing anything.

    `block` is the configured `[[sources]]` block of this type when there is one (its mapping,
    sender table, profiles), else None: the adapter then uses its defaults. The adapter must not
    reach a remote system (no mailbox login, no HTTP): inspect works offline on the file alone.
    """

    inspect_suffixes: ClassVar[frozenset[str]]  # lower-case, with the dot: ".xml"

    @classmethod
    def inspect_file(
        cls, path: Path, block: Mapping[str, Any] | None, context: AdapterContext
    ) -> list[SourceBatch]:
        """The batches found in `path`: canonical POs and the problems that kept records out."""
        ...


class Receivable(Protocol):
    """A source class (capability `receive`) whose documents a buyer can POST to us (`serve`).

    The WSGI application it returns stores each accepted document where the source's own `pull`
    reads it later; it answers the sender itself (status codes, body) and never raises.
    """

    @classmethod
    def receiver(cls, block: Mapping[str, Any], context: AdapterContext) -> WSGIApplication:
        """The receiving application for this configured source block; ConfigError if it cannot."""
        ...
