"""The outbox as the pusher sees it: claim, check the claim, record each outcome, release.

`OutboxStore` is the interface; `SqlOutboxStore` keeps the rows in the state database, one short
transaction per call (so each outcome is durable the moment it is recorded), and
`state.memory_outbox.MemoryOutbox` keeps them in a dict with the same rules, for tests of the
push protocol that run in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine

from connector.errors import RemoteError
from connector.model import Money, RemoteRef
from state import outbox, outbox_queries
from state.outbox import OutboxItem

# (idempotency key, the total a sink reports, its tax): a read-back after the create
RemoteTotal = tuple[str, Money, Money | None]


class OutboxStore(Protocol):
    """What pushing needs of the outbox; every method is one atomic step."""

    def claim_due(
        self, *, tenant: str, sink: str, owner: str, now: datetime, lease_seconds: int, limit: int
    ) -> list[OutboxItem]:
        """Claim up to `limit` due rows of `sink` for `owner` (a row reclaimed from a dead owner
        comes back uncertain)."""
        ...

    def still_held(self, keys: Sequence[str], owner: str, now: datetime) -> set[str]:
        """The keys `owner` still holds with an unexpired claim: only these may be sent."""
        ...

    def mark_pushed(self, key: str, owner: str, ref: RemoteRef, now: datetime) -> bool:
        """Record that the sink holds the invoice; compares its total and tax with the plan."""
        ...

    def mark_all_pushed(self, pushed: Sequence[tuple[str, RemoteRef]], owner: str, now: datetime) -> None:
        """`mark_pushed` for the invoices one batch call created, in one step."""
        ...

    def record_remote_total(self, key: str, total: Money, now: datetime, tax: Money | None = None) -> bool:
        """Store a total read back later; True when it (or the tax) differs from the plan."""
        ...

    def record_remote_totals(self, found: Sequence[RemoteTotal], now: datetime) -> set[str]:
        """`record_remote_total` for several invoices in one step; the keys whose totals differ."""
        ...

    def mark_failed(
        self,
        key: str,
        owner: str,
        error: RemoteError,
        now: datetime,
        *,
        dead: bool,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
    ) -> None:
        """Record a failed attempt: dead, or retry at `next_attempt_at` (uncertain if it may exist)."""
        ...

    def release(self, keys: Sequence[str], owner: str, now: datetime, *, sent: bool = False) -> None:
        """Hand claimed rows back; `sent` when a request for them may have left (uncertain)."""
        ...

    def count_by_state(self, tenant: str) -> dict[str, dict[str, int]]:
        """Rows per sink and state."""
        ...


class SqlOutboxStore:
    """The outbox in the state database, one transaction per step.

    `engine` is asked for on every call, so a dry run that swaps the connector's engine is seen.
    """

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine

    def claim_due(
        self, *, tenant: str, sink: str, owner: str, now: datetime, lease_seconds: int, limit: int
    ) -> list[OutboxItem]:
        with self._engine().begin() as conn:
            return outbox.claim_due(
                conn, tenant=tenant, sink=sink, owner=owner, now=now, lease_seconds=lease_seconds, limit=limit
            )

    def still_held(self, keys: Sequence[str], owner: str, now: datetime) -> set[str]:
        with self._engine().begin() as conn:
            return outbox.still_held(conn, keys, owner, now)

    def mark_pushed(self, key: str, owner: str, ref: RemoteRef, now: datetime) -> bool:
        with self._engine().begin() as conn:
            return outbox.mark_pushed(conn, key, owner, ref, now)

    def mark_all_pushed(self, pushed: Sequence[tuple[str, RemoteRef]], owner: str, now: datetime) -> None:
        with self._engine().begin() as conn:
            for key, ref in pushed:
                outbox.mark_pushed(conn, key, owner, ref, now)

    def record_remote_total(self, key: str, total: Money, now: datetime, tax: Money | None = None) -> bool:
        with self._engine().begin() as conn:
            return outbox.record_remote_total(conn, key, total, now, tax)

    def record_remote_totals(self, found: Sequence[RemoteTotal], now: datetime) -> set[str]:
        with self._engine().begin() as conn:
            return {
                key for key, total, tax in found if outbox.record_remote_total(conn, key, total, now, tax)
            }

    def mark_failed(
        self,
        key: str,
        owner: str,
        error: RemoteError,
        now: datetime,
        *,
        dead: bool,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
    ) -> None:
        with self._engine().begin() as conn:
            outbox.mark_failed(
                conn, key, owner, error, now, dead=dead, next_attempt_at=next_attempt_at, uncertain=uncertain
            )

    def release(self, keys: Sequence[str], owner: str, now: datetime, *, sent: bool = False) -> None:
        with self._engine().begin() as conn:
            outbox.release(conn, keys, owner, now, sent=sent)

    def count_by_state(self, tenant: str) -> dict[str, dict[str, int]]:
        with self._engine().connect() as conn:
            return outbox_queries.count_by_state(conn, tenant)
