"""Support verbs: runs, state, quarantine, resync, doctor and serve.

Destructive verbs ask for confirmation when a person is at a terminal, unless `--yes`;
without a terminal (cron, pipes) they never prompt.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import click

from connector import exits
from connector.cli_base import Options, cli, emit, fail, handled, human_summary, load, pass_options
from connector.errors import ConfigError

if TYPE_CHECKING:
    from connector.runtime import Connector


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; refuse to guess without one."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} — refusing without a terminal; pass --yes", exits.EXIT_USAGE)
    if not click.confirm(question, default=False, err=True):
        fail("cancelled", exits.EXIT_USAGE)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# -- runs --------------------------------------------------------------------------------------
@cli.group("runs")
def runs_group() -> None:
    """What each run did."""


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True)
@pass_options
def runs_list(options: Options, limit: int) -> None:
    """The latest runs, newest first."""
    from state import runs

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = [
                {k: _jsonable(v) for k, v in row.items()} for row in runs.list_runs(conn, app.tenant, limit)
            ]
    if options.json_output:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(
            f"{row['id']}  {row['command']:<9} {row['status']:<8} exit {row['exit_code']}  "
            f"{row['started_at']}  {json.dumps(row['counts'], sort_keys=True)}"
        )


@runs_group.command("show")
@click.argument("run_id")
@pass_options
def runs_show(options: Options, run_id: str) -> None:
    """One run (an id prefix is enough)."""
    from state import runs

    with handled():
        app = load(options)
        with app.connect() as conn:
            row = runs.get_run(conn, run_id)
    if row is None:
        fail(f"not found: no run {run_id!r}", exits.EXIT_USAGE)
    click.echo(json.dumps({k: _jsonable(v) for k, v in row.items()}, indent=2))


# -- state -------------------------------------------------------------------------------------
@cli.group("state")
def state_group() -> None:
    """Sync cursors, per source and stream."""


@state_group.command("list")
@click.option("--source", default=None)
@pass_options
def state_list(options: Options, source: str | None) -> None:
    """Every stored cursor."""
    from state import ingest

    with handled():
        app = load(options)
        if source is not None:
            _cursor_source(app, source)
        with app.connect() as conn:
            rows = ingest.list_cursors(conn, app.tenant, source)
    cursors = [
        {
            "source": row["source"],
            "stream": row["stream"],
            "cursor": json.loads(row["cursor_json"]),
            "updated_at": row["updated_at"].isoformat(),
        }
        for row in rows
    ]
    if options.json_output:
        click.echo(json.dumps(cursors))
    elif not cursors:
        click.echo("no cursors stored" + (f" for source {source!r}" if source else ""))
    for cursor in cursors if not options.json_output else []:
        click.echo(json.dumps(cursor))


def _cursor_source(app: Connector, source: str) -> None:
    """`source` must be a configured source that keeps a cursor (NotFoundError, ConfigError)."""
    from connector.ports import Capability

    adapters = {**app.sources, **app.billing_sources}
    app.chosen("source", adapters, [source])
    if Capability.INCREMENTAL not in getattr(adapters[source], "capabilities", frozenset()):
        raise ConfigError(f"source {source!r} keeps no cursor to get or set: it is not incremental")


@state_group.command("get")
@click.option("--source", required=True)
@click.option("--stream", default="default", show_default=True)
@pass_options
def state_get(options: Options, source: str, stream: str) -> None:
    """Print a cursor as JSON (valid input to `state set`)."""
    from state import ingest

    with handled():
        app = load(options)
        app.chosen("source", {**app.sources, **app.billing_sources}, [source])
        with app.connect() as conn:
            cursor = ingest.get_cursor(conn, app.tenant, source, stream)
    if cursor is None:
        fail(f"not found: no cursor stored for source {source!r} stream {stream!r}", exits.EXIT_USAGE)
    click.echo(json.dumps({"source": source, "stream": stream, "cursor": cursor}, sort_keys=True))


@state_group.command("set")
@click.option("--source", default=None, help="Defaults to the `source` in the JSON.")
@click.option("--stream", default=None)
@click.option("--value", default=None, help="JSON; else read from stdin (the output of `state get`).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def state_set(options: Options, source: str | None, stream: str | None, value: str | None, yes: bool) -> None:
    """Replace a cursor; accepts the output of `state get`, or a bare cursor object."""
    from connector.model import utcnow
    from state import ingest

    text = value if value is not None else sys.stdin.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"state set: not JSON: {exc}", exits.EXIT_USAGE)
    if not isinstance(data, dict):
        fail("state set: expected a JSON object", exits.EXIT_USAGE)
    cursor = data.get("cursor", data) if "cursor" in data else data
    source = source or data.get("source")
    stream = stream or data.get("stream") or "default"
    if not source or not isinstance(cursor, dict):
        fail("state set: name --source, and give a cursor object", exits.EXIT_USAGE)
    with handled():
        app = load(options)
        _cursor_source(app, source)
        confirm(f"Replace the cursor of {source}/{stream}?", yes)
        with app.engine.begin() as conn:
            ingest.set_cursor(conn, app.tenant, source, cursor, utcnow(), stream=stream)
    click.echo(json.dumps({"source": source, "stream": stream, "cursor": cursor}, sort_keys=True))


@state_group.command("clear")
@click.option("--source", required=True)
@click.option("--stream", default=None)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def state_clear(options: Options, source: str, stream: str | None, yes: bool) -> None:
    """Forget a cursor: the next pull starts from the beginning."""
    from state import ingest

    with handled():
        app = load(options)
        app.chosen("source", {**app.sources, **app.billing_sources}, [source])
        confirm(f"Forget the cursor of {source}{'/' + stream if stream else ''}?", yes)
        with app.engine.begin() as conn:
            removed = ingest.clear_cursor(conn, app.tenant, source, stream)
    if not removed:
        shown = f" stream {stream!r}" if stream else ""
        fail(f"not found: no cursor stored for source {source!r}{shown}", exits.EXIT_USAGE)
    click.echo(f"cleared {removed} cursor(s)")


# -- quarantine --------------------------------------------------------------------------------
@cli.group("quarantine")
def quarantine_group() -> None:
    """Bad input that was set aside: list, retry after a fix, or discard."""


@quarantine_group.command("list")
@click.option("--status", type=click.Choice(["open", "retried", "discarded", "all"]), default="open")
@pass_options
def quarantine_list(options: Options, status: str) -> None:
    """Quarantined records with where they came from and why."""
    from state import quarantine_store

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = quarantine_store.list_quarantine(conn, app.tenant, None if status == "all" else status)
    for row in rows:
        if options.json_output:
            click.echo(json.dumps({k: _jsonable(v) for k, v in row.items()}))
        else:
            click.echo(
                f"#{row['id']} [{row['status']}] {row['source']}: {row['document']}, {row['location']}: "
                f"field {row['field']!r} value {row['value']!r}: {row['reason']}"
            )


def _chosen_ids(app_rows: list[dict[str, Any]], ids: tuple[int, ...], every: bool) -> list[int]:
    if not ids and not every:
        fail("name quarantine ids, or --all", exits.EXIT_USAGE)
    known = {row["id"] for row in app_rows}
    unknown = [i for i in ids if i not in known]
    if unknown:
        fail(f"not found: no open quarantine row {', '.join(map(str, unknown))}", exits.EXIT_USAGE)
    return sorted(known) if every else list(ids)


@quarantine_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True)
@pass_options
def quarantine_retry(options: Options, ids: tuple[int, ...], every: bool) -> None:
    """Process the inputs of these records again (after fixing a mapping, a map or the file)."""
    from connector import jobs
    from state import ingest, quarantine_store

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = quarantine_store.list_quarantine(conn, app.tenant, "open")
        chosen = _chosen_ids(rows, ids, every)
        with app.engine.begin() as conn:
            taken = quarantine_store.set_quarantine_status(conn, app.tenant, chosen, "retried")
            for row in taken:
                if row["input_key"]:
                    ingest.forget_processed(conn, app.tenant, row["source"], row["input_key"])
            # A billing export is read again only when it changed: its cursor goes, so it is.
            for source in {row["source"] for row in taken} & set(app.billing_sources):
                ingest.clear_cursor(conn, app.tenant, source)
        sources = sorted({row["source"] for row in taken} & set(app.sources))
        data = jobs.pull(app, sources, retried=chosen) if sources else jobs.pull(app, retried=chosen)
    data["retried"] = len(chosen)
    data.setdefault("still_quarantined", 0)
    emit(options, data, human_summary)
    sys.exit(data["exit_code"])


@quarantine_group.command("discard")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_options
def quarantine_discard(options: Options, ids: tuple[int, ...], every: bool, yes: bool) -> None:
    """Mark records as handled by a person; they are not reported again."""
    from state import quarantine_store

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = quarantine_store.list_quarantine(conn, app.tenant, "open")
        chosen = _chosen_ids(rows, ids, every)
        confirm(f"Discard {len(chosen)} quarantined record(s)?", yes)
        with app.engine.begin() as conn:
            quarantine_store.set_quarantine_status(conn, app.tenant, chosen, "discarded")
    click.echo(f"discarded {len(chosen)}")


# -- resync ------------------------------------------------------------------------------------
@cli.command()
@click.option("--source", required=True, help="The PO source to read again.")
@click.option("--po", "po_number", default=None, help="One PO number.")
@click.option("--since", default=None, help="POs changed since this date (YYYY-MM-DD).")
@click.option("--all", "every", is_flag=True, help="Everything the source has.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation for --all.")
@pass_options
def resync(
    options: Options,
    source: str,
    po_number: str | None,
    since: str | None,
    every: bool,
    dry_run: bool,
    yes: bool,
) -> None:
    """Read POs again ignoring cursor and hashes; never a second invoice for one already pushed."""
    from connector.resync import resync as run_resync

    if sum(bool(x) for x in (po_number, since, every)) != 1:
        fail("resync needs exactly one of --po N, --since DATE, --all", exits.EXIT_USAGE)
    since_at = None
    if since:
        try:
            since_at = datetime.combine(date.fromisoformat(since), datetime.min.time(), UTC)
        except ValueError:
            fail(f"--since {since!r}: expected YYYY-MM-DD", exits.EXIT_USAGE)
    with handled():
        app = load(options)
        if every and not dry_run:
            confirm(f"Read every PO of {source} again?", yes)
        data = run_resync(app, source, po_number=po_number, since=since_at, dry_run=dry_run)
    emit(options, data, _human_resync if dry_run else human_summary)
    sys.exit(data["exit_code"])


def _human_resync(data: dict[str, Any]) -> str:
    from state.po_changes import describe as describe_change

    lines = [f"dry run: {data.get('would_change', 0)} PO(s) would change"]
    for change in data["changes"]:
        lines.append(f"  {change['po_number']}: {change['outcome']}")
        lines.extend(f"    {describe_change(c)}" for c in change["changes"])
    return "\n".join(lines)


# -- doctor and serve --------------------------------------------------------------------------
@cli.command()
@pass_options
def doctor(options: Options) -> None:
    """Check the config, the state database and every source and sink; hint at each fix."""
    from connector.doctor import run_doctor

    findings = run_doctor(options.config)
    if options.json_output:
        click.echo(json.dumps([f.__dict__ for f in findings]))
    else:
        for finding in findings:
            click.echo(finding.line())
    sys.exit(exits.EXIT_OK if all(f.ok for f in findings) else exits.EXIT_FAILED)


@cli.command()
@click.option("--host", default=None, help="Overrides [serve] host.")
@click.option("--port", default=None, type=int, help="Overrides [serve] port.")
@pass_options
def serve(options: Options, host: str | None, port: int | None) -> None:
    """Receive orders for the `[serve] source` (development server; see docs for gunicorn/waitress)."""
    from connector.serving import receiver_for
    from connector.serving import serve as run_server

    with handled():
        app = load(options)
        receiver = receiver_for(app.loaded)
        settings = app.settings.serve
        run_server(host or settings.host, port if port is not None else settings.port, receiver)


def _register_scaffold() -> None:
    from connector.scaffold import new_adapter_command

    cli.add_command(new_adapter_command)


_register_scaffold()
