"""`po-connector pull` from the Coupa-like sandbox over real HTTP, through the whole core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from state.db import make_engine
from state.tables import po_records
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.coupa import CoupaSandbox
from tests.support.cli import run_cli


@pytest.fixture
def sandbox() -> Iterator[CoupaSandbox]:
    box = CoupaSandbox()
    box.start()
    yield box
    box.stop()


def _api_get(request: Request) -> bool:
    return request.method == "GET" and request.path.startswith("/api/")


def _config(tmp_path: Path, sandbox: CoupaSandbox) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///state.db"

[[sources]]
name = "acme-coupa"
type = "coupa"
base_url = "{sandbox.url}"
client_id = "{sandbox.client_id}"
client_secret_env = "ACME_COUPA_SECRET"
timeout_connect = 2.0
timeout_read = 2.0
max_attempts = 8
""",
        encoding="utf-8",
    )
    return config


def _stored(config: Path) -> int:
    engine = make_engine(f"sqlite:///{config.parent / 'state.db'}")
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(po_records)).scalar_one())


def test_pull_of_a_thousand_pos_through_faults_then_nothing_then_one_change(
    tmp_path: Path, sandbox: CoupaSandbox
) -> None:
    sandbox.generate(1000)
    for retry_after in ("1", None, "0"):
        sandbox.faults.queue(
            Fault("status", status=429, headers={"Retry-After": retry_after} if retry_after else {}),
            matches=_api_get,
        )
    sandbox.faults.random(0.10, [Fault("status", status=500), Fault("status", status=503)], matches=_api_get)
    config = _config(tmp_path, sandbox)
    env = {"ACME_COUPA_SECRET": sandbox.client_secret}

    first = run_cli("pull", "--config", str(config), "--json", env=env, timeout=300)
    assert first.code == 0, first.stderr[-2000:]
    assert first.json()["pos_changed"] == 1000
    assert _stored(config) == 1000
    assert sandbox.client_secret not in first.stderr

    sandbox.faults.clear()
    before = sandbox.count()
    second = run_cli("pull", "--config", str(config), "--json", env=env)
    assert second.code == 0 and second.json()["pos_changed"] == 0
    assert sandbox.count() - before <= 2

    some_id = next(iter(sandbox.pos))
    sandbox.update_po(some_id, status="closed")
    third = run_cli("pull", "--config", str(config), "--json", env=env)
    assert third.code == 0 and third.json()["pos_changed"] == 1
    assert _stored(config) == 1000


def test_resync_since_a_date_reads_only_the_pos_changed_since(tmp_path: Path, sandbox: CoupaSandbox) -> None:
    from datetime import UTC, datetime, timedelta

    from adapters.coupa_mapping import parse_timestamp

    made = sandbox.generate(510, step=timedelta(hours=6))
    config = _config(tmp_path, sandbox)
    env = {"ACME_COUPA_SECRET": sandbox.client_secret}
    assert run_cli("pull", "--config", str(config), "--json", env=env, timeout=120).code == 0

    moments = [parse_timestamp(po["updated-at"], "updated-at") for po in made]
    since = moments[-57].date().isoformat()  # a UTC day: POs of that whole day and after
    start = datetime.fromisoformat(since).replace(tzinfo=UTC)
    expected = sum(1 for moment in moments if moment >= start)
    before = sandbox.count("GET", "/api/")
    result = run_cli(
        "resync", "--source", "acme-coupa", "--since", since, "--config", str(config), "--json", env=env
    )
    assert result.code == 0, result.stderr[-2000:]
    assert result.json()["pos_fetched"] == expected
    # Pages of 50 holding just those POs, plus at most one probe: not the 11 pages of all 510.
    assert sandbox.count("GET", "/api/") - before <= expected // 50 + 2
