"""`sync --tenants DIR`, and the Celery verbs `worker` and `schedule` (the extra `po-connector[celery]`).

Celery is imported inside the verbs only, so `--help` and every other verb start without it
and work where the extra is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector import exits
from connector.cli_base import (
    Options,
    cli,
    configure_logging,
    emit,
    fail,
    handled,
    log_settings,
    pass_options,
)

if TYPE_CHECKING:
    from celery import Celery

    from connector.config import LoadedConfig

NO_CELERY = "celery is not installed: pip install 'po-connector[celery]'"


def _celery_app(loaded: LoadedConfig) -> Celery:
    try:
        from connector.celery_app import make_app
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("celery", "kombu", "amqp", "billiard", "vine"):
            raise
        fail(NO_CELERY, exits.EXIT_USAGE)
    return make_app(loaded.settings.celery, loaded.base_dir)


def _control_config(options: Options) -> LoadedConfig:
    """The config whose `[celery]` section names the broker (`--config`, as for every verb)."""
    from connector.config import load_config

    loaded = load_config(options.config)
    configure_logging(options, loaded)
    return loaded


def sync_tenants(options: Options, folder: Path, via: str, wait: int | None) -> None:
    """`sync --tenants DIR`: one run per tenant config, here or on the Celery workers."""
    from connector.tenants import discover, human_report, report, run_locally

    with handled():
        if via == "celery":
            loaded = _control_config(options)
            configs = discover(folder)
            app = _celery_app(loaded)
            from connector.celery_app import dispatch

            try:
                timeout = wait or loaded.settings.celery.wait_timeout_seconds
                outcomes = dispatch(app, configs, "sync", timeout)
            finally:
                app.close()
        else:
            configure_logging(options, None)
            outcomes = run_locally(discover(folder), "sync")
    data = report("sync", via, outcomes)
    emit(options, data, human_report)
    sys.exit(data["exit_code"])


@cli.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 256),
    help="Tenants run at once, one process each (default [celery] concurrency, else one per CPU).",
)
@click.option("--name", metavar="NAME@HOST", help="Node name (default po-connector-<pid>@<host>).")
@pass_options
def worker(options: Options, concurrency: int | None, name: str | None) -> None:
    """Run a Celery worker: the runs that `sync --tenants DIR --via celery` and `schedule` send."""
    with handled():
        loaded = _control_config(options)
        app = _celery_app(loaded)
        from connector.celery_app import run_worker

        level, fmt = log_settings(options, loaded)
        concurrency = concurrency or loaded.settings.celery.concurrency
        code = run_worker(app, concurrency=concurrency, name=name, level=level, fmt=fmt)
    sys.exit(code)


@cli.command()
@pass_options
def schedule(options: Options) -> None:
    """Run Celery beat: start each `[[celery.schedule]]` entry's runs on time (one beat per broker)."""
    with handled():
        loaded = _control_config(options)
        app = _celery_app(loaded)
        from connector.celery_app import run_beat

        level, fmt = log_settings(options, loaded)
        code = run_beat(
            app, schedule_file=loaded.resolve(loaded.settings.celery.schedule_file), level=level, fmt=fmt
        )
    sys.exit(code)
