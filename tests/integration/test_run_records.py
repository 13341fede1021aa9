"""A run is recorded with the exit code its process ends with, whatever error ended it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.config import load_config
from connector.errors import ConfigError, NotFoundError, RejectedError, UnavailableError
from connector.model import utcnow
from connector.runtime import Connector
from state import runs as run_store
from state.tables import leases, runs
from tests.support.cli import copy_example


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("sinks[0].base_url: bad"), 2),
        (NotFoundError("PO NOPE"), 2),
        (UnavailableError("state database down"), 75),
        (RejectedError("refused"), 1),
        (RuntimeError("a bug"), 1),
    ],
)
def test_a_run_ended_by_an_error_is_recorded_with_its_exit_code(
    tmp_path: Path, error: Exception, code: int
) -> None:
    app = Connector(load_config(copy_example(tmp_path)))
    with pytest.raises(type(error)), app.run("sync"):
        raise error
    with app.connect() as conn:
        status, exit_code, text = conn.execute(select(runs.c.status, runs.c.exit_code, runs.c.error)).one()
    assert (status, exit_code) == ("failed", code)
    assert type(error).__name__ in text


def test_a_lease_held_by_a_killed_process_not_yet_reaped_by_its_parent_is_taken_over(tmp_path: Path) -> None:
    """A worker's pool process killed with its worker stays a zombie until someone reaps it; its
    run must be taken over at once, not after the lease expires."""
    app = Connector(load_config(copy_example(tmp_path)))
    child = subprocess.Popen(["sleep", "0"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.01)
        assert run_store.process_alive(child.pid) is False
        now = utcnow()
        with app.engine.begin() as conn:
            dead = run_store.start_run(conn, app.tenant, "sync", now, app.lease_name)
            assert run_store.acquire_lease(conn, app.lease_name, dead, now, 300)[0]
            conn.execute(update(leases).values(pid=child.pid))
            conn.execute(update(runs).where(runs.c.id == dead).values(pid=child.pid))
        with app.run("sync") as run:
            assert run.run_id != dead
        with app.connect() as conn:
            assert conn.execute(select(runs.c.status).where(runs.c.id == dead)).scalar_one() == "crashed"
    finally:
        child.wait()
    assert run_store.process_alive(child.pid) is False
    assert run_store.process_alive(os.getpid()) is True
