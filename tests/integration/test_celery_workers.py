"""Scale-out on Celery with real `po-connector worker` processes on RabbitMQ (127.0.0.1).

Twenty tenants, each the bundled example with its own SQLite state and its own Xero sandbox,
fanned out by `sync --tenants DIR --via celery` to three workers. Every sandbox holds back its
answer to an invoice create after storing the invoices: the worker running the first such push
is killed with SIGKILL (with its pool process) while the answer is outstanding. The broker
gives the unacknowledged task to another worker, whose run reaps the dead one, looks the
claimed invoices up and finds them: every invoice is in its tenant's books exactly once, sent
once, and every outbox row is pushed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from state import outbox_queries
from state.db import make_engine
from state.tables import leases, runs
from tests.support.broker import Workers
from tests.support.cli import EXAMPLE_INVOICES, REPO
from tests.support.sink_sandboxes import EXAMPLE_MATCHED, SINK_NAME
from tests.support.tenants import state_url, tenant_name, write_tenants, xero_books

pytestmark = [pytest.mark.service, pytest.mark.slow]

TENANTS = 20
WORKERS = 3
HOLD = 1.0  # seconds a create's answer is held back: the push is in flight all that time
DEADLINE = 60.0  # the whole fan-out, start to last outcome


def _lease_holder(folder: Path, tenant: str) -> tuple[int, str]:
    engine = make_engine(state_url(folder, tenant))
    try:
        with engine.connect() as conn:
            query = select(leases.c.pid, leases.c.owner).where(leases.c.name == f"sync:{tenant}")
            row = conn.execute(query).one()
    finally:
        engine.dispose()
    return int(row.pid), str(row.owner)


def _runs(folder: Path, tenant: str) -> list[Any]:
    url = state_url(folder, tenant)
    if not Path(url.removeprefix("sqlite:///")).exists():
        return []  # no run has opened the state yet
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(runs).order_by(runs.c.started_at)))
    except OperationalError:  # created, not migrated yet
        return []
    finally:
        engine.dispose()


def _outbox(folder: Path, tenant: str, sink: str) -> dict[str, int]:
    engine = make_engine(state_url(folder, tenant))
    try:
        with engine.connect() as conn:
            return outbox_queries.count_by_state(conn, tenant).get(sink, {})
    finally:
        engine.dispose()


def test_twenty_tenants_on_three_workers_one_killed_mid_push_each_invoice_exactly_once(
    tmp_path: Path, workers: Workers
) -> None:
    in_flight: queue.Queue[int] = queue.Queue()
    with xero_books(TENANTS, HOLD, in_flight) as books:
        folder = write_tenants(tmp_path, TENANTS, taxed=False, sink_for=books.sink_for)
        workers.env.update(books.env)
        workers.start(WORKERS)

        started = time.monotonic()
        client = subprocess.Popen(
            [sys.executable, "-m", "connector", "sync", "--tenants", str(folder), "--via", "celery",
             "--config", str(workers.config), "--json", "--wait", str(int(DEADLINE))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=workers.env,
        )  # fmt: skip

        # The first push in flight: kill the worker running it while its answer is held back.
        killed_index = in_flight.get(timeout=DEADLINE)
        killed_tenant = tenant_name(killed_index)
        pid, killed_run = _lease_holder(folder, killed_tenant)
        victim = workers.owner_of(pid)
        victim.kill()
        assert books.sandboxes[killed_index].creates() == 1

        out, err = client.communicate(timeout=DEADLINE + 30)
        took = time.monotonic() - started
        assert client.returncode == 0, f"{err[-3000:]}\n{workers.logs()}"
        report = json.loads(out)
        assert report["via"] == "celery" and report["exit_code"] == 0
        outcomes = {o["tenant"]: o for o in report["tenants"]}
        assert sorted(outcomes) == [tenant_name(i) for i in range(TENANTS)]
        assert took < DEADLINE, f"the fan-out took {took:.1f} s"

        for index, sandbox in enumerate(books.sandboxes):
            tenant = tenant_name(index)
            numbers = books.harnesses[index].numbers()
            assert len(numbers) == EXAMPLE_MATCHED and set(numbers.values()) == {1}, (tenant, numbers)
            assert sandbox.creates() == 1, tenant  # one batch create each: nothing was sent twice
            assert _outbox(folder, tenant, SINK_NAME) == {"pushed": EXAMPLE_MATCHED}, tenant
            assert outcomes[tenant]["exit_code"] == 0, outcomes[tenant]

    # Another worker took the killed one's task: its run reaped the dead run and found the
    # invoices that run had created, by lookup.
    survivor = outcomes[killed_tenant]
    assert survivor["invoices_existing"] == EXAMPLE_MATCHED and survivor["invoices_pushed"] == 0
    history = {row.id: row for row in _runs(folder, killed_tenant)}
    assert history[killed_run].status == "crashed"
    assert history[survivor["run_id"]].status == "ok"
    others = "".join(w.log.read_text() for w in workers.started if w is not victim)
    assert f"task {survivor['task_id']}: sync for {folder / killed_tenant}.toml (redelivered)" in others


def test_beat_starts_the_scheduled_fan_out_and_the_worker_syncs_every_tenant(
    tmp_path: Path, workers: Workers
) -> None:
    folder = write_tenants(tmp_path / "books", 2)
    config = workers.config
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "[celery]\n",
            f'[celery]\nschedule_file = "{tmp_path / "beat-schedule"}"\n',
        )
        + f'\n[[celery.schedule]]\nname = "often"\ntenants = "{folder}"\nevery_seconds = 2\n',
        encoding="utf-8",
    )
    workers.start(1, concurrency=2)
    beat_log = tmp_path / "beat.log"
    with beat_log.open("wb") as sink:
        beat = subprocess.Popen(
            [sys.executable, "-m", "connector", "schedule", "--config", str(config)],
            stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=workers.env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 45
        done: set[str] = set()
        while done != {"t01", "t02"}:
            assert beat.poll() is None, beat_log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{beat_log.read_text()[-2000:]}\n{workers.logs()}"
            time.sleep(0.5)
            for tenant in ("t01", "t02"):
                if any(r.status == "ok" and r.command == "sync" for r in _runs(folder, tenant)):
                    done.add(tenant)
    finally:
        os.killpg(beat.pid, 15)
        beat.wait(20)
    for tenant in ("t01", "t02"):
        files = list((tmp_path / "books" / "data" / tenant / "out" / "invoices").glob("*.xml"))
        assert len(files) == EXAMPLE_INVOICES
        assert _outbox(folder, tenant, "files") == {"pushed": EXAMPLE_INVOICES}
    assert "Scheduler: Sending due task often (po_connector.fan_out)" in beat_log.read_text()
