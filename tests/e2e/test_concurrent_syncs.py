"""Overlapping cron runs over the same state and sinks: every invoice exactly once, no deadlock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import EXAMPLE_INVOICES, REPO, copy_example, run_cli


def _start_syncs(config: Path, count: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    full_env.update(env)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "connector", "sync", "--config", str(config), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=REPO,
        )
        for _ in range(count)
    ]


def _run_concurrently(config: Path, count: int, env: dict[str, str]) -> None:
    processes = _start_syncs(config, count, env)
    codes, pushed, busy_lines = [], 0, []
    for process in processes:
        out, err = process.communicate(timeout=180)
        codes.append(process.returncode)
        if process.returncode == 0:
            pushed += json.loads(out)["invoices_pushed"]
        elif process.returncode == 75:
            busy_lines.append(err.strip().splitlines()[-1])
        else:
            pytest.fail(f"sync exited {process.returncode}: {err[-2000:]}")
    assert set(codes) <= {0, 75}
    assert pushed == EXAMPLE_INVOICES  # across all runs, each matched invoice was created once
    for line in busy_lines:
        assert "held by run" in line and "since" in line
    files = sorted((config.parent / "out" / "invoices").glob("*.xml"))
    assert len(files) == EXAMPLE_INVOICES
    status = run_cli("status", "--config", str(config), "--json", env=env).json()
    assert status["sinks"][0]["outbox"] == {"pushed": EXAMPLE_INVOICES}
    # and a later run still has nothing to do
    again = run_cli("sync", "--config", str(config), "--json", env=env)
    assert again.code == 0 and again.json()["invoices_pushed"] == 0


@pytest.mark.slow
def test_four_concurrent_syncs_on_sqlite_push_each_invoice_once(tmp_path: Path) -> None:
    _run_concurrently(copy_example(tmp_path), 4, {})


@pytest.mark.slow
def test_eight_concurrent_syncs_on_postgresql_push_each_invoice_once(
    tmp_path: Path, postgres_url: str
) -> None:
    _run_concurrently(copy_example(tmp_path), 8, {"PO_CONNECTOR__STATE__URL": postgres_url})
