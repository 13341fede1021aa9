"""A state database that cannot be opened: one line naming state.url (password masked) and the fix.

Over the real CLI: a driver that is not installed, a server that refuses connections, a role the
server does not know, a SQLite folder that cannot be made. Configuration problems exit 2, a server
that is down exits 75 (try later); every one prints its `--json` summary on stdout, and `doctor`
names the problem and goes on with its other checks.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.cli import copy_example, run_cli

SECRET = "s3cr3t-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def state_env(url: str) -> dict[str, str]:
    return {"PO_CONNECTOR__STATE__URL": url}


def cases() -> list[tuple[str, str, int, str]]:
    return [
        (
            "driver",
            f"postgresql+psycopg2://app:{SECRET}@127.0.0.1:5432/po",
            2,
            "pip install 'po-connector[postgres]'",
        ),
        (
            "refused",
            f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/po",
            75,
            "cannot reach the database server at 127.0.0.1:",
        ),
        (
            "folder",
            "sqlite:////proc/no-such-folder/state.db",
            2,
            "cannot create the folder /proc/no-such-folder",
        ),
    ]


@pytest.mark.parametrize(("name", "url", "code", "says"), cases(), ids=lambda value: str(value)[:8])
def test_a_state_that_cannot_be_opened_is_one_line_with_the_fix(
    example: Path, name: str, url: str, code: int, says: str
) -> None:
    result = run_cli("sync", "--config", str(example), "--json", env=state_env(url))
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "state.url" in lines[0] and says in lines[0], lines[0]
    assert SECRET not in result.stderr + result.stdout
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == code and summary["command"] == "sync"
    assert says in summary["errors"][0]


def test_a_role_the_server_does_not_know_is_a_configuration_error(
    example: Path, postgres_server: str
) -> None:
    url = f"postgresql://nobody_{free_port()}:{SECRET}@127.0.0.1:5432/postgres"
    result = run_cli("status", "--config", str(example), "--json", env=state_env(url))
    assert result.code == 2, result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert json.loads(result.stdout)["exit_code"] == 2


def test_doctor_names_an_unreachable_state_and_checks_the_rest(example: Path) -> None:
    url = f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/po"
    result = run_cli("doctor", "--config", str(example), env=state_env(url))
    assert result.code == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "PROBLEM  state: state.url: postgresql+psycopg://app:***@127.0.0.1:" in result.stdout
    assert "cannot reach the database server" in result.stdout
    assert "ok       source 'inbox'" in result.stdout  # the other checks still ran
    assert SECRET not in result.stdout + result.stderr


def test_every_failing_exit_prints_its_json_summary(example: Path) -> None:
    missing = run_cli("sync", "--config", str(example.parent / "nope.toml"), "--json")
    assert missing.code == 2
    assert json.loads(missing.stdout)["exit_code"] == 2
