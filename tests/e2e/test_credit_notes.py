"""`credit`: a credit note for the revised PO's invoice in the bundled example, through the CLI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.support.cli import EXAMPLE_INVOICES, copy_example, run_cli
from tests.support.einvoice import assert_passes_rules
from tests.support.shared import shared_fixture

REVISED_PO = "4500012399"  # Globex's SSO order, at revision 2 after its change order (globex-aenderung)
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    config = copy_example(tmp_path)
    assert run_cli("sync", "--config", str(config), "-q").code == 0
    return config


def files(config: Path, prefix: str) -> list[Path]:
    return sorted((config.parent / "out" / "invoices").glob(f"{prefix}-*.xml"))


def report(config: Path) -> dict[str, Any]:
    result = run_cli("report", "--config", str(config), "--format", "json")
    assert result.code == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


def revised_row(config: Path) -> dict[str, Any]:
    """The revised PO's billing period (after a credit without a reissue its PO is also listed
    as unused: its whole balance is back)."""
    rows = [row for row in report(config)["rows"] if row["po_number"] == REVISED_PO and row["subject"]]
    rows = [row for row in rows if row["status"] == "matched"]
    assert len(rows) == 1
    return rows[0]


def balance(config: Path) -> dict[str, str]:
    found: list[dict[str, str]] = [b for b in report(config)["balances"] if b["po_number"] == REVISED_PO]
    return found[0]


def credit(config: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli("credit", *args, "--config", str(config), "--json", "-q", env=env)


def test_credit_writes_one_credit_note_that_passes_the_rules_and_gives_the_balance_back(
    example: Path,
) -> None:
    invoice = revised_row(example)["invoice_number"]
    assert balance(example)["consumed"] == "100.00"

    result = credit(example, invoice, "--reason", "annual seats invoiced before the PO change")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["credit_notes_planned"] == 1 and summary["invoices_pushed"] == 1
    [note] = files(example, "CN")
    assert summary["credit_notes"] == [{"sink": "files", "invoice": invoice, "credit_note": note.stem}]

    document = note.read_bytes()
    schema = etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"))))
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    assert_passes_rules(document)
    assert root.findtext("cbc:CreditNoteTypeCode", namespaces=NS) == "381"
    assert root.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", namespaces=NS) == invoice
    assert root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == "100.00"

    assert balance(example)["consumed"] == "0.00"
    row = revised_row(example)
    assert row["invoice_state"] == "credited"
    assert [doc["number"] for doc in row["documents"]] == [invoice, note.stem]
    assert any(warning["code"] == "credited" for warning in row["warnings"])
    assert len(files(example, "INV")) == EXAMPLE_INVOICES


def test_crediting_twice_and_syncing_again_send_nothing_more(example: Path) -> None:
    invoice = revised_row(example)["invoice_number"]
    assert credit(example, invoice, "--reason", "wrong seats").code == 0
    before = {p.name: p.read_bytes() for p in files(example, "*")}
    again = credit(example, invoice, "--reason", "asked twice")
    assert again.code == 0, again.stderr
    assert again.json()["credit_notes_planned"] == 0 and again.json()["invoices_pushed"] == 0
    synced = run_cli("sync", "--config", str(example), "--json")
    assert (
        synced.code == 0 and synced.json()["invoices_planned"] == 0 and synced.json()["invoices_pushed"] == 0
    )
    assert {p.name: p.read_bytes() for p in files(example, "*")} == before
    assert balance(example)["consumed"] == "0.00"  # credited without a reissue: settled


def test_reissue_invoices_the_period_again_under_a_new_number(example: Path) -> None:
    invoice = revised_row(example)["invoice_number"]
    result = credit(example, invoice, "--reason", "PO changed", "--reissue")
    assert result.code == 0, result.stderr
    assert result.json()["invoices_planned"] == 1 and result.json()["invoices_pushed"] == 2
    row = revised_row(example)
    reissued = row["invoice_number"]
    assert reissued != invoice and row["invoice_state"] == "pushed"
    assert [doc["number"] for doc in row["documents"]] == [invoice, files(example, "CN")[0].stem, reissued]
    assert balance(example)["consumed"] == "100.00"  # the reissue draws what the credit gave back
    assert len(files(example, "INV")) == EXAMPLE_INVOICES + 1
    synced = run_cli("sync", "--config", str(example), "--json")
    assert (
        synced.code == 0 and synced.json()["invoices_planned"] == 0 and synced.json()["invoices_pushed"] == 0
    )


def test_crash_after_the_credit_note_is_written_is_recovered_without_a_second(example: Path) -> None:
    invoice = revised_row(example)["invoice_number"]
    crashed = credit(
        example, invoice, "--reason", "PO changed", env={"PO_CONNECTOR_CRASH_AT": "after-remote-create"}
    )
    assert crashed.code == 137
    assert len(files(example, "CN")) == 1  # written; its outbox row still says "pushing"
    recovered = run_cli("push", "--config", str(example), "--json")
    assert recovered.code == 0, recovered.stderr
    assert recovered.json()["invoices_existing"] == 1 and recovered.json()["invoices_pushed"] == 0
    assert len(files(example, "CN")) == 1
    status = run_cli("status", "--config", str(example), "--json").json()
    assert status["sinks"][0]["outbox"] == {"pushed": EXAMPLE_INVOICES + 1}


def test_credit_refuses_what_it_cannot_credit(example: Path) -> None:
    unknown = credit(example, "INV-000000000000", "--reason", "x")
    assert unknown.code == 2 and "no invoice 'INV-000000000000'" in unknown.stderr
    invoice = revised_row(example)["invoice_number"]
    assert credit(example, invoice, "--reason", "PO changed").code == 0
    note = files(example, "CN")[0].stem
    of_a_credit = credit(example, note, "--reason", "x")
    assert of_a_credit.code == 2 and "is a credit note" in of_a_credit.stderr
    blank = credit(example, invoice, "--reason", "  ")
    assert blank.code == 2 and "--reason" in blank.stderr


def _bill_acme_october_at(config: Path, seats: int) -> None:
    billing = config.parent / "examples" / "billing.csv"
    old = (
        "SUB-ACME-PRO,2026-10-01,2026-10-31,PLAN-PRO,Pro plan seats,50,40.00,USD,ACME-PO-1001,"
        "2026-10-01,S,8.875,177.50"
    )
    tax = str((Decimal(seats * 40) * Decimal("0.08875")).quantize(Decimal("0.01")))
    new = old.replace(",50,", f",{seats},").replace(",177.50", f",{tax}")
    text = billing.read_text(encoding="utf-8")
    assert old in text
    billing.write_text(text.replace(old, new), encoding="utf-8")


def test_an_amended_invoice_is_flagged_by_default(example: Path) -> None:
    _bill_acme_october_at(example, 45)
    synced = run_cli("sync", "--config", str(example), "--json")
    assert synced.code == 0, synced.stderr
    assert synced.json()["amended_after_push"] == 1
    assert files(example, "CN") == []


def test_credit_and_reissue_policy_corrects_an_amended_invoice_in_one_sync(example: Path) -> None:
    config = example.read_text(encoding="utf-8")
    policy = config.replace('on_amended = "flag"', 'on_amended = "credit_and_reissue"')
    assert policy != config
    example.write_text(policy, encoding="utf-8")
    _bill_acme_october_at(example, 45)
    synced = run_cli("sync", "--config", str(example), "--json")
    assert synced.code == 0, synced.stderr
    summary = synced.json()
    assert summary["invoices_credited"] == 1 and summary.get("amended_after_push", 0) == 0
    [note] = files(example, "CN")
    assert_passes_rules(note.read_bytes())
    assert len(files(example, "INV")) == EXAMPLE_INVOICES + 1
    october = [row for row in report(example)["rows"] if row["subject"].endswith("SUB-ACME-PRO/2026-10-01")]
    assert [row["net"] for row in october] == ["1800.00"]
    assert [doc["document_type"] for doc in october[0]["documents"]] == ["invoice", "credit_note", "invoice"]
    again = run_cli("sync", "--config", str(example), "--json")
    assert (
        again.code == 0
        and again.json()["invoices_pushed"] == 0
        and again.json().get("invoices_credited", 0) == 0
    )
