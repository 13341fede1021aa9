"""An in-memory outbox with the rules of the SQL one, for fast tests of the push protocol.

It keeps what `state.outbox` keeps per row (state, claim, attempts, uncertainty, remote total)
and applies the same conditions: a claim only takes due rows, a row reclaimed from `pushing`
comes back uncertain, a failure or a release only touches rows the caller still holds.
`crash()` stops every later write, as a killed process writes nothing more; the rows stay
as the crash left them for the next run to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.errors import RemoteError
from connector.model import InvoicePlan, Money, RemoteRef
from state.outbox import DEAD, PLANNED, PUSHED, PUSHING, RETRY, OutboxItem
from state.outbox_store import RemoteTotal


@dataclass
class MemoryRow:
    """One outbox row."""

    plan: InvoicePlan
    state: str = PLANNED
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    uncertain: bool = False
    remote_id: str | None = None
    remote_total: Money | None = None
    remote_tax: Money | None = None
    total_mismatch: bool = False
    last_error: str | None = None
    history: list[str] = field(default_factory=list)


class MemoryOutbox:
    """Outbox rows in a dict, by idempotency key, in the order they were planned."""

    def __init__(self) -> None:
        self.rows: dict[str, MemoryRow] = {}
        self.crashed = False

    # -- test set-up and inspection --------------------------------------------------------
    def plan(self, plan: InvoicePlan, now: datetime) -> None:
        """Add a planned row, as reconciliation would."""
        self.rows[plan.idempotency_key] = MemoryRow(plan=plan, next_attempt_at=now)

    def crash(self) -> None:
        """The process died: nothing it tries to record from now on is kept."""
        self.crashed = True

    def restart(self) -> None:
        """A new process over the same rows."""
        self.crashed = False

    def expire_claims(self, now: datetime) -> None:
        """Let every claim run out, as time passing after a crash would."""
        for row in self.rows.values():
            if row.state == PUSHING:
                row.lease_expires_at = now - timedelta(seconds=1)

    def states(self) -> dict[str, str]:
        """invoice number -> state."""
        return {row.plan.invoice_number: row.state for row in self.rows.values()}

    def _write(self, row: MemoryRow, event: str) -> bool:
        if self.crashed:
            return False
        row.history.append(event)
        return True

    # -- the OutboxStore interface --------------------------------------------------------
    def claim_due(
        self, *, tenant: str, sink: str, owner: str, now: datetime, lease_seconds: int, limit: int
    ) -> list[OutboxItem]:
        claimed: list[OutboxItem] = []
        # As the database claims: by issue date, then in planning order (sorted is stable).
        for key, row in sorted(self.rows.items(), key=lambda item: item[1].plan.issue_date):
            if len(claimed) >= limit:
                break
            if row.plan.tenant != tenant or row.plan.sink != sink:
                continue
            due = (
                row.state in (PLANNED, RETRY)
                and row.next_attempt_at is not None
                and row.next_attempt_at <= now
            ) or (row.state == PUSHING and row.lease_expires_at is not None and row.lease_expires_at < now)
            if not due or not self._write(row, f"claimed by {owner}"):
                continue
            row.uncertain = row.uncertain or row.state == PUSHING
            row.state, row.lease_owner = PUSHING, owner
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.attempts += 1
            claimed.append(OutboxItem(key, row.plan, row.attempts, row.uncertain))
        return claimed

    def _held(self, key: str, owner: str) -> MemoryRow | None:
        row = self.rows.get(key)
        return row if row is not None and row.state == PUSHING and row.lease_owner == owner else None

    def still_held(self, keys: Sequence[str], owner: str, now: datetime) -> set[str]:
        return {
            key
            for key in keys
            if (row := self._held(key, owner)) is not None
            and row.lease_expires_at is not None
            and row.lease_expires_at > now
        }

    def mark_pushed(self, key: str, owner: str, ref: RemoteRef, now: datetime) -> bool:
        row = self.rows.get(key)
        if row is None or not self._write(row, "pushed"):
            return False
        row.state, row.lease_owner, row.lease_expires_at, row.uncertain = PUSHED, None, None, False
        row.remote_id, row.last_error = ref.remote_id, None
        row.remote_total, row.remote_tax = ref.total, ref.tax
        row.total_mismatch = self._differs(row, ref.total, ref.tax)
        return True

    def mark_all_pushed(self, pushed: Sequence[tuple[str, RemoteRef]], owner: str, now: datetime) -> None:
        for key, ref in pushed:
            self.mark_pushed(key, owner, ref, now)

    def record_remote_total(self, key: str, total: Money, now: datetime, tax: Money | None = None) -> bool:
        row = self.rows.get(key)
        if row is None or not self._write(row, "total read back"):
            return False
        row.remote_total, row.remote_tax = total, tax
        row.total_mismatch = self._differs(row, total, tax)
        return row.total_mismatch

    def record_remote_totals(self, found: Sequence[RemoteTotal], now: datetime) -> set[str]:
        return {key for key, total, tax in found if self.record_remote_total(key, total, now, tax)}

    @staticmethod
    def _differs(row: MemoryRow, total: Money | None, tax: Money | None) -> bool:
        plan = row.plan
        if total is not None and total != plan.total:
            return True
        return tax is not None and plan.is_taxed and tax != plan.tax_total

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
        row = self._held(key, owner)
        if row is None or not self._write(row, f"failed: {type(error).__name__}"):
            return
        row.state = DEAD if dead else RETRY
        row.next_attempt_at = next_attempt_at or now
        row.last_error = str(error)
        row.lease_owner = row.lease_expires_at = None
        row.uncertain = uncertain

    def release(self, keys: Sequence[str], owner: str, now: datetime, *, sent: bool = False) -> None:
        for key in keys:
            row = self._held(key, owner)
            if row is None or not self._write(row, "released"):
                continue
            row.state, row.next_attempt_at = RETRY, now
            row.lease_owner = row.lease_expires_at = None
            row.uncertain = row.uncertain or sent

    def count_by_state(self, tenant: str) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self.rows.values():
            if row.plan.tenant == tenant:
                by_state = counts.setdefault(row.plan.sink, {})
                by_state[row.state] = by_state.get(row.state, 0) + 1
        return counts
