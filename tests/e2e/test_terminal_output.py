"""What a person at a terminal sees: text logs and a progress bar, instead of JSON lines."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO, copy_example


def _run_on_a_terminal(*args: str) -> str:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120"})
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(master)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_text_logs_and_a_progress_bar(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    screen = _run_on_a_terminal("pull", "--config", str(config))
    assert "pulling inbox" in screen  # the rich progress line
    assert '{"time"' not in screen  # not JSON lines
    assert "PO ACME-PO-1001 new" in screen


def test_quiet_shows_neither_logs_nor_progress(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    screen = _run_on_a_terminal("pull", "--config", str(config), "--quiet")
    assert "pulling inbox" not in screen and "ACME-PO-1001 new" not in screen


def test_a_job_without_a_terminal_never_loads_the_progress_display(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "connector", "pull", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    imported = [line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")]
    assert "connector.intake" in imported  # the pull ran, and this is what it loaded
    assert not any(name.startswith("rich") for name in imported)
