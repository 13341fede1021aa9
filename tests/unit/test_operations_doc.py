"""docs/operations.md stays true: its exit-code table, unit files and alert rules match the code."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from connector import exits
from connector.metrics import TenantMetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
SYSTEMD = ROOT / "docs" / "systemd"
ALERTS = ROOT / "docs" / "prometheus" / "po-connector-alerts.yml"
EXEC = "/opt/po-connector/venv/bin/po-connector"


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(title: str) -> str:
    text = doc()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_exit_code_table_is_the_one_in_connector_exits() -> None:
    rows = re.findall(r"^\| `(\d+)` \| `(EXIT_[A-Z]+)` \|", section("Exit codes"), flags=re.MULTILINE)
    in_code = {name: value for name, value in vars(exits).items() if name.startswith("EXIT_")}
    assert {name: int(code) for code, name in rows} == in_code
    assert len(rows) == len(in_code), "each exit code once"


def test_the_doc_shows_the_real_unit_files_and_alert_rules() -> None:
    text = doc()
    for path in (SYSTEMD / "po-connector.service", SYSTEMD / "po-connector.timer", ALERTS):
        assert path.read_text(encoding="utf-8") in text, f"{path.name} is included verbatim"


def test_the_readme_links_the_operations_doc() -> None:
    assert "docs/operations.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def units() -> dict[str, configparser.ConfigParser]:
    parsed = {}
    for path in sorted(SYSTEMD.glob("po-connector.*")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
        parser.read_string(path.read_text(encoding="utf-8"))
        parsed[path.name] = parser
    return parsed


def test_the_units_have_what_systemd_needs() -> None:
    found = units()
    service, timer = found["po-connector.service"], found["po-connector.timer"]
    assert service["Service"]["ExecStart"].split()[:2] == [EXEC, "sync"]
    assert service["Service"]["Type"] == "oneshot"
    assert "75" in service["Service"]["SuccessExitStatus"].split()
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "po-connector.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: stand one in for the installed one.
    program = tmp_path / "po-connector"
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    for path in SYSTEMD.glob("po-connector.*"):
        text = path.read_text(encoding="utf-8").replace(EXEC, str(program))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    names = [str(tmp_path / "po-connector.service"), str(tmp_path / "po-connector.timer")]
    verified = subprocess.run(
        ["systemd-analyze", "verify", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (verified.returncode, verified.stderr) == (0, "")


def test_the_alert_rules_name_only_metrics_the_connector_emits() -> None:
    emitted = {family.name for family in TenantMetrics("default").registry.collect()}
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == {
        "PoConnectorNoSuccessfulSync",
        "PoConnectorDeadLetters",
        "PoConnectorOutboxNotDraining",
        "PoConnectorQuarantinedInput",
        "PoConnectorNeedsADecision",
    }
    named: set[str] = set()
    for rule in rules:
        for text in (rule["expr"], *rule.get("annotations", {}).values()):
            named |= set(re.findall(r"\bpo_connector_[a-z_]+", str(text)))
    assert named and named <= emitted, named - emitted
    # The doc's own mentions of metrics are real ones too.
    assert set(re.findall(r"\bpo_connector_[a-z_]+", doc())) <= emitted


CELERY_UNITS = ("po-connector-worker@.service", "po-connector-schedule.service")


def test_the_celery_units_are_in_the_doc_and_run_the_verbs() -> None:
    text = section("Scaling out on Celery")
    for name, verb in zip(CELERY_UNITS, ("worker", "schedule"), strict=True):
        body = (SYSTEMD / name).read_text(encoding="utf-8")
        assert body in text, f"{name} is included verbatim"
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(body)
        assert parser["Service"]["ExecStart"].split()[:2] == [EXEC, verb]
        assert parser["Service"]["Restart"] == "on-failure"
        assert parser["Install"]["WantedBy"] == "multi-user.target"
    worker = (SYSTEMD / CELERY_UNITS[0]).read_text(encoding="utf-8")
    # Celery's own %h would be systemd's home directory here: the node name takes systemd's %H.
    assert "--name worker%i@%H" in worker and "KillMode=mixed" in worker


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_celery_units(tmp_path: Path) -> None:
    program = tmp_path / "po-connector"
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    for name in CELERY_UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8").replace(EXEC, str(program))
        (tmp_path / name).write_text(text, encoding="utf-8")
    verified = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / name) for name in CELERY_UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (verified.returncode, verified.stderr) == (0, "")
