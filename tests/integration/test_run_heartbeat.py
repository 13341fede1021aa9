"""A long run keeps its lease alive by heartbeats, and learns when another run took it over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.config import load_config
from connector.runtime import Connector
from state.tables import leases, runs
from tests.support.cli import copy_example

BEAT = 10 / 3  # heartbeats come every third of the shortest lease allowed (10 s)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Connector:
    monkeypatch.setenv("PO_CONNECTOR__STATE__LEASE_SECONDS", "10")
    monkeypatch.setenv("PO_CONNECTOR__STATE__STALE_AFTER_SECONDS", "30")
    return Connector(load_config(copy_example(tmp_path)))


def test_a_running_job_renews_its_heartbeat_and_lease(app: Connector) -> None:
    with app.run("sync") as run:
        with app.connect() as conn:
            first = conn.execute(select(leases.c.expires_at)).scalar_one()
        time.sleep(BEAT + 0.8)
        with app.connect() as conn:
            beat = conn.execute(select(runs.c.heartbeat_at).where(runs.c.id == run.run_id)).scalar_one()
            renewed = conn.execute(select(leases.c.expires_at)).scalar_one()
        assert beat is not None and beat > run.started_at
        assert renewed > first
        assert not run.lease_lost.is_set()


def test_a_lease_taken_over_by_another_run_is_flagged_on_the_run(app: Connector) -> None:
    with app.run("sync") as run:
        with app.engine.begin() as conn:
            conn.execute(update(leases).values(owner="another-run"))
        deadline = time.monotonic() + BEAT + 2
        while not run.lease_lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.lease_lost.is_set()
