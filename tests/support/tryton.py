"""A real Tryton server for integration tests: its own venv, a template database, a subprocess.

- `ensure_venv()` creates `.venv-tryton` in the repository root (apart from the project's
  dependencies) and pip-installs the pinned Tryton release into it when it is missing.
- `template()` builds, once per test session, a SQLite database with account_invoice and
  sale_subscription activated and the vendor's books filled in by `tryton_scenario.py` (run
  in that venv); it is kept under `.venv-tryton/templates/`, keyed by the day (the fiscal years
  follow today) and by the scenario's content, so later sessions reuse it.
- `running_tryton()` copies the template into a temporary directory and runs `trytond` on a
  free 127.0.0.1 port until the block ends.

When the venv, the template or the server cannot be had, the test is skipped with the reason
(and fails under CI=true) through `require_service`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tests.support.shared import require_service

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PO_CONNECTOR_TRYTON_VENV", REPO_ROOT / ".venv-tryton"))
SCENARIO = Path(__file__).with_name("tryton_scenario.py")
PINS = (
    "trytond==8.2.1",
    "proteus==8.2.0",
    "trytond-account==8.2.1",
    "trytond-account-invoice==8.2.0",
    "trytond-account-invoice-stock==8.2.0",
    "trytond-account-product==8.2.0",
    "trytond-company==8.2.0",
    "trytond-country==8.2.0",
    "trytond-currency==8.2.0",
    "trytond-party==8.2.0",
    "trytond-product==8.2.0",
    "trytond-sale==8.2.0",
    "trytond-sale-subscription==8.2.0",
    "trytond-stock==8.2.1",
    "python-sql==1.8.1",
    "python-dateutil==4.0.0",
    "lxml==6.1.3",
    "relatorio==1.0.0",
    "Genshi==0.7.12",
    "Werkzeug==3.1.9",
    "python-stdnum==2.2",
    "polib==1.2.0",
    "simpleeval==1.0.8",
    "defusedxml==0.7.1",
    "pwdlib==0.3.1",
    "argon2-cffi==25.1.0",
    "argon2-cffi-bindings==26.2.0",
    "cffi==2.1.1",
    "pycparser==3.12",
    "MarkupSafe==3.0.4",
    "puremagic==1.30",
    "tzdata==2026.6",
)
MODULES = ("account_invoice", "sale_subscription")
DB_NAME = "erp"
USER = "admin"
PASSWORD = "po-connector-tryton-test"


class TrytonUnavailable(Exception):
    """Tryton could not be installed, built or started here; the message says why."""


@dataclass(frozen=True)
class TrytonTemplate:
    """A ready database file and what the scenario put in it."""

    path: Path
    facts: dict[str, Any]


@dataclass(frozen=True)
class TrytonServer:
    """A running trytond: where it listens and how to log in."""

    url: str
    database: str
    user: str
    password_file: Path
    directory: Path
    pid: int
    facts: dict[str, Any]

    def config(self, **extra: Any) -> dict[str, Any]:
        """The connection keys of an adapter config for this server."""
        return {
            "url": self.url,
            "database": self.database,
            "user": self.user,
            "password_file": self.password_file,
            **extra,
        }


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f".{VENV.name}.{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrytonUnavailable(f"{Path(command[0]).name} failed: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-1500:]
        raise TrytonUnavailable(f"{' '.join(command[:3])} exited {done.returncode}: {tail}")
    return done.stdout


def ensure_venv() -> Path:
    """The venv holding the pinned trytond, installed on first use."""
    marker = VENV / "pins.txt"
    wanted = "\n".join(PINS)
    with _locked("venv"):
        if marker.exists() and marker.read_text() == wanted and (VENV / "bin" / "trytond").exists():
            return VENV
        if not (VENV / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(VENV)], timeout=120)
        _run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PINS])
        marker.write_text(wanted)
    return VENV


def _tryton_env(directory: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND_")}
    env.update(TRYTOND_DATABASE__URI="sqlite://", TRYTOND_DATABASE__PATH=str(directory), **extra)
    return env


def _build(venv: Path, target: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tryton-build-") as scratch:
        directory = Path(scratch)
        (directory / f"{DB_NAME}.sqlite").touch()
        password_file = directory / "password"
        password_file.write_text(PASSWORD)
        env = _tryton_env(directory, TRYTONPASSFILE=str(password_file))
        admin = str(venv / "bin" / "trytond-admin")
        _run(
            [
                admin,
                "-d",
                DB_NAME,
                "--all",
                "-u",
                *MODULES,
                "--activate-dependencies",
                "--email",
                "admin@example.com",
            ],
            env=env,
        )
        output = _run([str(venv / "bin" / "python"), str(SCENARIO), DB_NAME], env=env, timeout=300)
        facts: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        partial = target.with_suffix(".partial")
        shutil.copyfile(directory / f"{DB_NAME}.sqlite", partial)
        target.with_suffix(".json").write_text(json.dumps(facts))
        os.replace(partial, target)
    return facts


@functools.cache
def _template() -> TrytonTemplate:
    venv = ensure_venv()
    recipe = SCENARIO.read_bytes() + "\n".join((*PINS, *MODULES, PASSWORD)).encode()
    key = hashlib.sha256(recipe).hexdigest()[:12]
    target = venv / "templates" / f"{date.today().isoformat()}-{key}.sqlite"
    target.parent.mkdir(exist_ok=True)
    with _locked("template"):
        if target.exists() and target.with_suffix(".json").exists():
            return TrytonTemplate(target, json.loads(target.with_suffix(".json").read_text()))
        for stale in target.parent.iterdir():
            stale.unlink()
        return TrytonTemplate(target, _build(venv, target))


_failures: list[str] = []  # why the template could not be had: tried once per session


def template() -> TrytonTemplate:
    """The session's template database (built on first call; skip or fail when impossible)."""
    if not _failures:
        try:
            return _template()
        except (TrytonUnavailable, OSError) as exc:
            _failures.append(f"Tryton is not available: {exc}")
    require_service(False, _failures[0])
    raise AssertionError(_failures[0])  # require_service skipped or failed already


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _version(port: int) -> str | None:
    body = json.dumps({"id": 0, "method": "common.server.version", "params": []}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/rpc/", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as answer:
            result = json.load(answer).get("result")
            return str(result) if result else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def running_tryton(timeout: float = 30.0, **settings: str) -> Iterator[TrytonServer]:
    """A trytond on a fresh copy of the template, stopped when the block ends.

    `settings` are extra trytond options as environment names, e.g. TRYTOND_SESSION__TIMEOUT="1".
    """
    built = template()
    directory = Path(tempfile.mkdtemp(prefix="tryton-"))
    shutil.copyfile(built.path, directory / f"{DB_NAME}.sqlite")
    password_file = directory / "password"
    password_file.write_text(PASSWORD)
    port = _free_port()
    # With queue workers configured (none runs here), posting an invoice queues its PDF
    # rendering instead of doing it inside the RPC call, as on a production server.
    env = _tryton_env(
        directory,
        TRYTOND_WEB__LISTEN=f"127.0.0.1:{port}",
        TRYTOND_SESSION__MAX_ATTEMPT="1000",
        TRYTOND_QUEUE__WORKER="True",
        **settings,
    )
    log = open(directory / "trytond.log", "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [str(VENV / "bin" / "trytond"), "-d", DB_NAME], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout
        while _version(port) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                reason = f"exited {process.returncode}" if process.returncode is not None else "timed out"
                tail = (directory / "trytond.log").read_text()[-1500:]
                require_service(False, f"trytond did not start ({reason}): {tail}")
            time.sleep(0.1)
        yield TrytonServer(
            url=f"http://127.0.0.1:{port}",
            database=DB_NAME,
            user=USER,
            password_file=password_file,
            directory=directory,
            pid=process.pid,
            facts=built.facts,
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
