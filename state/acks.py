"""PO acknowledgements: one row per PO revision, its decision and the delivery of the answer.

    waiting ──decide──► planned ──claim──► sending ──sent──► sent
                          ▲                  │  └─fail──► retry ──claim──► sending …
                          │                  └─refused──► dead
                          └──── a later decision (support) for the same revision

A revision's row is created once, with the decision taken automatically (accept, when the PO's
customer and every SKU are known) or `pending` for support (`state` waiting). A source that
cannot answer its buyer records the decision only (`unsupported`). The acknowledgement's id
comes from the PO key, revision and decision, so a re-send after a lost answer carries the same
id and the buyer sees a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from connector.model import AckDecision, PurchaseOrder, acknowledgement_id
from state.tables import po_acknowledgements as acks
from state.tables import po_records

PENDING = "pending"
WAITING, PLANNED, SENDING, SENT, RETRY, DEAD, UNSUPPORTED = (
    "waiting",
    "planned",
    "sending",
    "sent",
    "retry",
    "dead",
    "unsupported",
)
OPEN = (WAITING, PLANNED, SENDING, RETRY)
# The POs whose current revision has no acknowledgement row yet, as migration 0014's partial
# index states it (SQLite uses that index only for a query that states its condition alike).
UNDECIDED = or_(
    po_records.c.acknowledged_revision.is_(None), po_records.c.acknowledged_revision != po_records.c.revision
)


@dataclass(frozen=True)
class Revision:
    """A PO revision as pulled, with what the acceptance rule decided (None: wait for support)."""

    po_key: str
    revision: int
    source: str
    po_number: str
    decision: AckDecision | None
    reason: str
    can_acknowledge: bool


def _state(decision: AckDecision | None, can_acknowledge: bool) -> str:
    if decision is None:
        return WAITING
    return PLANNED if can_acknowledge else UNSUPPORTED


def _ack_id(item: Revision) -> str | None:
    return acknowledgement_id(item.po_key, item.revision, item.decision) if item.decision else None


def record_revisions(conn: Connection, tenant: str, revisions: Sequence[Revision], now: datetime) -> int:
    """Create the row of every revision not seen before, and stamp each PO with the revision
    that has its row; returns how many rows were created."""
    if not revisions:
        return 0
    _stamp_acknowledged(conn, tenant, revisions)
    seen = {
        (row.po_key, row.revision)
        for row in conn.execute(
            select(acks.c.po_key, acks.c.revision).where(
                acks.c.tenant == tenant, acks.c.po_key.in_(sorted({r.po_key for r in revisions}))
            )
        )
    }
    fresh = [r for r in revisions if (r.po_key, r.revision) not in seen]
    if fresh:
        conn.execute(
            insert(acks),
            [
                {
                    "tenant": tenant,
                    "po_key": item.po_key,
                    "revision": item.revision,
                    "source": item.source,
                    "po_number": item.po_number,
                    "decision": item.decision.value if item.decision else PENDING,
                    "decided_by": "auto" if item.decision else None,
                    "reason": item.reason,
                    "ack_id": acknowledgement_id(item.po_key, item.revision, item.decision)
                    if item.decision
                    else None,
                    "state": _state(item.decision, item.can_acknowledge),
                    "attempts": 0,
                    "next_attempt_at": now,
                    "uncertain": False,
                    "decided_at": now if item.decision else None,
                    "created_at": now,
                    "updated_at": now,
                }
                for item in fresh
            ],
        )
    return len(fresh)


def _stamp_acknowledged(conn: Connection, tenant: str, revisions: Sequence[Revision]) -> None:
    prefix = len(tenant) + 1
    conn.execute(
        update(po_records)
        .where(
            po_records.c.tenant == tenant,
            po_records.c.source == bindparam("item_source"),
            po_records.c.external_id == bindparam("item_external_id"),
            po_records.c.revision == bindparam("item_revision"),
        )
        .values(acknowledged_revision=bindparam("item_revision")),
        [
            {
                "item_source": item.source,
                # A PO key is tenant/source/external id: the id is what follows the source.
                "item_external_id": item.po_key[prefix + len(item.source) + 1 :],
                "item_revision": item.revision,
            }
            for item in revisions
        ],
    )


def undecided_pos(conn: Connection, tenant: str, batch: int = 1000) -> Iterator[list[PurchaseOrder]]:
    """The stored POs whose current revision has no acknowledgement row yet (new or revised
    since the last run), `batch` at a time in the order they were first stored: what a run
    decides, read through an index over those POs alone, never holding a first sync's whole
    book."""
    after = 0
    while True:
        rows = conn.execute(
            select(po_records.c.id, po_records.c.canonical_json)
            .where(po_records.c.tenant == tenant, po_records.c.id > after, UNDECIDED)
            .order_by(po_records.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        yield [PurchaseOrder.model_validate_json(row.canonical_json) for row in rows]


def latest(conn: Connection, tenant: str, po_number: str) -> list[dict[str, Any]]:
    """The row of the newest revision of each PO numbered `po_number` (one per source)."""
    rows = conn.execute(
        select(*acks.c)
        .where(acks.c.tenant == tenant, acks.c.po_number == po_number)
        .order_by(acks.c.po_key, acks.c.revision.desc())
    ).all()
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        newest.setdefault(row.po_key, dict(row._mapping))
    return list(newest.values())


def decide(
    conn: Connection,
    row: dict[str, Any],
    decision: AckDecision,
    reason: str,
    now: datetime,
    *,
    can_acknowledge: bool,
) -> bool:
    """Support's decision for a revision; False when it was already decided so (nothing to send)."""
    if row["decision"] == decision.value and row["state"] not in (WAITING, DEAD):
        return False
    conn.execute(
        update(acks)
        .where(acks.c.id == row["id"])
        .values(
            decision=decision.value,
            decided_by="support",
            reason=reason,
            ack_id=acknowledgement_id(row["po_key"], row["revision"], decision),
            state=_state(decision, can_acknowledge),
            attempts=0,
            next_attempt_at=now,
            uncertain=False,
            last_error=None,
            decided_at=now,
            updated_at=now,
        )
    )
    return True


