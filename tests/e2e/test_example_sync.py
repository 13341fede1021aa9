"""The bundled example end to end, through the CLI as cron and support staff run it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from tests.support.cli import EXAMPLE_INVOICES, copy_example, run_cli
from tests.support.shared import shared_fixture


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def invoices(config: Path) -> list[Path]:
    return sorted((config.parent / "out" / "invoices").glob("*.xml"))


def test_first_sync_pushes_matches_and_reports_every_outcome(example: Path) -> None:
    result = run_cli("sync", "--config", str(example), "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["invoices_pushed"] >= 3
    assert summary["mismatch"] >= 1
    assert summary["missing_po"] >= 1
    assert summary["unused_po"] >= 1
    assert summary["quarantined"] >= 1
    assert summary["invoices_waiting"] == 0
    for key in (
        "run_id",
        "pos_fetched",
        "pos_changed",
        "billing_fetched",
        "matched",
        "invoices_planned",
        "invoices_existing",
        "invoices_failed",
        "dead",
    ):
        assert key in summary
    assert len(invoices(example)) == summary["invoices_pushed"]


def test_second_sync_pushes_nothing_and_writes_no_file(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "--json").code == 0
    before = {p.name: p.read_bytes() for p in invoices(example)}
    again = run_cli("sync", "--config", str(example), "--json")
    assert again.code == 0, again.stderr
    assert again.json()["invoices_pushed"] == 0
    assert again.json()["invoices_planned"] == 0
    assert {p.name: p.read_bytes() for p in invoices(example)} == before


def test_every_invoice_file_is_valid_ubl_21(example: Path) -> None:
    schema = etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"))))
    assert run_cli("sync", "--config", str(example)).code == 0
    files = invoices(example)
    assert files
    for path in files:
        document = etree.parse(str(path))
        assert schema.validate(document), (path.name, schema.error_log)
        ns = {
            "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
            "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
        }
        # Each names its PO, or (a customer that issues none) the buyer's reference.
        po = document.find("cac:OrderReference", ns)
        assert po is not None or document.findtext("cbc:BuyerReference", namespaces=ns) == "HOOLI-AP-200"
    without_po = [p for p in files if etree.parse(str(p)).find("{*}OrderReference") is None]
    assert len(without_po) == 1


def test_crash_after_invoice_written_before_recorded_is_recovered_without_duplicate(example: Path) -> None:
    crashed = run_cli(
        "sync", "--config", str(example), "--json", env={"PO_CONNECTOR_CRASH_AT": "after-remote-create"}
    )
    assert crashed.code == 137
    written = invoices(example)
    # The files of the first batch exist (one call wrote them); their rows still say "pushing".
    assert 1 <= len(written) <= EXAMPLE_INVOICES

    recovered = run_cli("sync", "--config", str(example), "--json")
    assert recovered.code == 0, recovered.stderr
    summary = recovered.json()
    assert summary["invoices_existing"] == len(written)  # found by lookup, not written again
    assert summary["invoices_pushed"] == EXAMPLE_INVOICES - len(written)
    names = [p.name for p in invoices(example)]
    assert len(names) == len(set(names)) == EXAMPLE_INVOICES
    status = run_cli("status", "--config", str(example), "--json").json()
    assert status["sinks"][0]["outbox"] == {"pushed": EXAMPLE_INVOICES}


def test_inspect_prints_canonical_pos_as_json_lines(example: Path) -> None:
    message = example.parent / "examples" / "inbox" / "acme-purchase-orders.eml"
    result = run_cli("inspect", str(message), "--config", str(example))
    assert result.code == 0, result.stderr
    pos = [json.loads(line) for line in result.stdout.splitlines()]
    assert {po["po_number"] for po in pos} == {"ACME-PO-1001", "ACME-PO-1002", "ACME-PO-1003"}
    assert pos[0]["lines"][0]["unit_price"] == {"amount": "40.00", "currency": "USD"}


def test_inspect_of_a_broken_file_exits_1_naming_row_and_column(example: Path) -> None:
    message = example.parent / "examples" / "inbox" / "initech-po.eml"
    result = run_cli("inspect", str(message), "--config", str(example))
    assert result.code == 1
    assert "row 4" in result.stderr
    assert "Quantity" in result.stderr and "'ten'" in result.stderr
    assert "INI-7781" not in result.stdout  # held whole: no PO without its refused line


def test_report_json_shows_all_five_statuses_with_reasons(example: Path) -> None:
    assert run_cli("sync", "--config", str(example)).code == 0
    result = run_cli("report", "--config", str(example), "--format", "json")
    assert result.code == 0, result.stderr
    report = result.json()
    statuses = {row["status"] for row in report["rows"]}
    assert statuses == {"matched", "mismatch", "missing_po", "unused_po", "ambiguous"}
    for row in report["rows"]:
        if row["status"] != "matched":
            assert row["reasons"], row
            assert all(reason["code"] and reason["detail"] for reason in row["reasons"])
    counted = sum(data["count"] for data in report["summary"].values())
    assert counted == len(report["rows"])


def test_html_report_is_self_contained(example: Path, tmp_path: Path) -> None:
    assert run_cli("sync", "--config", str(example)).code == 0
    out = tmp_path / "report.html"
    assert run_cli("report", "--config", str(example), "--format", "html", "--out", str(out)).code == 0
    page = out.read_text(encoding="utf-8")
    assert "<table" in page and "price_differs" in page
    for needle in ("http://", "https://", "<script", "<link", "src="):
        assert needle not in page


def test_bad_config_exits_2_naming_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[state]\nlease_seconds = "soon"\n', encoding="utf-8")
    result = run_cli("sync", "--config", str(config))
    assert result.code == 2
    assert "state.lease_seconds" in result.stderr and "soon" in result.stderr


def test_inline_secret_in_config_is_refused_and_masked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[sources]]\nname = "c"\ntype = "coupa"\nclient_secret = "hunter2-very-secret"\n', encoding="utf-8"
    )
    result = run_cli("sync", "--config", str(config))
    assert result.code == 2
    assert "client_secret" in result.stderr
    assert "hunter2" not in result.stderr


def test_environment_overrides_the_state_url(example: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    result = run_cli(
        "sync", "--config", str(example), "--json", env={"PO_CONNECTOR__STATE__URL": f"sqlite:///{db}"}
    )
    assert result.code == 0, result.stderr
    assert db.exists()


def test_unknown_adapter_type_exits_2_and_lists_known_ones(example: Path) -> None:
    text = example.read_text(encoding="utf-8").replace('type = "ubl-files"', 'type = "ubl-filez"')
    example.write_text(text, encoding="utf-8")
    result = run_cli("sync", "--config", str(example))
    assert result.code == 2
    assert "ubl-filez" in result.stderr and "ubl-files" in result.stderr


def test_logs_go_to_stderr_as_json_lines_and_stdout_holds_only_the_summary(example: Path) -> None:
    result = run_cli("sync", "--config", str(example), "--json")
    json.loads(result.stdout)  # exactly one JSON document
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)


def test_db_upgrade_reports_the_revision(example: Path) -> None:
    result = run_cli("db", "upgrade", "--config", str(example))
    assert result.code == 0, result.stderr
    assert "revision" in result.stdout


def test_every_example_invoice_passes_the_en16931_and_peppol_rules_with_its_tax(example: Path) -> None:
    from tests.support.einvoice import assert_passes_rules

    assert run_cli("sync", "--config", str(example)).code == 0
    ns = {
        "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
        "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    }
    files = invoices(example)
    assert len(files) == EXAMPLE_INVOICES
    treatments: dict[str, set[tuple[str, str]]] = {}
    for path in files:
        data = path.read_bytes()
        assert_passes_rules(data)
        document = etree.fromstring(data)
        po = document.findtext("cac:OrderReference/cbc:ID", namespaces=ns)
        groups = document.findall("cac:TaxTotal/cac:TaxSubtotal", ns)
        assert groups, path.name  # every invoice carries its breakdown
        for group in groups:
            category = group.findtext("cac:TaxCategory/cbc:ID", namespaces=ns) or ""
            percent = group.findtext("cac:TaxCategory/cbc:Percent", namespaces=ns) or ""
            treatments.setdefault(po or "", set()).add((category, percent))
        net = document.findtext("cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount", namespaces=ns)
        gross = document.findtext("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", namespaces=ns)
        tax = document.findtext("cac:TaxTotal/cbc:TaxAmount", namespaces=ns)
        assert net and gross and tax
        assert Decimal(net) + Decimal(tax) == Decimal(gross)
    assert treatments["4500012345"] == {("AE", "0")}  # German buyer: reverse charge
    assert treatments["WE-PO-0077"] == {("S", "20"), ("E", "0")}  # UK VAT from billing, exempt training
    assert treatments["ACME-PO-1001"] == {("S", "8.875")}  # US sales tax from the billing export
    assert treatments[""] == {("S", "7.25")}  # Hooli: no PO, California sales tax
    report = run_cli("report", "--config", str(example), "--format", "json").json()
    wayne = next(
        row
        for row in report["rows"]
        if row["po_number"] == "WE-PO-0077" and "2026-11-01" in str(row.get("subject", ""))
    )
    assert (wayne["net"], wayne["tax"], wayne["gross"]) == ("1700.00", "160.00", "1860.00")


def test_a_period_whose_tax_is_unknown_is_held_not_invoiced(example: Path) -> None:
    billing = example.parent / "examples" / "billing.csv"
    rows = billing.read_text(encoding="utf-8").splitlines()
    # Acme's October period loses its tax: Acme's customer master states no default.
    rows[1] = rows[1].replace(",S,8.875,177.50,US-NY,", ",,,,,")
    billing.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert run_cli("sync", "--config", str(example)).code == 0
    report = run_cli("report", "--config", str(example), "--format", "json").json()
    october = next(row for row in report["rows"] if "SUB-ACME-PRO/2026-10-01" in row["subject"])
    assert october["status"] == "mismatch"
    assert [reason["code"] for reason in october["reasons"]] == ["tax_unknown"]
    assert len(invoices(example)) == EXAMPLE_INVOICES - 1
