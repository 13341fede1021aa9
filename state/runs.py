"""Runs (what each invocation did) and leases (which run may work on a partition now).

A lease is held by one run, renewed by its heartbeat and taken over when it expired or when
its holder is a process on this host that no longer exists (a crashed cron run).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from state.tables import leases, runs


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, for the one-line message of a run that has to wait."""

    owner: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"run {self.owner} (pid {self.pid} on {self.host}) since {self.acquired_at.isoformat()}, "
            f"lease expires {self.expires_at.isoformat()}"
        )


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host.

    A killed process whose parent has not reaped it yet (a zombie: a worker's pool process
    killed with its worker) still answers signal 0, but will never renew its lease.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:  # no procfs (not Linux), or it ended just now
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")".
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def start_run(
    conn: Connection, tenant: str, command: str, now: datetime, lease_name: str | None = None
) -> str:
    run_id = str(uuid.uuid4())
    conn.execute(
        insert(runs).values(
            id=run_id,
            lease_name=lease_name,
            tenant=tenant,
            command=command,
            status="running",
            counts_json="{}",
            host=this_host(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
        )
    )
    return run_id


def finish_run(
    conn: Connection,
    run_id: str,
    *,
    status: str,
    exit_code: int,
    counts: dict[str, Any],
    now: datetime,
    error: str | None = None,
) -> None:
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status=status,
            exit_code=exit_code,
            counts_json=json.dumps(counts, sort_keys=True, default=str),
            finished_at=now,
            heartbeat_at=now,
            error=error,
        )
    )


def heartbeat(
    conn: Connection, run_id: str, lease_name: str | None, now: datetime, lease_seconds: int
) -> bool:
    """Renew the run's heartbeat and its lease; False when the lease was lost to another run."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(heartbeat_at=now))
    if lease_name is None:
        return True
    return bool(
        conn.execute(
            update(leases)
            .where(leases.c.name == lease_name, leases.c.owner == run_id)
            .values(heartbeat_at=now, expires_at=now + timedelta(seconds=lease_seconds))
        ).rowcount
    )


def _holder(conn: Connection, name: str) -> Any:
    return conn.execute(select(leases).where(leases.c.name == name)).first()


def acquire_lease(
    conn: Connection, name: str, run_id: str, now: datetime, lease_seconds: int
) -> tuple[bool, LeaseHolder | None, str | None]:
    """Try to take the lease `name`.

    Returns (acquired, holder if not acquired, the owner reaped if a dead holder was replaced).
    """
    host, pid = this_host(), os.getpid()
    expires = now + timedelta(seconds=lease_seconds)
    row = _holder(conn, name)
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(leases).values(
                        name=name,
                        owner=run_id,
                        host=host,
                        pid=pid,
                        acquired_at=now,
                        heartbeat_at=now,
                        expires_at=expires,
                    )
                )
            return True, None, None
        except IntegrityError:
            row = _holder(conn, name)
            if row is None:
                return False, None, None
    dead = row.expires_at < now or (row.host == host and not process_alive(row.pid))
    if not dead:
        return False, LeaseHolder(row.owner, row.host, row.pid, row.acquired_at, row.expires_at), None
    taken = conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.owner == row.owner)
        .values(owner=run_id, host=host, pid=pid, acquired_at=now, heartbeat_at=now, expires_at=expires)
    ).rowcount
    if not taken:
        return False, None, None
    conn.execute(
        update(runs)
        .where(runs.c.id == row.owner, runs.c.status == "running")
        .values(
            status="crashed", finished_at=now, error=f"reaped: heartbeat stopped, lease taken by {run_id}"
        )
    )
    return True, None, str(row.owner)


def release_lease(conn: Connection, name: str, run_id: str) -> None:
    conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == run_id))


def reap_stale_runs(conn: Connection, now: datetime, stale_after_seconds: int) -> list[str]:
    """Mark runs whose heartbeat stopped (or whose process is gone on this host) as crashed."""
    host = this_host()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    reaped: list[str] = []
    for row in conn.execute(
        select(runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at).where(runs.c.status == "running")
    ):
        gone = row.host == host and not process_alive(row.pid) and row.pid != os.getpid()
        if row.heartbeat_at < cutoff or gone:
            reaped.append(row.id)
    if reaped:
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(reaped))
            .values(status="crashed", finished_at=now, error="reaped: heartbeat stopped")
        )
    return reaped


def list_runs(conn: Connection, tenant: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(runs).where(runs.c.tenant == tenant).order_by(runs.c.started_at.desc()).limit(limit)
    )
    return [_run_dict(row._mapping) for row in rows]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(runs).where(runs.c.id.startswith(run_id))).first()
    return None if row is None else _run_dict(row._mapping)


def last_run(conn: Connection, tenant: str, command: str | None = None) -> dict[str, Any] | None:
    query = select(runs).where(runs.c.tenant == tenant)
    if command:
        query = query.where(runs.c.command == command)
    row = conn.execute(query.order_by(runs.c.started_at.desc()).limit(1)).first()
    return None if row is None else _run_dict(row._mapping)


def last_finished_by_command(
    conn: Connection, tenant: str, *, status: str | None = None
) -> dict[str, dict[str, Any]]:
    """command -> its most recently finished run (only runs that ended with `status`, when given)."""
    wanted = [runs.c.tenant == tenant, runs.c.finished_at.is_not(None)]
    if status is not None:
        wanted.append(runs.c.status == status)
    latest = (
        select(runs.c.command, func.max(runs.c.finished_at).label("finished_at"))
        .where(*wanted)
        .group_by(runs.c.command)
        .subquery()
    )
    rows = conn.execute(
        select(runs)
        .join(latest, and_(runs.c.command == latest.c.command, runs.c.finished_at == latest.c.finished_at))
        .where(*wanted)
        .order_by(runs.c.started_at)
    )
    return {row.command: _run_dict(row._mapping) for row in rows}


def _run_dict(mapping: Any) -> dict[str, Any]:
    data = dict(mapping)
    data["counts"] = json.loads(data.pop("counts_json") or "{}")
    return data
