"""A migrated state database on SQLite or on the machine's PostgreSQL, for the state tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

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
