"""Several tenants, one config file each in a folder: find them, run a job for each, report.

The unit of work is the partition the run lease guards: `sync:<tenant>` in that tenant's state
database, so a worker, a cron run and a person never work on one partition at once. `sync
--tenants DIR` runs the job once per partition, one after another in this process, or with
`--via celery` as one task each (`connector.celery_app`), which runs `run_tenant` in a worker.
Both report the same outcome per tenant and exit with the worst code (`exits.worst`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector import exits
from connector.config import load_config
from connector.errors import ENDS_A_COMMAND, ConfigError, NotFoundError, describe, exit_code_for
from connector.redact import GLOBAL_REDACTOR

if TYPE_CHECKING:
    from connector.runtime import Connector

log = logging.getLogger("po_connector.tenants")

JOB_NAMES = ("sync", "push")
# What every tenant's line shows besides its exit code (the rest is in `runs show ID`).
SHOWN = ("invoices_pushed", "invoices_existing", "invoices_failed", "dead")


@dataclass(frozen=True)
class TenantConfig:
    """One config file of a tenants folder: its tenant, or why it will not run."""

    path: Path
    tenant: str | None
    problem: str | None = None  # a config that does not load, or a partition named twice

    def refused(self) -> dict[str, Any]:
        """The outcome of a config that was not run, shaped like a run's."""
        return outcome_of_error(self.path, self.tenant, self.problem or "not run", exits.EXIT_USAGE)


def discover(folder: Path) -> list[TenantConfig]:
    """Every `*.toml` in `folder` (not below it), in name order, each loaded and checked once.

    Two configs naming the same tenant on the same state database would be one partition: the
    second is refused (exit 2), since only one of them could ever hold the lease.
    """
    from connector.runtime import partition_lease, state_url

    if not folder.is_dir():
        raise NotFoundError(f"tenants folder {folder} is not a directory")
    found: list[TenantConfig] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in sorted(p.absolute() for p in folder.glob("*.toml") if p.is_file()):
        try:
            loaded = load_config(path)
        except ConfigError as exc:
            found.append(TenantConfig(path, None, describe(exc)))
            continue
        tenant = loaded.settings.tenant
        partition = (state_url(loaded), partition_lease(tenant))
        if partition in seen:
            problem = (
                f"configuration error: tenant {tenant!r} on the same state database as "
                f"{seen[partition].name}: one config per partition"
            )
            found.append(TenantConfig(path, tenant, problem))
            continue
        seen[partition] = path
        found.append(TenantConfig(path, tenant))
    if not found:
        raise NotFoundError(f"no tenant config (*.toml) in {folder}")
    return found


def outcome_of_error(path: Path, tenant: str | None, message: str, code: int) -> dict[str, Any]:
    return {"tenant": tenant, "config": str(path), "run_id": None, "exit_code": code, "errors": [message]}


def _job(name: str) -> Callable[[Connector], dict[str, Any]]:
    from connector import jobs

    chosen: dict[str, Callable[[Connector], dict[str, Any]]] = {"sync": jobs.sync, "push": jobs.push}
    if name not in chosen:
        raise ConfigError(f"job {name!r} cannot run per tenant; one of: {', '.join(JOB_NAMES)}")
    return chosen[name]


def run_tenant(path: Path, job: str = "sync") -> dict[str, Any]:
    """Run `job` for the tenant of the config at `path`: the run's summary (as `--json` prints it)
    with `tenant` and `config`, or, when it could not run, its one-line error and exit code.

    The run is recorded in the tenant's runs table as any run is; running it again is harmless
    (the outbox and the lease keep every invoice to one push).
    """
    from connector.runtime import Connector

    tenant: str | None = None
    app: Connector | None = None
    try:
        loaded = load_config(path)
        tenant = loaded.settings.tenant
        app = Connector(loaded)
        data = _job(job)(app)
    except ENDS_A_COMMAND as exc:
        return outcome_of_error(path, tenant, GLOBAL_REDACTOR(describe(exc)), exit_code_for(exc))
    except Exception as exc:  # one tenant's failure must not end the others'
        log.exception("tenant %s (%s): %s failed", tenant, path, job, extra={"tenant": tenant})
        return outcome_of_error(
            path, tenant, GLOBAL_REDACTOR(f"{type(exc).__name__}: {exc}"), exits.EXIT_FAILED
        )
    finally:
        if app is not None:
            app.engine.dispose()  # a worker runs many tenants: no pool may outlive its run
    return {"tenant": tenant, "config": str(path), **data}


def run_locally(configs: Iterable[TenantConfig], job: str = "sync") -> list[dict[str, Any]]:
    """Each tenant in turn in this process (a refused config is reported, not run)."""
    return [c.refused() if c.problem else run_tenant(c.path, job) for c in configs]


def report(command: str, via: str, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of a command run per tenant: every outcome and the worst exit code."""
    code = exits.worst(o["exit_code"] for o in outcomes)
    errors = [f"{o['tenant'] or Path(o['config']).name}: {e}" for o in outcomes for e in o.get("errors", [])]
    return {"command": command, "via": via, "tenants": outcomes, "exit_code": code, "errors": errors}


def human_report(data: dict[str, Any]) -> str:
    """One line per tenant (exit code, run, what was pushed), its errors below it, then the total."""
    lines = []
    width = max((len(o["tenant"] or "?") for o in data["tenants"]), default=1)
    for outcome in data["tenants"]:
        parts = [
            f"tenant {outcome['tenant'] or '?':<{width}}",
            f"exit {outcome['exit_code']:<3}",
            f"run {outcome['run_id']}" if outcome.get("run_id") else "no run",
            *(f"{key.removeprefix('invoices_')} {outcome[key]}" for key in SHOWN if key in outcome),
            f"({Path(outcome['config']).name})",
        ]
        lines.append("  ".join(parts))
        lines.extend(f"  ! {error}" for error in outcome.get("errors", []))
    lines.append(f"{len(data['tenants'])} tenant(s) via {data['via']}: exit {data['exit_code']}")
    return "\n".join(lines)
