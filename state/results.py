"""Stored reconciliation results: one row per billing period, or per PO no period used."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select

from connector.model import MatchResult
from state.scopes import in_scopes
from state.tables import match_results


def replace_results(
    conn: Connection,
    tenant: str,
    results: Sequence[MatchResult],
    periods: dict[str, tuple[date, date]],
    now: datetime,
    run_id: str | None,
    customers: Collection[str] | None = None,
) -> None:
    """Replace the tenant's results (those of `customers`, when given: '' for the POs of no
    known customer) with a fresh reconciliation, in the caller's transaction."""
    stale = delete(match_results).where(match_results.c.tenant == tenant)
    if customers is not None:
        stale = stale.where(in_scopes(match_results.c.customer_ref, customers))
    conn.execute(stale)
    rows = []
    for result in results:
        span = periods.get(result.billing_key or "")
        rows.append(
            {
                "tenant": tenant,
                "subject_key": result.subject_key,
                "status": result.status.value,
                "reasons_json": json.dumps([r.model_dump() for r in result.reasons]),
                "warnings_json": json.dumps([r.model_dump() for r in result.warnings]),
                "billing_key": result.billing_key,
                "po_key": result.po_key,
                "po_number": result.po_number,
                "customer_ref": result.customer_ref,
                "amount": result.amount.amount if result.amount else None,
                "currency": result.amount.currency if result.amount else None,
                "period_start": span[0] if span else None,
                "period_end": span[1] if span else None,
                "computed_at": now,
                "run_id": run_id,
            }
        )
    if rows:
        conn.execute(insert(match_results), rows)


def load_results(
    conn: Connection, tenant: str, customers: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Stored results (only those of `customers`, when given) as dicts with `reasons` and
    `warnings` decoded, ordered by subject."""
    query = select(match_results).where(match_results.c.tenant == tenant)
    if customers is not None:
        query = query.where(in_scopes(match_results.c.customer_ref, customers))
    out = []
    # Sorted here, not by the query: an ORDER BY subject would have the planner walk the
    # subject index over every result rather than read the customers' own by theirs.
    for row in conn.execute(query):
        data = dict(row._mapping)
        data["reasons"] = json.loads(data.pop("reasons_json"))
        data["warnings"] = json.loads(data.pop("warnings_json"))
        out.append(data)
    return sorted(out, key=lambda data: data["subject_key"])


def warned(conn: Connection, tenant: str) -> Iterator[tuple[str | None, str, list[dict[str, Any]]]]:
    """(PO number, subject, warnings) of each stored result with warnings, by subject: the few
    a renewal view needs, without reading every result."""
    c = match_results.c
    rows = conn.execute(
        select(c.po_number, c.subject_key, c.warnings_json)
        .where(c.tenant == tenant, c.warnings_json != _NO_WARNINGS)
        .order_by(c.subject_key)
    )
    for po_number, subject, warnings in rows:
        yield po_number, subject, json.loads(warnings)


_NO_WARNINGS = json.dumps([])


def customers_with(conn: Connection, tenant: str, status: str, warning_code: str) -> list[str]:
    """The customers ('' for none) with a stored result of `status`, or one that may carry a
    warning coded `warning_code` (a text match on the stored warnings: it may include a few
    more, never fewer), sorted."""
    c = match_results.c
    rows = conn.execute(
        select(func.coalesce(c.customer_ref, ""))
        .where(c.tenant == tenant, or_(c.status == status, c.warnings_json.contains(warning_code)))
        .distinct()
    )
    return sorted(customer for (customer,) in rows)


def count_by_status(conn: Connection, tenant: str) -> dict[str, int]:
    """status -> how many stored results have it."""
    rows = conn.execute(
        select(match_results.c.status, func.count())
        .where(match_results.c.tenant == tenant)
        .group_by(match_results.c.status)
    )
    return {status: int(count) for status, count in rows}
