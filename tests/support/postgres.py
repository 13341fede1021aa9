"""A fresh PostgreSQL database per test session on the machine's server (127.0.0.1:5432, trust)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.shared import require_service

ADMIN_URL = os.environ.get("PO_CONNECTOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _connect(url: str) -> object | None:
    try:
        import psycopg
    except ImportError:
        return None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Admin URL of a reachable server; skips (fails under CI) when there is none."""
    conn = _connect(ADMIN_URL)
    require_service(conn is not None, f"PostgreSQL is not reachable at {ADMIN_URL} (start it: see .ci/run)")
    conn.close()  # type: ignore[union-attr]
    yield ADMIN_URL


@pytest.fixture(scope="session")
def postgres_factory(postgres_server: str) -> Iterator[object]:
    """Creates throw-away databases; every one is dropped at the end of the session."""
    created: list[str] = []
    base = postgres_server.rsplit("/", 1)[0]

    def create() -> str:
        name = f"po_connector_test_{uuid.uuid4().hex[:12]}"
        conn = _connect(postgres_server)
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[union-attr]
        conn.close()  # type: ignore[union-attr]
        created.append(name)
        return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"

    yield create
    conn = _connect(postgres_server)
    if conn is not None:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


@pytest.fixture
def postgres_url(postgres_factory: object) -> str:
    """A fresh, empty database for one test."""
    return postgres_factory()  # type: ignore[operator]
