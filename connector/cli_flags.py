"""`po-connector flags ...`: invoices flagged after they were sent, and marking them handled."""

from __future__ import annotations

import json

import click

from connector import exits
from connector.cli_base import Options, cli, fail, handled, load, pass_options
from connector.errors import NotFoundError


@cli.group("flags")
def flags_group() -> None:
    """Invoices whose remote total differs or whose PO or period changed after sending."""


@flags_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the flags already acknowledged.")
@pass_options
def flags_list(options: Options, show_all: bool) -> None:
    """The open flags (with --all, the acknowledged ones too), oldest first."""
    from connector.status import flag_text, flag_view
    from state import outbox_queries

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = outbox_queries.list_rows(
                conn, app.tenant, flagged=True, acknowledged=None if show_all else False
            )
    flags = [flag_view(row) for row in rows]
    if options.json_output:
        click.echo(json.dumps(flags))
        return
    if not flags:
        click.echo("no open flags" if not show_all else "no flags")
    for flag in flags:
        handled_note = (
            f"  [acknowledged {flag['acknowledged_at']}: {flag['acknowledged_note']}]"
            if flag["acknowledged_at"]
            else ""
        )
        click.echo(
            f"{flag['invoice_number']}  {flag['customer_ref']}  PO {flag['po_number']} -> {flag['sink']}: "
            f"{flag_text(flag)}{handled_note}"
        )


@flags_group.command("ack")
@click.argument("names", nargs=-1, required=True)
@click.option("--note", required=True, help="What was done about it (kept with the flag).")
@pass_options
def flags_ack(options: Options, names: tuple[str, ...], note: str) -> None:
    """Mark flagged invoices (by number or idempotency key) handled; a later change flags them again."""
    from connector.model import utcnow
    from state import outbox_queries

    if not note.strip():
        fail("flags ack: --note must say what was done", exits.EXIT_USAGE)
    with handled():
        app = load(options)
        with app.engine.begin() as conn:
            named = outbox_queries.states_named(conn, app.tenant, names)
            unknown = [name for name in names if name not in named]
            if unknown:
                raise NotFoundError(f"no invoice {', '.join(map(repr, unknown))} in the outbox")
            done = outbox_queries.acknowledge_flags(conn, app.tenant, names, note.strip(), utcnow())
        if not done:
            raise NotFoundError(f"{', '.join(map(repr, names))}: not flagged")
    if options.json_output:
        click.echo(json.dumps({"acknowledged": done, "note": note.strip()}))
    else:
        click.echo(f"acknowledged {', '.join(done)}: {note.strip()}")
