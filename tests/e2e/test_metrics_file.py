"""`[metrics] textfile`: the real CLI on the bundled example writes the tenant's metrics after
each run, and a file it cannot write never changes the run's exit code."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import EXAMPLE_INVOICES, copy_example, run_cli

COMMENTED = '# textfile = "/var/lib/node_exporter/textfile_collector/po-connector.prom"'


def with_textfile(config: Path, textfile: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert COMMENTED in text, "config.example.toml documents [metrics] textfile"
    config.write_text(text.replace(COMMENTED, f"textfile = {json.dumps(textfile)}"), encoding="utf-8")


def samples(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(path.read_text(encoding="utf-8"))
        for sample in family.samples
    }


def test_each_run_of_the_example_rewrites_the_metrics_file(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    with_textfile(config, "out/po-connector.prom")  # relative to the config file
    assert run_cli("sync", "--config", str(config), "-q").code == 0
    path = tmp_path / "out" / "po-connector.prom"
    first = samples(path)

    def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return (f"po_connector_{name}", frozenset({"tenant": "default", **labels}.items()))

    assert first[key("last_run_exit_code", command="sync")] == 0
    assert (
        first[key("last_success_timestamp_seconds", command="sync")]
        >= first[key("last_run_start_timestamp_seconds", command="sync")]
    )
    assert first[key("reconcile_results", status="matched")] == EXAMPLE_INVOICES
    assert first[key("reconcile_results", status="missing_po")] == 1
    assert first[key("outbox_rows", sink="files", state="pushed")] == EXAMPLE_INVOICES
    assert first[key("outbox_oldest_unsent_age_seconds", sink="files")] == 0
    assert first[key("dead_letters", sink="files")] == 0
    assert first[key("quarantined_inputs", source="inbox")] == 2
    assert first[key("last_run_api_requests", command="sync", sink="files")] == 0  # files: no HTTP

    assert run_cli("push", "--config", str(config), "-q").code == 0
    second = samples(path)
    assert second[key("last_run_exit_code", command="push")] == 0
    # The sync's figures are read back from the state, not lost with its process.
    assert (
        second[key("last_success_timestamp_seconds", command="sync")]
        == first[key("last_success_timestamp_seconds", command="sync")]
    )
    assert not list(path.parent.glob("po-connector.prom.*")), "no temporary file is left behind"


def test_a_textfile_that_cannot_be_written_leaves_the_exit_code_alone(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the metrics directory should be\n", encoding="utf-8")
    with_textfile(config, str(blocker / "po-connector.prom"))
    result = run_cli("sync", "--config", str(config), "--json", env={"PO_CONNECTOR__LOG__FORMAT": "json"})
    assert result.code == 0, result.stderr
    assert result.json()["exit_code"] == 0 and result.json()["invoices_pushed"] == EXAMPLE_INVOICES
    warnings = [
        line
        for line in map(json.loads, result.stderr.splitlines())
        if line["level"] == "warning" and line["message"].startswith("metrics not written")
    ]
    assert len(warnings) == 1 and warnings[0]["metrics_textfile"] == str(blocker / "po-connector.prom")
    runs = json.loads(run_cli("runs", "list", "--config", str(config), "--json").stdout)
    assert [(run["command"], run["status"], run["exit_code"]) for run in runs] == [("sync", "ok", 0)]
