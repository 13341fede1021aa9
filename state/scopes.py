"""The filter that restricts a read or a write to some customers' rows (a scoped reconcile)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, false, or_

# Above this many customers a reconcile reads the whole book: one IN list stays well inside
# every database's parameter limit, and that many changed customers is most of the book anyway.
MAX_SCOPES = 5000


def in_scopes(column: ColumnElement[str | None], scopes: Collection[str]) -> ColumnElement[bool]:
    """`column` names one of `scopes`; the scope '' (no known customer) also matches NULL."""
    if not scopes:
        return false()
    if len(scopes) > MAX_SCOPES:
        raise ValueError(f"{len(scopes)} customers in one scoped read; the limit is {MAX_SCOPES}")
    named = column.in_(sorted(scopes))
    return or_(named, column.is_(None)) if "" in scopes else named
