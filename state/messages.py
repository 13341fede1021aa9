"""The message outbox: one row per message to a customer, the state machine of sending it once.

    planned ──claim──► sending ──accepted──► sent
     ▲ │ │                ├─4xx, or refused before the message went──► planned (backoff)
     │ │ │                ├─5xx, or out of attempts──► dead
     │ │ │                └─connection lost after the message went──► uncertain
     │ │ └─(reason gone, never sent)──► withdrawn ──(reason back)──► planned
     │ └─(the customer has no AP address)──► unaddressed ──(an address is known)──► planned
     └─ from uncertain or dead: `mail resend` (support); from uncertain: a lookup finding no copy
    uncertain ──a lookup finds the copy, or `mail mark-sent` (support)──► sent
    (a `sending` row whose lease expired becomes uncertain: its sender may have sent it)

A row is keyed by a UNIQUE `dedupe_key` of (tenant, kind, subject, reason), so a request is
planned once however many runs see its reason. An uncertain row is never sent again by itself:
the server may have queued it. What a row holds is the message as it goes out, so a re-send
after a lookup sends the same bytes under the same Message-ID.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from state.key_chunks import chunks
from state.tables import outgoing_messages

PLANNED, SENDING, SENT, UNCERTAIN, DEAD, WITHDRAWN = (
    "planned",
    "sending",
    "sent",
    "uncertain",
    "dead",
    "withdrawn",
)
UNADDRESSED = "unaddressed"  # planned but no recipient known: reported, never sent
STATES = (PLANNED, SENDING, SENT, UNCERTAIN, DEAD, WITHDRAWN, UNADDRESSED)
# States support may decide: `resend` puts them back, `mark-sent` records a copy found elsewhere.
DECIDABLE = (UNCERTAIN, DEAD)

_rows = outgoing_messages.c


def dedupe_key(tenant: str, kind: str, subject_key: str, reason: str) -> str:
    """The row's unique key: the same request (tenant, kind, subject, reason) has the same key."""
    text = "\x1f".join((tenant, kind, subject_key, reason))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to plan: what it is about, who gets it, and its rendered text."""

    tenant: str
    kind: str
    subject_key: str
    reason: str
    customer_ref: str
    po_number: str
    recipient: str
    subject: str
    message_id: str
    message: str
    details: dict[str, Any]

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.tenant, self.kind, self.subject_key, self.reason)


@dataclass(frozen=True)
class ClaimedMessage:
    """A row claimed for sending: the envelope, the message text and the attempt it is."""

    id: int
    dedupe_key: str
    message_id: str
    recipient: str
    message: str
    attempts: int


def plan(conn: Connection, message: OutgoingMessage, now: datetime, run_id: str | None = None) -> str:
    """Store a message once. Returns 'planned', 'replanned', 'unaddressed', 'updated' or 'unchanged'.

    A message without a recipient (the customer has no AP address) is kept `unaddressed`: it is
    reported, never sent, and planned as soon as an address is known. A row nothing was ever
    delivered from (planned, unaddressed, withdrawn, or dead with another recipient now) takes
    the new text; one that is sending, uncertain or sent is never touched.
    """
    key = message.dedupe_key
    row = conn.execute(
        select(_rows.id, _rows.state, _rows.recipient, _rows.message, _rows.details_json).where(
            _rows.dedupe_key == key
        )
    ).first()
    target = PLANNED if message.recipient else UNADDRESSED
    content = {
        "recipient": message.recipient,
        "subject": message.subject,
        "message_id": message.message_id,
        "message": message.message,
        "details_json": json.dumps(message.details, sort_keys=True, default=str),
        "customer_ref": message.customer_ref,
        "po_number": message.po_number,
    }
    if row is None:
        conn.execute(
            insert(outgoing_messages).values(
                dedupe_key=key,
                tenant=message.tenant,
                kind=message.kind,
                subject_key=message.subject_key,
                reason=message.reason,
                state=target,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                run_id=run_id,
                **content,
            )
        )
        return target
    changed = (row.message, row.details_json) != (message.message, content["details_json"])
    readdressed = row.state == DEAD and message.recipient and row.recipient != message.recipient
    if row.state in (WITHDRAWN, UNADDRESSED, PLANNED) or readdressed:
        if row.state == target and not changed:
            return "unchanged"
        reset = {} if row.state == target else {"attempts": 0, "next_attempt_at": now, "last_error": None}
        _set(conn, row.id, state=target, now=now, **reset, **content)
        if row.state == target:
            return "updated"
        return "replanned" if target == PLANNED else UNADDRESSED
    return "unchanged"


def _set(conn: Connection, row_id: int, *, now: datetime, **values: Any) -> None:
    conn.execute(update(outgoing_messages).where(_rows.id == row_id).values(updated_at=now, **values))


def withdraw_unjustified(
    conn: Connection, tenant: str, kind: str, keep: set[str], now: datetime, why: str
) -> list[int]:
    """Withdraw messages never delivered (planned, unaddressed) whose reason is gone (key not in `keep`)."""
    unsent = (PLANNED, UNADDRESSED)
    rows = conn.execute(
        select(_rows.id, _rows.dedupe_key).where(
            _rows.tenant == tenant, _rows.kind == kind, _rows.state.in_(unsent)
        )
    ).all()
    gone = [row.id for row in rows if row.dedupe_key not in keep]
    for chunk in chunks(gone):
        conn.execute(
            update(outgoing_messages)
            .where(_rows.id.in_(chunk), _rows.state.in_(unsent))
            .values(state=WITHDRAWN, last_error=why, updated_at=now)
        )
    return gone


def expire_stale(conn: Connection, tenant: str, now: datetime) -> int:
    """Rows left `sending` by a sender whose lease expired become uncertain: it may have handed
    the message to the server before it stopped."""
    return conn.execute(
        update(outgoing_messages)
        .where(_rows.tenant == tenant, _rows.state == SENDING, _rows.lease_expires_at < now)
        .values(
            state=UNCERTAIN,
            lease_owner=None,
            lease_expires_at=None,
            last_error="the run sending it stopped before it recorded the outcome",
            updated_at=now,
        )
    ).rowcount


def claim_next(
    conn: Connection, *, tenant: str, owner: str, now: datetime, lease_seconds: int
) -> ClaimedMessage | None:
    """Claim the oldest due planned row for `owner` (after `expire_stale`)."""
    expire_stale(conn, tenant, now)
    query = (
        select(_rows.id, _rows.dedupe_key, _rows.message_id, _rows.recipient, _rows.message, _rows.attempts)
        .where(_rows.tenant == tenant, _rows.state == PLANNED, _rows.next_attempt_at <= now)
        .order_by(_rows.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    if row is None:
        return None
    conn.execute(
        update(outgoing_messages)
        .where(_rows.id == row.id, _rows.state == PLANNED)
        .values(
            state=SENDING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=_rows.attempts + 1,
            updated_at=now,
        )
    )
    return ClaimedMessage(
        id=row.id,
        dedupe_key=row.dedupe_key,
        message_id=row.message_id,
        recipient=row.recipient,
        message=row.message,
        attempts=row.attempts + 1,
    )


def mark_sent(conn: Connection, row_id: int, now: datetime, note: str | None = None) -> bool:
    """The server accepted the message (or a lookup found it): sent. Also from uncertain, since
    what we know now beats what another run guessed about an expired lease."""
    return bool(
        conn.execute(
            update(outgoing_messages)
            .where(_rows.id == row_id, _rows.state.in_((SENDING, UNCERTAIN)))
            .values(
                state=SENT,
                sent_at=now,
                lease_owner=None,
                lease_expires_at=None,
                last_error=note,
                updated_at=now,
            )
        ).rowcount
    )


def _leave_sending(
    conn: Connection, row_id: int, owner: str, now: datetime, state: str, error: str | None, **values: Any
) -> bool:
    return bool(
        conn.execute(
            update(outgoing_messages)
            .where(_rows.id == row_id, _rows.state == SENDING, _rows.lease_owner == owner)
            .values(
                state=state,
                lease_owner=None,
                lease_expires_at=None,
                last_error=None if error is None else error[:4000],
                updated_at=now,
                **values,
            )
        ).rowcount
    )


def mark_retry(
    conn: Connection, row_id: int, owner: str, error: str, now: datetime, next_attempt_at: datetime
) -> bool:
    """Not sent, certainly (refused before the message went, or a 4xx to it): try again later."""
    return _leave_sending(conn, row_id, owner, now, PLANNED, error, next_attempt_at=next_attempt_at)


def mark_dead(conn: Connection, row_id: int, owner: str, error: str, now: datetime) -> bool:
    """Refused for good (5xx), or out of attempts: a person looks at it."""
    return _leave_sending(conn, row_id, owner, now, DEAD, error)


def mark_uncertain(conn: Connection, row_id: int, owner: str, error: str, now: datetime) -> bool:
    """The message went but the answer was lost: the server may hold it. Never re-sent unseen."""
    return _leave_sending(conn, row_id, owner, now, UNCERTAIN, error)


def release(conn: Connection, row_id: int, owner: str, now: datetime, error: str | None = None) -> bool:
    """Hand a claimed row back untried (the transport could not be used): the attempt does not count."""
    return _leave_sending(
        conn, row_id, owner, now, PLANNED, error, attempts=_rows.attempts - 1, next_attempt_at=now
    )


def uncertain(conn: Connection, tenant: str) -> list[ClaimedMessage]:
    """Uncertain rows, for a transport that can look a message up by its Message-ID."""
    rows = conn.execute(
        select(_rows.id, _rows.dedupe_key, _rows.message_id, _rows.recipient, _rows.message, _rows.attempts)
        .where(_rows.tenant == tenant, _rows.state == UNCERTAIN)
        .order_by(_rows.id)
    )
    return [ClaimedMessage(**row._mapping) for row in rows]


def resolve_absent(conn: Connection, row_id: int, now: datetime) -> bool:
    """A lookup answered that no copy exists: the uncertain row may be sent again."""
    return bool(
        conn.execute(
            update(outgoing_messages)
            .where(_rows.id == row_id, _rows.state == UNCERTAIN)
            .values(state=PLANNED, next_attempt_at=now, updated_at=now)
        ).rowcount
    )


def resend(conn: Connection, tenant: str, row_id: int, now: datetime) -> bool:
    """Support decided an uncertain (or dead) message did not arrive: send it again, same Message-ID."""
    return bool(
        conn.execute(
            update(outgoing_messages)
            .where(_rows.tenant == tenant, _rows.id == row_id, _rows.state.in_(DECIDABLE))
            .values(state=PLANNED, attempts=0, next_attempt_at=now, last_error=None, updated_at=now)
        ).rowcount
    )


# States `mail mark-sent` takes: a message found delivered, or one support handled otherwise.
MARKABLE = (*DECIDABLE, PLANNED, UNADDRESSED)


def mark_sent_by_support(conn: Connection, tenant: str, row_id: int, now: datetime, note: str) -> bool:
    """Support found the message delivered (an uncertain one), or handled the request otherwise."""
    return bool(
        conn.execute(
            update(outgoing_messages)
            .where(_rows.tenant == tenant, _rows.id == row_id, _rows.state.in_(MARKABLE))
            .values(state=SENT, sent_at=now, last_error=note, updated_at=now)
        ).rowcount
    )


def expire_leases_of(conn: Connection, owners: Sequence[str], now: datetime) -> int:
    """Rows held by dead runs: their lease ends now, so the next claim makes them uncertain."""
    if not owners:
        return 0
    return conn.execute(
        update(outgoing_messages)
        .where(_rows.state == SENDING, _rows.lease_owner.in_(list(owners)))
        .values(lease_expires_at=now - timedelta(seconds=1), updated_at=now)
    ).rowcount


def list_messages(
    conn: Connection, tenant: str, states: tuple[str, ...] = (), kind: str | None = None
) -> list[dict[str, Any]]:
    """Rows (all, or in `states`), oldest first, with `details` decoded; without the message text."""
    query = select(*[c for c in outgoing_messages.c if c.name != "message"])
    query = query.where(_rows.tenant == tenant)
    if states:
        query = query.where(_rows.state.in_(states))
    if kind is not None:
        query = query.where(_rows.kind == kind)
    out = []
    for row in conn.execute(query.order_by(_rows.id)):
        data = dict(row._mapping)
        data["details"] = json.loads(data.pop("details_json"))
        out.append(data)
    return out


def get(conn: Connection, tenant: str, row_id: int) -> dict[str, Any] | None:
    """One row with its message text, or None."""
    row = conn.execute(select(outgoing_messages).where(_rows.tenant == tenant, _rows.id == row_id)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data["details"] = json.loads(data.pop("details_json"))
    return data


def count_by_state(conn: Connection, tenant: str) -> dict[str, int]:
    """state -> how many rows are in it."""
    rows = conn.execute(select(_rows.state, func.count()).where(_rows.tenant == tenant).group_by(_rows.state))
    return {state: int(count) for state, count in rows}
