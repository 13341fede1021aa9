"""Support staff's verbs on a copy of the example: state, quarantine, resync, runs, doctor, replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import EXAMPLE_INVOICES, REPO, copy_example, run_cli


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def invoice_files(config: Path) -> list[Path]:
    return sorted((config.parent / "out" / "invoices").glob("*.xml"))


COUPA_BLOCK = """
[[sources]]
name = "acme-coupa"
type = "coupa"
base_url = "http://127.0.0.1:9"
client_id = "po-connector"
client_secret_env = "ACME_COUPA_SECRET"
"""


def test_state_get_output_is_valid_input_to_state_set(example: Path) -> None:
    # The cursor verbs work on a source that keeps one; nothing here contacts it.
    example.write_text(example.read_text(encoding="utf-8") + COUPA_BLOCK, encoding="utf-8")
    env = {"ACME_COUPA_SECRET": "x"}
    cursor = '{"updated_at": "2026-11-01T00:00:00+00:00", "offset": 3}'
    setting = ("state", "set", "--config", str(example), "--source", "acme-coupa", "--value", cursor, "--yes")
    assert run_cli(*setting, env=env).code == 0
    got = run_cli("state", "get", "--config", str(example), "--source", "acme-coupa", env=env)
    assert got.code == 0
    assert (
        run_cli("state", "clear", "--config", str(example), "--source", "acme-coupa", "--yes", env=env).code
        == 0
    )
    piped = subprocess.run(
        [sys.executable, "-m", "connector", "state", "set", "--config", str(example), "--yes"],
        input=got.stdout,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    again = run_cli("state", "get", "--config", str(example), "--source", "acme-coupa", env=env)
    assert json.loads(again.stdout) == json.loads(got.stdout)
    assert json.loads(got.stdout)["cursor"] == json.loads(cursor)
    listed = run_cli("state", "list", "--config", str(example), "--json", env=env)
    assert [row["source"] for row in json.loads(listed.stdout)] == ["acme-coupa"]


def test_a_cursor_for_a_source_that_keeps_none_is_refused(example: Path) -> None:
    refused = run_cli("state", "set", "--config", str(example), "--source", "inbox", "--value", "{}", "--yes")
    assert refused.code == 2 and "keeps no cursor" in refused.stderr
    empty = run_cli("state", "list", "--config", str(example))
    assert empty.code == 0 and empty.stdout.strip() == "no cursors stored"


NOT_FOUND = [
    ("resync", "--source", "inbox", "--po", "NOPE"),
    ("replay", "--key", "bogus"),
    ("runs", "show", "nope"),
    ("quarantine", "retry", "99"),
    ("state", "get", "--source", "nope"),
    ("state", "get", "--source", "inbox"),
    ("state", "clear", "--source", "inbox", "--yes"),
    ("push", "--sink", "nope"),
    ("pull", "--source", "nope"),
    ("po", "history", "NOPE"),
]


@pytest.mark.parametrize("verb", NOT_FOUND, ids=lambda verb: " ".join(verb[:2]))
def test_a_verb_told_to_act_on_what_is_not_there_says_so_and_exits_2(
    example: Path, verb: tuple[str, ...]
) -> None:
    result = run_cli(*verb, "--config", str(example), "--json")
    assert result.code == 2, (result.stdout, result.stderr)
    assert "not found" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["exit_code"] == 2


def test_quiet_prints_nothing_on_success(example: Path) -> None:
    result = run_cli("sync", "--config", str(example), "-q")
    assert result.code == 0
    assert result.stdout == "" and result.stderr == ""


def test_destructive_verbs_refuse_without_a_terminal_unless_yes(example: Path) -> None:
    result = run_cli("state", "clear", "--config", str(example), "--source", "inbox")
    assert result.code == 2 and "--yes" in result.stderr


def test_quarantine_retry_reprocesses_records_after_the_mapping_is_fixed(example: Path) -> None:
    profile = (REPO / "mappings" / "csv_default.toml").read_text(encoding="utf-8")
    broken = profile.replace('aliases = ["Qty", "Units", "Menge", "Anzahl"]', 'aliases = ["Qty", "Units"]')
    assert broken != profile
    mapping = example.parent / "my_mapping.toml"
    mapping.write_text(broken, encoding="utf-8")
    text = example.read_text(encoding="utf-8").replace('"csv_default"', '"my_mapping.toml"')
    example.write_text(text, encoding="utf-8")

    first = run_cli("pull", "--config", str(example), "--json")
    assert first.code == 0, first.stderr
    listed = run_cli("quarantine", "list", "--config", str(example), "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    globex = [row for row in rows if "globex" in row["document"]]
    assert globex, rows  # Globex's German "Menge" column is unknown to the broken profile

    ids = [str(r["id"]) for r in globex]
    unfixed = run_cli("quarantine", "retry", "--config", str(example), "--json", *ids)
    assert unfixed.code == 1 and unfixed.json()["still_quarantined"] == len(globex), unfixed.stdout
    runs = json.loads(run_cli("runs", "list", "--config", str(example), "--json").stdout)
    assert (runs[0]["command"], runs[0]["exit_code"]) == ("pull", 1)  # recorded as it exited

    mapping.write_text(profile, encoding="utf-8")
    retried = run_cli(
        "quarantine", "retry", "--config", str(example), "--json", *[str(r["id"]) for r in globex]
    )
    assert retried.code == 0, retried.stderr
    summary = retried.json()
    assert summary["retried"] == len(globex) and summary["still_quarantined"] == 0
    assert summary["pos_changed"] >= 2  # 4500012345 and 4500012399 are stored now
    left = run_cli("quarantine", "list", "--config", str(example), "--json").stdout
    assert all("globex" not in json.loads(line)["document"] for line in left.splitlines())


def test_an_unchanged_billing_export_is_not_read_again_but_a_retried_row_is(example: Path) -> None:
    billing = example.parent / "examples" / "billing.csv"
    good = billing.read_text(encoding="utf-8")
    bad_row = (
        "CUST-ACME,Acme Corp,SUB-ACME-EXTRA,2026-11-01,2026-11-30,ADDON-SSO,SSO,1,10.00,DOLLARS,,"
        "2026-11-01,S,8.875,0.89,US-NY,\n"
    )
    billing.write_text(good + bad_row, encoding="utf-8")
    first = run_cli("pull", "--config", str(example), "--json")
    assert first.code == 0 and first.json()["billing_fetched"] > 0, first.stdout
    again = run_cli("pull", "--config", str(example), "--json").json()
    assert again["billing_fetched"] == 0  # the same file: not parsed and stored again
    rows = [
        json.loads(line)
        for line in run_cli("quarantine", "list", "--config", str(example), "--json").stdout.splitlines()
    ]
    held = [str(row["id"]) for row in rows if row["source"] == "billing"]
    assert len(held) == 1, rows

    unfixed = run_cli("quarantine", "retry", "--config", str(example), "--json", *held)
    assert unfixed.code == 1 and unfixed.json()["still_quarantined"] == 1, unfixed.stdout
    billing.write_text(good + bad_row.replace("DOLLARS", "USD"), encoding="utf-8")
    fixed = run_cli("quarantine", "retry", "--config", str(example), "--json", *held)
    assert fixed.code == 0 and fixed.json()["still_quarantined"] == 0, fixed.stdout
    assert fixed.json()["billing_fetched"] > 0


def test_quarantine_discard_hides_a_record(example: Path) -> None:
    run_cli("pull", "--config", str(example))
    rows = [
        json.loads(x)
        for x in run_cli("quarantine", "list", "--config", str(example), "--json").stdout.splitlines()
    ]
    # INI-7781's bad row, and the PO held whole because of it
    assert sorted(row["field"] for row in rows) == ["Quantity", "po_number"], rows
    ids = [str(row["id"]) for row in rows]
    assert run_cli("quarantine", "discard", "--config", str(example), *ids, "--yes").code == 0
    assert run_cli("quarantine", "list", "--config", str(example)).stdout.strip() == ""


def test_resync_of_a_pushed_po_creates_no_new_invoice_and_records_the_new_revision(example: Path) -> None:
    assert run_cli("sync", "--config", str(example)).code == 0
    before = {p.name for p in invoice_files(example)}
    inbox = example.parent / "examples" / "inbox" / "acme-purchase-orders.eml"
    inbox.write_bytes(inbox.read_bytes().replace(b"Pro plan seat-month", b"Pro plan seat month"))

    dry = run_cli(
        "resync", "--config", str(example), "--source", "inbox", "--po", "ACME-PO-1001", "--dry-run", "--json"
    )
    assert dry.code == 0, dry.stderr
    [change] = dry.json()["changes"]
    assert change["outcome"] == "revised" and change["changes"][0]["fields"]["description"]
    assert {p.name for p in invoice_files(example)} == before

    result = run_cli(
        "resync", "--config", str(example), "--source", "inbox", "--po", "ACME-PO-1001", "--json"
    )
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["pos_changed"] == 1
    assert summary["invoices_pushed"] == 0 and summary["invoices_planned"] == 0
    assert summary["amended_after_push"] == 2  # both pushed ACME-PO-1001 invoices are flagged
    assert {p.name for p in invoice_files(example)} == before
    status = run_cli("status", "--config", str(example), "--json").json()
    assert {f["po_number"] for f in status["flagged"]} == {"ACME-PO-1001"}

    # support sees what changed and marks the flags handled with a note
    listed = run_cli("flags", "list", "--config", str(example))
    assert listed.code == 0 and listed.stdout.count("PO ACME-PO-1001 -> files") == 2
    assert "description Pro plan seat-month -> Pro plan seat month" in listed.stdout
    numbers = [f["invoice_number"] for f in status["flagged"]]
    acked = run_cli(
        "flags", "ack", *numbers, "--note", "description only; nothing to correct", "--config", str(example)
    )
    assert acked.code == 0, acked.stderr
    after = run_cli("status", "--config", str(example), "--json").json()
    assert after["flagged"] == [] and after["flags_acknowledged"] == 2
    assert run_cli("flags", "list", "--config", str(example)).stdout.strip() == "no open flags"
    everything = json.loads(run_cli("flags", "list", "--all", "--config", str(example), "--json").stdout)
    assert {f["acknowledged_note"] for f in everything} == {"description only; nothing to correct"}
    unknown = run_cli("flags", "ack", "INV-NOPE", "--note", "x", "--config", str(example))
    assert unknown.code == 2 and "not found" in unknown.stderr


def test_resync_needs_exactly_one_scope(example: Path) -> None:
    result = run_cli("resync", "--config", str(example), "--source", "inbox")
    assert result.code == 2 and "--po" in result.stderr


def test_runs_list_and_show(example: Path) -> None:
    sync = run_cli("sync", "--config", str(example), "--json").json()
    listed = json.loads(run_cli("runs", "list", "--config", str(example), "--json").stdout)
    assert listed[0]["id"] == sync["run_id"] and listed[0]["status"] == "ok"
    shown = json.loads(run_cli("runs", "show", "--config", str(example), sync["run_id"][:8]).stdout)
    assert shown["counts"]["invoices_pushed"] == EXAMPLE_INVOICES


def test_status_json_reports_sources_sinks_and_quarantine(example: Path) -> None:
    run_cli("sync", "--config", str(example))
    status = run_cli("status", "--config", str(example), "--json").json()
    assert status["last_run"]["command"] == "sync"
    assert [s["name"] for s in status["sources"]] == ["inbox", "billing"]
    assert status["quarantined"] == 2  # INI-7781's bad row and the PO held for it
    assert status["match_status"]["matched"] == EXAMPLE_INVOICES
    # Acme's two periods on ACME-PO-1001 carry its term warning; status shows it once.
    warnings = [(w["po_number"], w["detail"]) for w in status["renewal_warnings"]]
    assert len(warnings) == len(set(warnings))
    acme = [w for w in status["renewal_warnings"] if w["po_number"] == "ACME-PO-1001"]
    assert len(acme) == 1 and len(acme[0]["subjects"]) == 2
    text = run_cli("status", "--config", str(example)).stdout
    assert text.count("RENEW PO ACME-PO-1001") == 1 and "{" not in text


def test_db_current_prints_text_and_json_only_when_asked(example: Path) -> None:
    run_cli("sync", "--config", str(example), "-q")
    text = run_cli("db", "current", "--config", str(example))
    assert (
        text.code == 0
        and text.stdout.startswith("state database at revision ")
        and "up to date" in text.stdout
    )
    as_json = run_cli("db", "current", "--config", str(example), "--json").json()
    assert as_json["current"] == as_json["head"]


def test_a_sync_that_finds_the_partition_leased_exits_75_naming_the_holder(example: Path) -> None:
    from connector.config import load_config
    from connector.runtime import Connector

    app = Connector(load_config(example))
    with app.run("sync"):
        result = run_cli("sync", "--config", str(example))
    assert result.code == 75
    assert "held by run" in result.stderr and "since" in result.stderr


def test_doctor_names_an_unreachable_sink_and_exits_non_zero(example: Path) -> None:
    text = example.read_text(encoding="utf-8") + (
        '\n[[sinks]]\nname = "books"\ntype = "netsuite"\nbase_url = "http://127.0.0.1:9/services/rest"\n'
        'access_token_env = "NS_TOKEN"\n'
    )
    example.write_text(text, encoding="utf-8")
    result = run_cli("doctor", "--config", str(example), env={"NS_TOKEN": "t0ken-value-123"})
    assert result.code == 1
    assert "PROBLEM  sink 'books' (netsuite)" in result.stdout and "hint:" in result.stdout
    assert "t0ken-value-123" not in result.stdout


def test_doctor_on_the_example_is_clean(example: Path) -> None:
    result = run_cli("doctor", "--config", str(example))
    assert result.code == 0, result.stdout
    assert "PROBLEM" not in result.stdout


def test_po_history_shows_each_revision_with_the_buyers_version_and_its_changes(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "-q").code == 0
    # The example's Globex SSO add-on arrives as an original order and a change to it.
    shown = run_cli("po", "history", "4500012399", "--config", str(example))
    assert shown.code == 0, shown.stderr
    assert "revision 2, buyer version 2  supplier" in shown.stdout
    assert "line 1 modified (quantity 10 -> 24)" in shown.stdout
    as_json = json.loads(run_cli("po", "history", "4500012399", "--config", str(example), "--json").stdout)
    assert [(h["revision"], h["source_version"], h["kind"]) for h in as_json["history"]] == [
        (1, "1", "supplier"),
        (2, "2", "supplier"),
    ]
    assert all(h["changes"] for h in as_json["history"])
    missing = run_cli("po", "history", "NOPE", "--config", str(example))
    assert missing.code == 2 and "no PO 'NOPE'" in missing.stderr
