"""The invoice outbox: one row per invoice plan, the state machine of the exactly-once push.

    planned ──claim──► pushing ──record──► pushed
       ▲  │               │  └─fail──► retry ──claim──► pushing …
       │  │               └─reject──► dead ──replay──► planned
       │  └─(match gone, never sent)──► withdrawn ──(matched again)──► planned
    (lease expired or owner dead: reclaimed, and `uncertain` rows are looked up before a re-send)

A row is created in the same transaction as the match that justifies it, keyed by a UNIQUE
idempotency key, so a re-run finds it instead of planning a second invoice.

One module because it is one state machine: every transition above is a write here, each
guarded by the state it leaves, and they are checked against each other when read together
(what status and reports read of the outbox is in `state.outbox_queries`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, literal_column, or_, select, update

from connector.errors import RemoteError
from connector.model import InvoicePlan, Money, RemoteRef
from state.canonical import canonical_json
from state.key_chunks import chunks
from state.scopes import in_scopes
from state.tables import invoice_outbox

PLANNED, PUSHING, PUSHED, RETRY, DEAD = "planned", "pushing", "pushed", "retry", "dead"


WITHDRAWN = "withdrawn"  # planned, never sent, and no longer justified by a match


STATES = (PLANNED, PUSHING, PUSHED, RETRY, DEAD, WITHDRAWN)

# Rows still waiting to reach their sink: due, being pushed, or waiting for a retry.
UNSENT = (PLANNED, RETRY, PUSHING)


@dataclass(frozen=True)
class OutboxItem:
    """A claimed row: the plan to push, and whether an earlier attempt may have reached the sink."""

    idempotency_key: str
    plan: InvoicePlan
    attempts: int
    uncertain: bool


# Fields added to plans later, hashed only when set: a stored invoice keeps the hash it had.
_HASHED_WHEN_SET = ("document_type", "credits")


def plan_hash(plan: InvoicePlan) -> str:
    data = plan.model_dump(mode="json")
    if not plan.is_credit_note:
        for name in _HASHED_WHEN_SET:
            data.pop(name, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_row(plan: InvoicePlan, now: datetime, digest: str | None = None, **extra: Any) -> dict[str, Any]:
    """The columns of a new outbox row for `plan`, planned now (`digest`: its `plan_hash` when
    known already; `extra`: more columns)."""
    return {
        "idempotency_key": plan.idempotency_key,
        "tenant": plan.tenant,
        "sink": plan.sink,
        "invoice_number": plan.invoice_number,
        "po_key": plan.po_key,
        "po_number": plan.po_number,
        "po_revision": plan.po_revision,
        "billing_key": plan.billing_key,
        "customer_ref": plan.customer_ref,
        "amount": plan.net_total.amount,  # what the invoice draws on its PO: net of tax
        "currency": plan.currency,
        "tax_amount": plan.tax_total.amount,
        "gross_amount": plan.total.amount,
        "plan_json": canonical_json(plan),
        "plan_hash": digest if digest is not None else plan_hash(plan),
        "issue_date": plan.issue_date,
        "state": PLANNED,
        "attempts": 0,
        "next_attempt_at": now,
        "uncertain": False,
        "total_mismatch": False,
        "amended_after_push": False,
        "created_at": now,
        "updated_at": now,
        **extra,
    }


def upsert_plan(conn: Connection, plan: InvoicePlan, now: datetime) -> str:
    """Store a plan once. Returns 'planned', 'unchanged', 'updated' or 'amended'.

    A plan not yet sent is updated in place when its content changed (the sink has nothing yet);
    once anything may have been sent (pushing, pushed, or an uncertain attempt), the row is never
    rewritten: it is flagged `amended_after_push` for a person to review.
    """
    digest = plan_hash(plan)
    existing = conn.execute(
        select(*_STANDING).where(invoice_outbox.c.idempotency_key == plan.idempotency_key)
    ).first()
    if existing is None:
        conn.execute(insert(invoice_outbox), new_row(plan, now, digest))  # one statement, compiled once
        return "planned"
    return _revise(conn, plan, digest, existing, now)


def upsert_plans(conn: Connection, plans: Sequence[InvoicePlan], now: datetime) -> list[str]:
    """`upsert_plan` for each of `plans`, in order, with what each returned: the stored rows
    read a chunk of keys at a time and the new ones inserted together, in the order given."""
    digests = [plan_hash(plan) for plan in plans]
    standing: dict[str, Any] = {}
    for chunk in chunks(list(dict.fromkeys(plan.idempotency_key for plan in plans))):
        rows = conn.execute(select(*_STANDING).where(invoice_outbox.c.idempotency_key.in_(chunk)))
        standing.update((row.idempotency_key, row) for row in rows)
    outcomes: list[str] = []
    fresh: list[dict[str, Any]] = []
    seen: set[str] = set()
    for plan, digest in zip(plans, digests, strict=True):
        key = plan.idempotency_key
        if key in seen:  # a key given twice meets the row its first plan left: read it again
            _insert_all(conn, fresh)
            outcomes.append(upsert_plan(conn, plan, now))
        elif key in standing:
            outcomes.append(_revise(conn, plan, digest, standing[key], now))
        else:
            fresh.append(new_row(plan, now, digest))
            outcomes.append("planned")
        seen.add(key)
    _insert_all(conn, fresh)
    return outcomes


def _insert_all(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(invoice_outbox), rows)
        rows.clear()


# What decides how a stored row takes a plan again.
_STANDING = (
    invoice_outbox.c.id,
    invoice_outbox.c.idempotency_key,
    invoice_outbox.c.state,
    invoice_outbox.c.plan_hash,
    invoice_outbox.c.uncertain,
    invoice_outbox.c.amended_after_push,
)


def _revise(conn: Connection, plan: InvoicePlan, digest: str, existing: Any, now: datetime) -> str:
    """A plan whose row is stored already: planned again, unchanged, amended or updated."""
    total = plan.net_total  # what the invoice draws on its PO: net of tax
    if existing.state == WITHDRAWN:
        conn.execute(
            update(invoice_outbox)
            .where(invoice_outbox.c.id == existing.id)
            .values(
                state=PLANNED,
                next_attempt_at=now,
                po_revision=plan.po_revision,
                amount=total.amount,
                currency=total.currency,
                tax_amount=plan.tax_total.amount,
                gross_amount=plan.total.amount,
                plan_json=canonical_json(plan),
                plan_hash=digest,
                issue_date=plan.issue_date,
                last_error=None,
                updated_at=now,
            )
        )
        return "planned"
    if existing.plan_hash == digest:
        return "unchanged"
    sent_maybe = existing.state in (PUSHING, PUSHED) or existing.uncertain
    if sent_maybe:
        if not existing.amended_after_push:
            conn.execute(
                update(invoice_outbox)
                .where(invoice_outbox.c.id == existing.id)
                .values(
                    amended_after_push=True,
                    amended_detail=f"PO {plan.po_number} or its billing period changed after the invoice "
                    f"was sent; now revision {plan.po_revision}, total {total}",
                    updated_at=now,
                )
            )
            return "amended"
        return "unchanged"
    conn.execute(
        update(invoice_outbox)
        .where(invoice_outbox.c.id == existing.id)
        .values(
            po_revision=plan.po_revision,
            amount=total.amount,
            currency=total.currency,
            tax_amount=plan.tax_total.amount,
            gross_amount=plan.total.amount,
            plan_json=canonical_json(plan),
            plan_hash=digest,
            issue_date=plan.issue_date,
            updated_at=now,
        )
    )
    return "updated"


# What `due` implies, written as the claim-order index's condition is (0011): a planner proves
# a partial index applies from constants, not from bound parameters.
_UNSENT_LITERALLY = invoice_outbox.c.state.in_([literal_column(f"'{state}'") for state in UNSENT])


def claim_due(
    conn: Connection,
    *,
    tenant: str,
    sink: str,
    owner: str,
    now: datetime,
    lease_seconds: int,
    limit: int,
) -> list[OutboxItem]:
    """Claim up to `limit` due rows for `owner`, oldest issue date first (an ERP numbering
    invoices from a sequence refuses one dated before an invoice it numbered), then in planning
    order; PostgreSQL skips rows other claimers hold."""
    due = or_(
        and_(invoice_outbox.c.state.in_((PLANNED, RETRY)), invoice_outbox.c.next_attempt_at <= now),
        and_(invoice_outbox.c.state == PUSHING, invoice_outbox.c.lease_expires_at < now),
    )
    query = (
        select(
            invoice_outbox.c.id,
            invoice_outbox.c.idempotency_key,
            invoice_outbox.c.plan_json,
            invoice_outbox.c.attempts,
            invoice_outbox.c.state,
            invoice_outbox.c.uncertain,
        )
        .where(invoice_outbox.c.tenant == tenant, invoice_outbox.c.sink == sink, _UNSENT_LITERALLY, due)
        .order_by(invoice_outbox.c.issue_date.nulls_first(), invoice_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if not rows:
        return []
    conn.execute(
        update(invoice_outbox)
        .where(invoice_outbox.c.id.in_([row.id for row in rows]))
        .values(
            state=PUSHING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=invoice_outbox.c.attempts + 1,
            # A row reclaimed from `pushing` may have reached the sink before its owner died.
            uncertain=or_(invoice_outbox.c.uncertain, invoice_outbox.c.state == PUSHING),
            updated_at=now,
        )
    )
    return [
        OutboxItem(
            idempotency_key=row.idempotency_key,
            plan=InvoicePlan.model_validate_json(row.plan_json),
            attempts=row.attempts + 1,
            uncertain=bool(row.uncertain) or row.state == PUSHING,
        )
        for row in rows
    ]


def _differs(row: Any, total: Money | None, tax: Money | None) -> bool:
    """True when the sink holds another gross total or another tax than planned, to the cent."""
    planned_gross = row.gross_amount if row.gross_amount is not None else row.amount
    if total is not None and (total.amount != planned_gross or total.currency != row.currency):
        return True
    return (
        tax is not None
        and row.tax_amount is not None
        and (tax.amount != row.tax_amount or tax.currency != row.currency)
    )


_PLANNED = (
    invoice_outbox.c.amount,
    invoice_outbox.c.gross_amount,
    invoice_outbox.c.tax_amount,
    invoice_outbox.c.currency,
    invoice_outbox.c.state,
)


def mark_pushed(conn: Connection, key: str, owner: str, ref: RemoteRef, now: datetime) -> bool:
    """Record success. Compares the gross total and tax the sink reports with the plan (read-after-write)."""
    row = conn.execute(select(*_PLANNED).where(invoice_outbox.c.idempotency_key == key)).first()
    if row is None:
        return False
    conn.execute(
        _BY_KEY,
        {
            "row_key": key,
            "state": PUSHED,
            "remote_id": ref.remote_id,
            "remote_total": ref.total.amount if ref.total is not None else None,
            "remote_tax": ref.tax.amount if ref.tax is not None else None,
            "total_mismatch": _differs(row, ref.total, ref.tax),
            "correlation_id": ref.correlation_id or None,
            "pushed_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            "uncertain": False,
            "last_error": None,
            "updated_at": now,
        },
    )
    return True


# An update of one row by its key, the columns set given as parameters: one statement for
# every row, compiled once (a statement with its values built in costs a compile per call).
_BY_KEY = update(invoice_outbox).where(invoice_outbox.c.idempotency_key == bindparam("row_key"))


def record_remote_total(
    conn: Connection, key: str, total: Money, now: datetime, tax: Money | None = None
) -> bool:
    """Store the total (and tax) a sink reports after the fact; True when either differs from the plan."""
    row = conn.execute(select(*_PLANNED).where(invoice_outbox.c.idempotency_key == key)).first()
    if row is None:
        return False
    mismatch = _differs(row, total, tax)
    conn.execute(
        update(invoice_outbox)
        .where(invoice_outbox.c.idempotency_key == key)
        .values(
            remote_total=total.amount,
            remote_tax=tax.amount if tax is not None else None,
            total_mismatch=mismatch,
            updated_at=now,
        )
    )
    return mismatch


def mark_failed(
    conn: Connection,
    key: str,
    owner: str,
    error: RemoteError,
    now: datetime,
    *,
    dead: bool,
    next_attempt_at: datetime | None = None,
    uncertain: bool = False,
) -> None:
    """Record a failed attempt: `dead` for rejected, else `retry` at `next_attempt_at`.

    `uncertain` says whether the sink may hold the invoice after this attempt; the pusher clears
    it only after a lookup answered that the invoice is not there.
    """
    conn.execute(
        update(invoice_outbox)
        .where(
            invoice_outbox.c.idempotency_key == key,
            invoice_outbox.c.state == PUSHING,
            invoice_outbox.c.lease_owner == owner,
        )
        .values(
            state=DEAD if dead else RETRY,
            next_attempt_at=next_attempt_at or now,
            last_error=str(error)[:4000],
            provider_code=error.provider_code or (str(error.status) if error.status else None),
            correlation_id=error.correlation_id or None,
            lease_owner=None,
            lease_expires_at=None,
            uncertain=uncertain,
            updated_at=now,
        )
    )


def release(conn: Connection, keys: Iterable[str], owner: str, now: datetime, *, sent: bool = False) -> None:
    """Hand back claimed rows; `sent` when a request for them may already have left."""
    values: dict[str, object] = {
        "state": RETRY,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": now,
        "updated_at": now,
    }
    if sent:
        values["uncertain"] = True
    conn.execute(
        update(invoice_outbox)
        .where(
            invoice_outbox.c.idempotency_key.in_(list(keys)),
            invoice_outbox.c.lease_owner == owner,
            invoice_outbox.c.state == PUSHING,
        )
        .values(**values)
    )


def still_held(conn: Connection, keys: Sequence[str], owner: str, now: datetime) -> set[str]:
    """The keys still claimed by `owner` with an unexpired claim: only these may be sent."""
    if not keys:
        return set()
    rows = conn.execute(
        select(invoice_outbox.c.idempotency_key).where(
            invoice_outbox.c.idempotency_key.in_(list(keys)),
            invoice_outbox.c.lease_owner == owner,
            invoice_outbox.c.state == PUSHING,
            invoice_outbox.c.lease_expires_at > now,
        )
    )
    return {row.idempotency_key for row in rows}


def withdraw_unjustified(
    conn: Connection,
    tenant: str,
    keep: set[str],
    now: datetime,
    why: str,
    customers: Collection[str] | None = None,
) -> list[str]:
    """Withdraw planned invoices never sent whose match is gone (not in `keep`); credit notes
    are kept: they were asked for, not matched. With `customers`, only their invoices."""
    query = select(invoice_outbox.c.idempotency_key).where(
        invoice_outbox.c.tenant == tenant,
        invoice_outbox.c.state.in_((PLANNED, RETRY, DEAD)),
        invoice_outbox.c.uncertain.is_(False),
        invoice_outbox.c.document_type == "invoice",  # a credit note is justified by support
    )
    if customers is not None:
        query = query.where(in_scopes(invoice_outbox.c.customer_ref, customers))
    rows = conn.execute(query).all()
    gone = [row.idempotency_key for row in rows if row.idempotency_key not in keep]
    for chunk in chunks(gone):
        conn.execute(
            update(invoice_outbox)
            .where(invoice_outbox.c.idempotency_key.in_(chunk))
            .values(state=WITHDRAWN, last_error=why, updated_at=now)
        )
    return gone


def expire_leases_of(conn: Connection, owners: Sequence[str], now: datetime) -> int:
    """Make rows held by dead runs claimable at once."""
    if not owners:
        return 0
    return conn.execute(
        update(invoice_outbox)
        .where(invoice_outbox.c.state == PUSHING, invoice_outbox.c.lease_owner.in_(list(owners)))
        .values(lease_expires_at=now - timedelta(seconds=1), updated_at=now)
    ).rowcount


def replay(
    conn: Connection, tenant: str, now: datetime, *, keys: Sequence[str] = (), dead: bool = False
) -> list[str]:
    """Put dead (or named) rows back to `planned`; an uncertain row stays uncertain."""
    query = select(invoice_outbox.c.idempotency_key, invoice_outbox.c.state).where(
        invoice_outbox.c.tenant == tenant
    )
    conditions = []
    if dead:
        conditions.append(invoice_outbox.c.state == DEAD)
    if keys:
        conditions.append(
            or_(
                invoice_outbox.c.idempotency_key.in_(list(keys)),
                invoice_outbox.c.invoice_number.in_(list(keys)),
            )
        )
    if not conditions:
        return []
    rows = conn.execute(query.where(or_(*conditions))).all()
    chosen = [row.idempotency_key for row in rows if row.state in (DEAD, RETRY)]
    for chunk in chunks(chosen):
        conn.execute(
            update(invoice_outbox)
            .where(invoice_outbox.c.idempotency_key.in_(chunk))
            .values(state=PLANNED, attempts=0, next_attempt_at=now, last_error=None, updated_at=now)
        )
    return chosen
