"""Scale-out on Celery: the app and its tasks, beat's schedule, and the fan-out that waits.

Imported only by the verbs that use it (`worker`, `schedule`, `sync --tenants DIR --via
celery`): Celery is the optional extra `po-connector[celery]`.

A task names a tenant's config file and a job, never state. Exactly-once lives in the tenant's
state database (the outbox and the partition lease), so a message delivered twice (a worker
killed mid-push, its unacknowledged message redelivered by the broker: `acks_late`,
`reject_on_worker_lost`) is a second run of the same job, which finds the partition's invoices
pushed, or looks the ones its killed predecessor had claimed up in the sink before any send.
Outcomes and progress are in each tenant's runs table, as for a cron run; the result backend
only carries the outcome back to a waiting `sync --tenants`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, ResultSet
from kombu.exceptions import OperationalError

from connector.celery_config import CelerySettings
from connector.errors import ConfigError, UnavailableError
from connector.exits import EXIT_FAILED, EXIT_TEMPFAIL
from connector.logs import setup_logging
from connector.redact import GLOBAL_REDACTOR, mask_url_passwords
from connector.tenants import JOB_NAMES, TenantConfig, discover, outcome_of_error, run_tenant

log = logging.getLogger("po_connector.celery")

RUN_TASK = "po_connector.run_partition"
FAN_OUT_TASK = "po_connector.fan_out"


def make_app(settings: CelerySettings, base_dir: Path) -> Celery:
    """The Celery app of a config's `[celery]` section, with both tasks registered."""
    broker = settings.broker(base_dir)
    app = Celery("po_connector", broker=broker, backend=settings.backend(base_dir), set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A message is acknowledged only once its run is recorded; a worker that dies before
        # leaves it to the broker, which gives it to another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a long sync never holds back messages another worker could take
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=10,
        beat_schedule=beat_schedule(settings, base_dir),
        # The app's own `[celery]` settings, for the tasks (a worker serves one such section).
        po_connector_busy=(settings.busy_retries, settings.busy_retry_seconds),
        po_connector_broker=mask_url_passwords(broker),
    )
    app.task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(_run_partition)
    app.task(name=FAN_OUT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(
        _fan_out
    )
    return app


def _run_partition(task: Any, config: str, job: str = "sync") -> dict[str, Any]:
    """Run `job` for the tenant of `config`: its outcome, as `sync --tenants` reports it.

    A partition held by another run (exit 75: a cron run, or a worker lost on another host whose
    lease has not expired yet) is tried again `busy_retries` times, `busy_retry_seconds` apart.
    """
    request = task.request
    retries, countdown = task.app.conf.po_connector_busy
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    log.info(
        "task %s: %s for %s%s", request.id, job, config, " (redelivered)" if redelivered else "",
        extra={"task_id": request.id, "config": config, "redelivered": redelivered},
    )  # fmt: skip
    outcome = run_tenant(Path(config), job)
    if outcome["exit_code"] == EXIT_TEMPFAIL and request.retries < retries:
        log.warning(
            "task %s: partition of %s busy; trying again in %s s", request.id, config, countdown,
            extra={"task_id": request.id, "config": config, "tenant": outcome["tenant"]},
        )  # fmt: skip
        raise task.retry(countdown=countdown, max_retries=retries)
    log.info(
        "task %s: tenant %s run %s exit %s", request.id, outcome["tenant"], outcome["run_id"],
        outcome["exit_code"], extra={"task_id": request.id, "tenant": outcome["tenant"]},
    )  # fmt: skip
    return {**outcome, "task_id": request.id, "attempts": request.retries + 1}


def _fan_out(task: Any, tenants: str, job: str = "sync") -> list[dict[str, Any]]:
    """Send one run task per partition of the tenants folder (what beat starts): the folder is
    read at each start, so a tenant config added to it is run from the next one on."""
    sent: list[dict[str, Any]] = []
    for config in discover(Path(tenants)):
        if config.problem:
            log.error("%s: not run: %s", config.path, config.problem, extra={"config": str(config.path)})
            sent.append({"config": str(config.path), "error": config.problem})
            continue
        result = _send(task.app, config, job, ignore_result=True)
        sent.append({"config": str(config.path), "tenant": config.tenant, "task_id": result.id})
    log.info("%s: sent %s for %d tenant(s)", tenants, job, sum("task_id" in s for s in sent))
    return sent


def _send(app: Celery, config: TenantConfig, job: str, **options: Any) -> AsyncResult:
    try:
        return app.send_task(RUN_TASK, args=(str(config.path), job), **options)
    except OperationalError as exc:
        raise UnavailableError(
            f"celery.broker_url {app.conf.po_connector_broker}: cannot send to the broker: "
            f"{GLOBAL_REDACTOR(str(exc))}"
        ) from None


def beat_schedule(settings: CelerySettings, base_dir: Path) -> dict[str, dict[str, Any]]:
    """Beat's entries from `[[celery.schedule]]`: each starts the fan-out over its tenants folder."""
    from celery.schedules import crontab, schedule

    entries: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(settings.schedule):
        key = f"celery.schedule[{index}]"
        if entry.cron is not None:
            minute, hour, day_of_month, month, day_of_week = entry.cron.split()
            try:
                when: Any = crontab(
                    minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                    day_of_week=day_of_week,
                )  # fmt: skip
            except ValueError as exc:
                raise ConfigError(f"{key}.cron = {entry.cron!r}: {exc}") from None
        else:
            when = schedule(timedelta(seconds=entry.every_seconds or 0))
        folder = entry.tenants if entry.tenants.is_absolute() else base_dir / entry.tenants
        entries[entry.name] = {"task": FAN_OUT_TASK, "schedule": when, "args": (str(folder), entry.job)}
    return entries


def dispatch(app: Celery, configs: list[TenantConfig], job: str, timeout: float) -> list[dict[str, Any]]:
    """Send one task per partition, wait up to `timeout` seconds for every outcome, and return
    them in the order of `configs` (a config refused before sending is reported as such).

    A tenant without an outcome in time reports 75: its task is still queued or running, and
    its run, once done, is in that tenant's `po-connector runs list`.
    """
    if job not in JOB_NAMES:
        raise ConfigError(f"job {job!r} cannot run per tenant; one of: {', '.join(JOB_NAMES)}")
    outcomes: dict[Path, dict[str, Any]] = {c.path: c.refused() for c in configs if c.problem}
    pending = {_send(app, c, job).id: c for c in configs if not c.problem}
    results = ResultSet([AsyncResult(task_id, app=app) for task_id in pending])
    try:
        if pending:
            for task_id, meta in results.iter_native(timeout=timeout, interval=0.5):
                config = pending.pop(task_id)
                outcomes[config.path] = _outcome(config, meta)
                if not pending:
                    break
    except (TimeoutError, CeleryTimeoutError):
        for config in pending.values():
            outcomes[config.path] = outcome_of_error(
                config.path, config.tenant,
                f"no outcome within {timeout:g} s: the task is still queued or running; "
                "its run, once done, is in `po-connector runs list`", EXIT_TEMPFAIL,
            )  # fmt: skip
    except OperationalError as exc:
        raise UnavailableError(
            f"celery.result_backend: cannot read outcomes: {GLOBAL_REDACTOR(str(exc))}"
        ) from None
    return [outcomes[c.path] for c in configs]


def _outcome(config: TenantConfig, meta: dict[str, Any]) -> dict[str, Any]:
    result = meta.get("result")
    if meta.get("status") == "SUCCESS" and isinstance(result, dict):
        return result
    # The task itself broke (run_tenant reports every error of a run): what Celery recorded.
    message = GLOBAL_REDACTOR(f"task {meta.get('status', '?')}: {type(result).__name__}: {result}")
    return outcome_of_error(config.path, config.tenant, message, EXIT_FAILED)


def _logging_from(level: str, fmt: str) -> None:
    """Celery keeps its hands off logging when someone handles its setup signal: ours it is,
    so worker and beat lines are JSON and redacted like every other po-connector line."""

    def configure(**_: Any) -> None:
        setup_logging(level, fmt)
        # Its line per finished task repeats the whole outcome twice; ours says which run it was.
        logging.getLogger("celery.app.trace").setLevel(max(logging.WARNING, logging.getLevelName(level)))

    signals.setup_logging.connect(configure, weak=False)


def run_worker(app: Celery, *, concurrency: int | None, name: str | None, level: str, fmt: str) -> int:
    """Consume the app's queue until stopped (SIGTERM: finish the running tasks first)."""
    _logging_from(level, fmt)
    argv = [
        "worker",
        f"--hostname={name or f'po-connector-{os.getpid()}@%h'}",
        f"--queues={app.conf.task_default_queue}",
        f"--loglevel={level}",
        # Workers never need each other's state: no start-up sync, no gossip between them.
        "--without-mingle",
        "--without-gossip",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    return int(app.worker_main(argv) or 0)


def run_beat(app: Celery, *, schedule_file: Path, level: str, fmt: str) -> int:
    """Send the scheduled fan-outs until stopped; `schedule_file` keeps when each entry last ran."""
    if not app.conf.beat_schedule:
        raise ConfigError("celery.schedule: no entry; add a [[celery.schedule]] block (docs/operations.md)")
    for entry in app.conf.beat_schedule.values():
        folder = Path(entry["args"][0])
        if not folder.is_dir():
            raise ConfigError(f"celery.schedule: tenants folder {folder} is not a directory")
    _logging_from(level, fmt)
    argv = ["beat", f"--schedule={schedule_file}", f"--loglevel={level}"]
    return int(app.start(argv) or 0)
