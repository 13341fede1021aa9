"""Billing periods in the state: stored by key with their content hash, a batch at a time, and loaded."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from connector.model import BillingPeriod
from state.canonical import canonical_json, content_hash
from state.key_chunks import chunks
from state.scopes import in_scopes
from state.tables import (
    billing_records,
)


def store_billing_periods(conn: Connection, periods: Iterable[BillingPeriod], now: datetime) -> list[str]:
    """Insert or update billing periods by key, a batch at a time; 'new', 'changed' or
    'unchanged' for each, in order. One query reads the stored hashes of up to 500 keys; new and
    changed periods are written with executemany, unchanged ones only get `last_seen_at`."""
    outcomes: list[str] = []
    batch = list(periods)
    for chunk in chunks(batch):
        outcomes.extend(_store_chunk(conn, list(chunk), now))
    return outcomes


def _store_chunk(conn: Connection, periods: list[BillingPeriod], now: datetime) -> list[str]:
    tenants = {period.tenant for period in periods}
    stored: dict[tuple[str, str], tuple[int, str]] = {}
    for tenant in tenants:
        keys = [period.key for period in periods if period.tenant == tenant]
        rows = conn.execute(
            select(billing_records.c.id, billing_records.c.billing_key, billing_records.c.content_hash).where(
                billing_records.c.tenant == tenant, billing_records.c.billing_key.in_(keys)
            )
        )
        stored.update({(tenant, row.billing_key): (row.id, row.content_hash) for row in rows})
    inserts: dict[tuple[str, str], dict[str, Any]] = {}
    updates: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    outcomes = []
    for period in periods:
        digest = content_hash(period, ignore=frozenset())
        values = {
            "customer_ref": period.customer_ref,
            "period_start": period.period_start,
            "period_end": period.period_end,
            "content_hash": digest,
            "canonical_json": canonical_json(period),
            "last_seen_at": now,
        }
        where = (period.tenant, period.key)
        known = stored.get(where)
        if known is None:
            inserts[where] = {
                "tenant": period.tenant,
                "billing_source": period.billing_source,
                "billing_key": period.key,
                "first_seen_at": now,
                **values,
            }
            stored[where] = (-1, digest)  # a second copy in the batch is this one again
            outcomes.append("new")
            continue
        record_id, old_digest = known
        if record_id == -1:  # the same key twice in one batch: the later copy wins
            outcomes.append("unchanged" if inserts[where]["content_hash"] == digest else "changed")
            inserts[where].update(values)
            continue
        if old_digest == digest and record_id not in updates:
            seen.add(record_id)
            outcomes.append("unchanged")
            continue
        updates[record_id] = {"record_id": record_id, **values}
        seen.discard(record_id)
        outcomes.append("unchanged" if old_digest == digest else "changed")
    if inserts:
        conn.execute(insert(billing_records), list(inserts.values()))
    if updates:
        conn.execute(
            update(billing_records)
            .where(billing_records.c.id == bindparam("record_id"))
            .values({name: bindparam(name) for name in next(iter(updates.values())) if name != "record_id"}),
            list(updates.values()),
        )
    if seen:
        conn.execute(update(billing_records).where(billing_records.c.id.in_(seen)).values(last_seen_at=now))
    return outcomes


def store_billing_period(conn: Connection, period: BillingPeriod, now: datetime) -> str:
    """Insert or update one billing period by key; returns 'new', 'changed' or 'unchanged'."""
    return store_billing_periods(conn, [period], now)[0]


def load_billing_periods(
    conn: Connection, tenant: str, customers: Collection[str] | None = None
) -> list[BillingPeriod]:
    """The tenant's billing periods (only those of `customers`, when given) in storage order."""
    query = select(billing_records.c.canonical_json).where(billing_records.c.tenant == tenant)
    if customers is not None:
        query = query.where(in_scopes(billing_records.c.customer_ref, customers))
    rows = conn.execute(query.order_by(billing_records.c.id))
    return [BillingPeriod.model_validate_json(row.canonical_json) for row in rows]
