"""A migrated state database on SQLite or on the machine's PostgreSQL, for the state tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from state.db import ensure_schema, make_engine

DATABASES = ["sqlite", "postgresql"]


def migrated_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh database at the head revision: a file under `tmp_path` for
    `request.param == "sqlite"`, else a new PostgreSQL database; disposed after the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def query_plans(engine: Engine, action: Callable[[], object], *marks: str) -> list[str]:
    """SQLite's plan (its steps joined by ' / ') of each statement `action` runs that holds
    every one of `marks`."""
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not executemany and all(mark in statement for mark in marks):
            statements.append((statement, parameters))

    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as conn:
        return [
            " / ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            for statement, parameters in statements
        ]
