"""Quarantined input: each bad record with its file, row, field and value, until retried or discarded."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select, update

from connector.errors import InputProblem
from state.tables import (
    quarantine,
)


def _fingerprint(source: str, problem: InputProblem) -> str:
    text = "|".join(
        (source, problem.document, problem.location, problem.field, problem.value, problem.reason)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def quarantine_problems(
    conn: Connection,
    tenant: str,
    source: str,
    problems: Iterable[InputProblem],
    now: datetime,
    run_id: str | None,
    input_key: str | None = None,
) -> int:
    """Store rejected inputs; the same problem seen again only refreshes `last_seen_at`.

    Returns how many problems are new.
    """
    new = 0
    for problem in problems:
        fingerprint = _fingerprint(source, problem)
        changed = conn.execute(
            update(quarantine)
            .where(quarantine.c.tenant == tenant, quarantine.c.fingerprint == fingerprint)
            # A retried problem that is still there is open again; a discarded one stays discarded.
            .values(
                last_seen_at=now,
                run_id=run_id,
                status=case((quarantine.c.status == "retried", "open"), else_=quarantine.c.status),
            )
        ).rowcount
        if changed:
            continue
        conn.execute(
            insert(quarantine).values(
                tenant=tenant,
                source=source,
                fingerprint=fingerprint,
                input_key=input_key,
                document=problem.document,
                location=problem.location,
                field=problem.field,
                value=problem.value[:2000],
                reason=problem.reason,
                status="open",
                first_seen_at=now,
                last_seen_at=now,
                run_id=run_id,
            )
        )
        new += 1
    return new


def list_quarantine(conn: Connection, tenant: str, status: str | None = "open") -> list[dict[str, Any]]:
    query = select(quarantine).where(quarantine.c.tenant == tenant)
    if status:
        query = query.where(quarantine.c.status == status)
    return [dict(row._mapping) for row in conn.execute(query.order_by(quarantine.c.id))]


def set_quarantine_status(
    conn: Connection, tenant: str, ids: Iterable[int], status: str
) -> list[dict[str, Any]]:
    """Change the status of quarantine rows; returns the rows as they were."""
    id_list = list(ids)
    rows = [
        dict(row._mapping)
        for row in conn.execute(
            select(quarantine).where(and_(quarantine.c.tenant == tenant, quarantine.c.id.in_(id_list)))
        )
    ]
    conn.execute(
        update(quarantine)
        .where(and_(quarantine.c.tenant == tenant, quarantine.c.id.in_(id_list)))
        .values(status=status)
    )
    return rows


def count_quarantine(conn: Connection, tenant: str) -> dict[str, int]:
    rows = conn.execute(
        select(quarantine.c.source, func.count())
        .where(quarantine.c.tenant == tenant, quarantine.c.status == "open")
        .group_by(quarantine.c.source)
    )
    return {row[0]: int(row[1]) for row in rows}
