"""`po-connector`: the command line for cron jobs and support staff.

Exit codes: 0 done (mismatches are reported, not failures), 1 some records failed or went dead,
2 usage or configuration error, 75 another run holds the lease. The result (or the `--json`
summary) goes to stdout; logs go to stderr, as JSON lines when stderr is not a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector import cli_celery, cli_credit, cli_flags, cli_mail, cli_po, cli_support, exits
from connector.cli_base import Options, cli, emit, fail, handled, load, pass_options, run_job
from connector.errors import ConfigError

__all__ = ["cli", "cli_celery", "cli_credit", "cli_flags", "cli_mail", "cli_po", "cli_support", "main"]

if TYPE_CHECKING:
    from connector.config import LoadedConfig


DRY_RUN_HELP = "Roll every write back, send nothing; print what would be invoiced and held."


@cli.command()
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@click.option(
    "--tenants",
    "tenants",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Sync every tenant config (*.toml) in DIR instead of --config: one run per partition.",
)
@click.option(
    "--via",
    type=click.Choice(["local", "celery"]),
    default="local",
    show_default=True,
    help="With --tenants: one after another here, or one Celery task each (broker: [celery] of --config).",
)
@click.option(
    "--wait",
    "wait",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="With --via celery: how long to wait for the outcomes (default [celery] wait_timeout_seconds).",
)
@pass_options
def sync(options: Options, dry_run: bool, tenants: Path | None, via: str, wait: int | None) -> None:
    """Pull every source, reconcile, and push due invoices (the cron job)."""
    from connector import jobs
    from connector.preview import human_preview

    if tenants is None and (via != "local" or wait is not None):
        fail("--via and --wait go with --tenants DIR", exits.EXIT_USAGE)
    if tenants is not None:
        if dry_run:
            fail("--dry-run previews one config: use --config, not --tenants", exits.EXIT_USAGE)
        cli_celery.sync_tenants(options, tenants, via, wait)
    human = human_preview if dry_run else None
    run_job(options, lambda app: jobs.sync(app, dry_run=dry_run), human)


@cli.command()
@click.option("--source", "sources", multiple=True, help="Only this PO source (repeatable).")
@pass_options
def pull(options: Options, sources: tuple[str, ...]) -> None:
    """Pull POs (and billing periods) into the state."""
    from connector import jobs

    run_job(options, lambda app: jobs.pull(app, sources))


@cli.command()
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@pass_options
def reconcile(options: Options, dry_run: bool) -> None:
    """Match billing periods to POs and plan invoices for the matches."""
    from connector import jobs
    from connector.preview import human_preview

    human = human_preview if dry_run else None
    run_job(options, lambda app: jobs.reconcile(app, dry_run=dry_run), human)


@cli.command()
@click.option("--sink", "sinks", multiple=True, help="Only this sink (repeatable).")
@pass_options
def push(options: Options, sinks: tuple[str, ...]) -> None:
    """Push due invoices from the outbox."""
    from connector import jobs

    run_job(options, lambda app: jobs.push(app, sinks))


@cli.command()
@click.option("--dead", is_flag=True, help="Replay every dead invoice.")
@click.option("--key", "keys", multiple=True, help="Replay this idempotency key or invoice number.")
@pass_options
def replay(options: Options, dead: bool, keys: tuple[str, ...]) -> None:
    """Put dead or named invoices back in the outbox and push them."""
    from connector import jobs

    if not dead and not keys:
        fail("replay needs --dead or --key K", exits.EXIT_USAGE)
    run_job(options, lambda app: jobs.replay(app, keys=keys, dead=dead))


@cli.command()
@pass_options
def status(options: Options) -> None:
    """Where each source and sink stands: cursors, last run, outbox, quarantine, dead letters."""
    from connector.status import collect_status

    with handled():
        data = collect_status(load(options))
    emit(options, data, _human_status)


def _human_status(data: dict[str, Any]) -> str:
    from connector.status import flag_text

    lines = [f"tenant {data['tenant']}"]
    last = data["last_run"]
    if last:
        lines.append(
            f"last run {last['id']} {last['command']} {last['status']} "
            f"(exit {last['exit_code']}) at {last['started_at']}"
        )
    for source in data["sources"]:
        lines.append(
            f"source {source['name']}: cursor {_cursor_text(source['cursor'])}, "
            f"quarantined {source['quarantined']}"
        )
    for sink in data["sinks"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(sink["outbox"].items())) or "empty"
        lines.append(f"sink {sink['name']}: {counts}")
    if data["match_status"]:
        lines.append(
            "reconciliation: " + ", ".join(f"{k} {v}" for k, v in sorted(data["match_status"].items()))
        )
    for dead in data["dead_letters"]:
        lines.append(
            f"DEAD {dead['invoice_number']} PO {dead['po_number']} -> {dead['sink']}: {dead['error']}"
        )
    for flag in data["flagged"]:
        lines.append(
            f"FLAG {flag['invoice_number']} PO {flag['po_number']} -> {flag['sink']}: {flag_text(flag)}"
        )
    for warning in data["renewal_warnings"]:
        lines.append(f"RENEW PO {warning['po_number']}: {warning['detail']}")
    if data["acknowledgements"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(data["acknowledgements"].items()))
        lines.append(f"PO acknowledgements: {counts}")
    for ack in data["acknowledgements_open"]:
        what = "WAITING (po accept|reject)" if ack["state"] == "waiting" else "ACK DEAD"
        why = ack["error"] or ack["reason"]
        lines.append(f"{what} PO {ack['po_number']} rev {ack['revision']} ({ack['source']}): {why}")
    if data.get("mail"):
        from connector.mail_views import human_mail_status

        lines.extend(human_mail_status(data["mail"]))
    return "\n".join(lines)


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv", "html"]), default="json", show_default=True
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout."
)
@pass_options
def report(options: Options, fmt: str, out: Path | None) -> None:
    """The reconciliation report: counts and amounts per status, one row per period or PO."""
    from connector.report import RENDERERS, build_report

    with handled():
        text = RENDERERS[fmt](build_report(load(options)))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_options
def inspect(options: Options, file: Path) -> None:
    """Parse a .eml, .csv or cXML file and print its canonical POs as JSON lines."""
    from connector.inspecting import inspect_file
    from connector.logs import setup_logging

    setup_logging("ERROR", "text")
    with handled():
        loaded = _optional_config(options)
        records, problems = inspect_file(file, loaded)
    for record in records:
        click.echo(record.po.model_dump_json())
    for problem in problems:
        click.echo(f"rejected: {problem.describe()}", err=True)
    sys.exit(exits.EXIT_FAILED if problems else exits.EXIT_OK)


def _optional_config(options: Options) -> LoadedConfig | None:
    from connector.config import load_config

    try:
        return load_config(options.config)
    except ConfigError:
        if options.config:
            raise
        return None


@cli.group()
def db() -> None:
    """State database maintenance."""


@db.command("upgrade")
@pass_options
def db_upgrade(options: Options) -> None:
    """Apply every pending migration."""
    from state.db import current_revision, upgrade

    with handled():
        app = load(options, migrate=False)
        before = current_revision(app.engine)
        upgrade(app.engine)
        after = current_revision(app.engine)
    click.echo(f"state database at revision {after} (was {before or 'empty'})")


@db.command("current")
@pass_options
def db_current(options: Options) -> None:
    """Print the migration revision of the state database and the newest known one."""
    from state.db import current_revision, head_revision

    with handled():
        app = load(options, migrate=False)
        current, head = current_revision(app.engine), head_revision()
    if options.json_output:
        click.echo(json.dumps({"current": current, "head": head}))
    else:
        state = "up to date" if current == head else f"{head} is newer; run `po-connector db upgrade`"
        click.echo(f"state database at revision {current or 'empty'} ({state})")


@cli.group()
def adapters() -> None:
    """Installed adapters."""


@adapters.command("list")
@pass_options
def adapters_list(options: Options) -> None:
    """Every adapter found through the po_connector.adapters entry points."""
    from connector.registry import discover

    rows: list[dict[str, Any]] = []
    for name, info in discover().items():
        rows.append(
            {
                "name": name,
                "kind": info.kind.value if info.kind else None,
                "package": info.package,
                "version": info.version,
                "capabilities": sorted(c.value for c in info.capabilities),
                "error": info.error,
            }
        )
    if options.json_output:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = f"FAILED TO LOAD: {row['error']}" if row["error"] else ", ".join(row["capabilities"]) or "-"
        click.echo(f"{row['name']:<16} {row['kind'] or '?':<8} {row['package']} {row['version']}  {state}")


def _cursor_text(cursor_json: str | None) -> str:
    """A stored cursor as `key=value` pairs (digests cut to 12 digits), or `-` when none."""
    if not cursor_json:
        return "-"
    cursor = json.loads(cursor_json)
    if not isinstance(cursor, dict):
        return str(cursor)
    return " ".join(f"{key}={_short(value)}" for key, value in sorted(cursor.items())) or "-"


def _short(value: object) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def main() -> None:
    """Console-script entry point."""
    cli(obj=None)
