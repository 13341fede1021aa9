"""A sync whose reconcile inputs did not change keeps the stored results instead of reconciling.

Each test runs the CLI on a copy of the example (SQLite state, its inbox, billing and maps).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import EXAMPLE_INVOICES, copy_example, run_cli

STATUSES = ("matched", "mismatch", "ambiguous", "missing_po", "unused_po")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def sync(config: Path, **env: str) -> dict[str, object]:
    result = run_cli("sync", "--config", str(config), "--json", env=env)
    assert result.code == 0, result.stderr
    data: dict[str, object] = result.json()
    return data


def stored_results(config: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(config.parent / "out" / "po-connector.db") as db:
        rows = db.execute(
            "SELECT subject_key, status, reasons_json, coalesce(po_key, '') FROM match_results"
            " ORDER BY subject_key"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_a_sync_with_nothing_changed_keeps_the_results_and_counts_them(example: Path) -> None:
    first = sync(example)
    assert first["invoices_pushed"] == EXAMPLE_INVOICES and "reconcile_unchanged" not in first
    before = stored_results(example)
    again = sync(example)
    assert again["reconcile_unchanged"] == 1
    assert {s: again[s] for s in STATUSES} == {s: first[s] for s in STATUSES}
    assert again["invoices_planned"] == 0 and again["invoices_pushed"] == 0
    assert stored_results(example) == before

    # What the skip stands for: reconciling that state in full plans, withdraws and flags
    # nothing, and gives every period the same outcome.
    full = run_cli("reconcile", "--config", str(example), "--json")
    assert full.code == 0, full.stderr
    data = full.json()
    assert "reconcile_unchanged" not in data
    assert (data["invoices_planned"], data["invoices_withdrawn"], data.get("amended_after_push", 0)) == (
        0,
        0,
        0,
    )
    assert [row[:2] + row[3:] for row in stored_results(example)] == [row[:2] + row[3:] for row in before]


def test_a_changed_billing_row_reconciles_again(example: Path) -> None:
    sync(example)
    billing = example.parent / "examples" / "billing.csv"
    text = billing.read_text(encoding="utf-8")
    # Acme's November seats billed at 45 instead of the PO's 40: no longer a match.
    changed = text.replace(
        "CUST-ACME,Acme Corp,SUB-ACME-PRO,2026-11-01,2026-11-30,PLAN-PRO,Pro plan seats,50,40.00",
        "CUST-ACME,Acme Corp,SUB-ACME-PRO,2026-11-01,2026-11-30,PLAN-PRO,Pro plan seats,50,45.00",
    )
    assert changed != text
    billing.write_text(changed, encoding="utf-8")
    again = sync(example)
    assert "reconcile_unchanged" not in again and again["billing_fetched"] > 0
    assert sync(example)["reconcile_unchanged"] == 1


def test_an_edited_map_or_another_day_reconciles_again(example: Path) -> None:
    sync(example)
    skus = example.parent / "examples" / "skus.toml"
    skus.write_text(skus.read_text(encoding="utf-8") + "\n# reviewed\n", encoding="utf-8")
    assert "reconcile_unchanged" not in sync(example)
    assert sync(example)["reconcile_unchanged"] == 1
    later = sync(example, PO_CONNECTOR__RECONCILE__AS_OF="2026-12-31")
    assert "reconcile_unchanged" not in later  # renewal warnings and due periods depend on the day
    config = example.read_text(encoding="utf-8")
    example.write_text(config.replace('absolute = "0.01"', 'absolute = "0.02"', 1), encoding="utf-8")
    assert "reconcile_unchanged" not in sync(example, PO_CONNECTOR__RECONCILE__AS_OF="2026-12-31")


def test_a_new_po_revision_reconciles_again(example: Path) -> None:
    sync(example)
    inbox = example.parent / "examples" / "inbox"
    acme = next(path for path in sorted(inbox.glob("*.eml")) if "acme" in path.name)
    raw = acme.read_bytes()
    revised = raw.replace(b"Message-ID: <", b"Message-ID: <rev2.", 1)
    assert revised != raw
    # ACME-PO-1001 revised: 700 seats instead of 600, in a later message.
    revised = revised.replace(
        b"ACME-PO-1001,1,PLAN-PRO,Pro plan seat-month,600,",
        b"ACME-PO-1001,1,PLAN-PRO,Pro plan seat-month,700,",
    )
    revised = revised.replace(b"Date: Mon, 05 Jan 2026", b"Date: Tue, 06 Jan 2026")
    (inbox / "acme-revised.eml").write_bytes(revised)
    again = sync(example)
    assert again["pos_changed"] == 1 and "reconcile_unchanged" not in again
    assert sync(example)["reconcile_unchanged"] == 1


def test_a_sink_added_later_gets_the_invoices_already_sent_under_the_same_numbers(example: Path) -> None:
    first = sync(example)
    assert first["invoices_pushed"] == EXAMPLE_INVOICES
    sent = sorted(path.name for path in (example.parent / "out" / "invoices").glob("*.xml"))
    text = example.read_text(encoding="utf-8")
    example.write_text(
        text + '\n[[sinks]]\nname = "archive"\ntype = "ubl-files"\ndirectory = "out/archive"\n',
        encoding="utf-8",
    )
    again = sync(example)
    assert "reconcile_unchanged" not in again  # a new sink is a change of what planning reads
    assert again["invoices_planned"] == EXAMPLE_INVOICES and again["invoices_pushed"] == EXAMPLE_INVOICES
    archived = sorted(path.name for path in (example.parent / "out" / "archive").glob("*.xml"))
    assert archived == sent
    assert sync(example)["reconcile_unchanged"] == 1