def claim_due(
    conn: Connection, tenant: str, source: str, owner: str, now: datetime, lease_seconds: int, limit: int
) -> list[dict[str, Any]]:
    """Claim due acknowledgements of `source` for `owner` (a reclaimed `sending` one is uncertain)."""
    due = or_(
        and_(acks.c.state.in_((PLANNED, RETRY)), acks.c.next_attempt_at <= now),
        and_(acks.c.state == SENDING, acks.c.lease_expires_at < now),
    )
    query = (
        select(*acks.c)
        .where(acks.c.tenant == tenant, acks.c.source == source, due)
        .order_by(acks.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [dict(row._mapping) for row in conn.execute(query)]
    if rows:
        conn.execute(
            update(acks)
            .where(acks.c.id.in_([row["id"] for row in rows]))
            .values(
                state=SENDING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=acks.c.attempts + 1,
                uncertain=or_(acks.c.uncertain, acks.c.state == SENDING),
                updated_at=now,
            )
        )
    for row in rows:
        row["uncertain"] = bool(row["uncertain"]) or row["state"] == SENDING
    return rows


def _held(row_id: int, owner: str) -> Any:
    return and_(acks.c.id == row_id, acks.c.state == SENDING, acks.c.lease_owner == owner)


def mark_sent(conn: Connection, row_id: int, owner: str, remote_ref: str, now: datetime) -> bool:
    """The buyer's system has the acknowledgement."""
    done = conn.execute(
        update(acks)
        .where(_held(row_id, owner))
        .values(
            state=SENT,
            remote_ref=remote_ref[:256],
            sent_at=now,
            lease_owner=None,
            uncertain=False,
            last_error=None,
            updated_at=now,
        )
    ).rowcount
    return bool(done)


def mark_failed(
    conn: Connection,
    row_id: int,
    owner: str,
    error: str,
    now: datetime,
    *,
    retry_at: datetime | None,
    uncertain: bool = False,
) -> None:
    """A failed attempt: retried at `retry_at`, or dead (None) for support to look at."""
    conn.execute(
        update(acks)
        .where(_held(row_id, owner))
        .values(
            state=RETRY if retry_at is not None else DEAD,
            next_attempt_at=retry_at or now,
            last_error=error[:2000],
            uncertain=True if uncertain else acks.c.uncertain,
            lease_owner=None,
            updated_at=now,
        )
    )


def expire_leases_of(conn: Connection, owners: Sequence[str], now: datetime) -> int:
    """Expire the claims of runs known dead: their acknowledgements are claimable now, uncertain
    (an answer may have left before the run died: it is sent again under the same id)."""
    if not owners:
        return 0
    return int(
        conn.execute(
            update(acks)
            .where(acks.c.state == SENDING, acks.c.lease_owner.in_(list(owners)))
            .values(lease_expires_at=now - timedelta(seconds=1), uncertain=True, updated_at=now)
        ).rowcount
    )


def rejected_po_keys(conn: Connection, tenant: str) -> set[str]:
    """POs whose newest revision was rejected: they are not invoiced against."""
    newest = (
        select(acks.c.po_key, func.max(acks.c.revision).label("revision"))
        .where(acks.c.tenant == tenant)
        .group_by(acks.c.po_key)
        .subquery()
    )
    rows = conn.execute(
        select(acks.c.po_key)
        .join(newest, and_(acks.c.po_key == newest.c.po_key, acks.c.revision == newest.c.revision))
        .where(acks.c.tenant == tenant, acks.c.decision == AckDecision.REJECT.value)
    )
    return {row.po_key for row in rows}


def list_acks(conn: Connection, tenant: str, *, states: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Acknowledgement rows for status, reports and `po acks`, oldest first."""
    query = select(*acks.c).where(acks.c.tenant == tenant)
    if states:
        query = query.where(acks.c.state.in_(list(states)))
    return [dict(row._mapping) for row in conn.execute(query.order_by(acks.c.id))]


def count_by_state(conn: Connection, tenant: str) -> dict[str, int]:
    rows = conn.execute(
        select(acks.c.state, func.count()).where(acks.c.tenant == tenant).group_by(acks.c.state)
    )
    return {state: int(count) for state, count in rows}
