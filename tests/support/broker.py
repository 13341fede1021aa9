"""RabbitMQ on 127.0.0.1:5672 (guest/guest) and real `po-connector worker` processes on it.

`.ci/run` starts RabbitMQ (installing it when missing). Without it, or without the `celery`
extra, the tests that use `rabbitmq` skip, and fail under CI=true. Every test gets a queue of
its own (`celery_queue`), deleted afterwards, and names its workers after it, so tests sharing
the broker never take each other's tasks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cli import REPO
from tests.support.shared import require_service

BROKER_URL = os.environ.get("PO_CONNECTOR_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
BROKER_ENV = "E2E_BROKER_URL"  # the control config reads the URL from here: it has a password
READY_TIMEOUT = 60.0


def _reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The broker URL of a reachable RabbitMQ; skips (fails under CI) when there is none."""
    require_service(
        importlib.util.find_spec("celery") is not None, "celery is not installed: pip install -e '.[test]'"
    )
    shown = BROKER_URL.replace("guest:guest@", "guest:***@")
    require_service(_reachable(BROKER_URL), f"RabbitMQ is not reachable at {shown} (start it: see .ci/run)")
    return BROKER_URL


@pytest.fixture
def celery_queue(rabbitmq: str) -> Iterator[str]:
    """A queue name for one test; the queue is deleted after it."""
    name = f"po-connector-test-{uuid.uuid4().hex[:12]}"
    yield name
    from kombu import Connection

    # Suppressed: never declared (nothing was sent), or already gone.
    with Connection(rabbitmq, connect_timeout=3) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(name)


def control_config(folder: Path, queue: str, **celery: object) -> Path:
    """A config holding only `[celery]`: the broker from $E2E_BROKER_URL, the test's queue."""
    from tests.support.sink_sandboxes import dump_toml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "control.toml"
    section = {"broker_url_env": BROKER_ENV, "queue": queue, **celery}
    path.write_text(dump_toml({"celery": section, "log": {"format": "json"}}), encoding="utf-8")
    return path


def process_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    env.update({BROKER_ENV: BROKER_URL, "PYTHONPATH": str(REPO)})
    env.update(extra or {})
    return env


@dataclass
class Worker:
    """One `po-connector worker` process (in a process group of its own with its pool)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def ready(self) -> bool:
        return " ready." in self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes, as a crashed host or container does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Workers:
    """Workers started for one test, stopped (or killed) at its end."""

    config: Path
    folder: Path
    env: dict[str, str]
    started: list[Worker] = field(default_factory=list)

    def start(self, count: int, *, concurrency: int = 1) -> list[Worker]:
        tag = uuid.uuid4().hex[:8]
        new = []
        for index in range(count):
            name = f"w{len(self.started) + 1}-{tag}@%h"
            log = self.folder / f"worker-{len(self.started) + 1}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "connector", "worker", "--config", str(self.config),
                     "--concurrency", str(concurrency), "--name", name],
                    stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=self.env, start_new_session=True,
                )  # fmt: skip
            worker = Worker(name, process, log)
            self.started.append(worker)
            new.append(worker)
        deadline = time.monotonic() + READY_TIMEOUT
        for worker in new:
            while not worker.ready():
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {worker.name} did not start:\n{worker.log.read_text()[-3000:]}")
                time.sleep(0.2)
        return new

    def owner_of(self, pid: int) -> Worker:
        """The worker whose process group `pid` (a pool process) belongs to."""
        group = os.getpgid(pid)
        for worker in self.started:
            if worker.process.pid == group:
                return worker
        raise AssertionError(f"pid {pid} (group {group}) belongs to none of this test's workers")

    def stop(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.started:
            try:
                worker.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log.read_text(errors='replace')[-4000:]}" for w in self.started)


@pytest.fixture
def workers(tmp_path: Path, celery_queue: str) -> Iterator[Workers]:
    """Start workers on this test's queue with `workers.start(n)`; all are stopped after it."""
    folder = tmp_path / "celery"
    pool = Workers(control_config(folder, celery_queue, busy_retry_seconds=2), folder, process_env())
    try:
        yield pool
    finally:
        pool.stop()
