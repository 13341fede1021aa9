"""Configuration that can be checked before work starts is checked before work starts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import copy_example, run_cli


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def test_a_missing_customer_map_fails_sync_before_anything_is_pulled(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    example.write_text(text.replace('customers = "examples/customers.toml"', 'customers = "gone.toml"'))
    result = run_cli("sync", "--config", str(example), "--json")
    assert result.code == 2
    assert "mappings.customers" in result.stderr and "gone.toml" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    database = example.parent / "out" / "po-connector.db"
    if database.exists():
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM po_records").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_doctor_names_a_billing_export_that_is_not_there(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    example.write_text(text.replace('path = "examples/billing.csv"', 'path = "examples/missing.csv"'))
    result = run_cli("doctor", "--config", str(example))
    assert result.code == 1
    assert "PROBLEM  billing 'billing' (csv)" in result.stdout
    assert "missing.csv' does not exist" in result.stdout


def test_a_wrong_environment_override_is_blamed_on_the_variable(example: Path) -> None:
    result = run_cli("status", "--config", str(example), env={"PO_CONNECTOR__PUSH__BATCH_SIZE": "lots"})
    assert result.code == 2
    assert "environment PO_CONNECTOR__PUSH__BATCH_SIZE = 'lots' (overrides push.batch_size" in result.stderr
    in_file = example.read_text(encoding="utf-8").replace("batch_size = 50", 'batch_size = "lots"', 1)
    example.write_text(in_file, encoding="utf-8")
    from_file = run_cli("status", "--config", str(example))
    assert from_file.code == 2 and "environment PO_CONNECTOR" not in from_file.stderr
    assert f"config {example}: push.batch_size = 'lots'" in from_file.stderr
