"""The same Alembic migrations build and upgrade the state on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from state.db import current_revision, head_revision, make_engine, upgrade
from state.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return make_engine(url)


def _columns(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {table: {c["name"] for c in inspector.get_columns(table)} for table in inspector.get_table_names()}


def test_empty_database_upgrades_to_head_matching_the_table_definitions(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    columns = _columns(empty_engine)
    for table in metadata.sorted_tables:
        assert columns[table.name] == {c.name for c in table.columns}, table.name


def test_database_at_the_first_revision_upgrades_to_head(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0001")
    assert current_revision(empty_engine) == "0001"
    assert "lease_name" not in _columns(empty_engine)["runs"]
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert "lease_name" in _columns(empty_engine)["runs"]
    indexes = {i["name"] for i in inspect(empty_engine).get_indexes("quarantine")}
    assert "ix_quarantine_open" in indexes
    outbox_indexes = {i["name"] for i in inspect(empty_engine).get_indexes("invoice_outbox")}
    assert "ix_invoice_outbox_claim" in outbox_indexes


def test_upgrade_is_idempotent(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
