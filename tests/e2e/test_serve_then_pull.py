"""`po-connector serve` receives a cXML OrderRequest; the next `pull` turns it into a PO."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.cli import REPO, run_cli
from tests.support.shared import shared_fixture


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///state.db"

[serve]
host = "127.0.0.1"
port = {port}
source = "buyers-cxml"

[[sources]]
name = "buyers-cxml"
type = "cxml"
spool_dir = "spool"
include_test_orders = true

[[sources.buyers]]
name = "prominate"
from_domain = "NetworkId"
from_identity = "inbound@prominate-platform.com"
to_identity = "supplier@supplier.com"
shared_secret_env = "PROMINATE_SHARED_SECRET"
""",
        encoding="utf-8",
    )
    return config


def test_serve_stores_an_order_and_pull_makes_it_a_po(tmp_path: Path) -> None:
    port = _free_port()
    config = _config(tmp_path, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    env["PROMINATE_SHARED_SECRET"] = "coyote"
    server = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = shared_fixture("cxml/OrderRequest-generic.xml").read_bytes()
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/", data=body, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, (
                    server.stderr.read() if server.stderr else ""
                )
                time.sleep(0.2)
        assert answer.status_code == 200 and 'code="200"' in answer.text
        replay = requests.post(f"http://127.0.0.1:{port}/", data=body, timeout=5)
        assert replay.status_code == 200
        wrong = requests.post(f"http://127.0.0.1:{port}/", data=body.replace(b"coyote", b"wolf"), timeout=5)
        assert wrong.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert len(list((tmp_path / "spool").glob("*.xml"))) == 1

    pulled = run_cli("pull", "--config", str(config), "--json", env={"PROMINATE_SHARED_SECRET": "coyote"})
    assert pulled.code == 0, pulled.stderr
    assert pulled.json()["pos_changed"] == 1
    again = run_cli("pull", "--config", str(config), "--json", env={"PROMINATE_SHARED_SECRET": "coyote"})
    assert again.json()["pos_fetched"] == 0
