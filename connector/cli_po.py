"""`po-connector po ...`: what support staff ask about one purchase order."""

from __future__ import annotations

import json
from typing import Any

import click

from connector import exits
from connector.cli_base import Options, cli, fail, handled, load, pass_options


@cli.group("po")
def po_group() -> None:
    """One purchase order: its revisions and what changed in each."""


@po_group.command("history")
@click.argument("po_number")
@pass_options
def po_history(options: Options, po_number: str) -> None:
    """Every version of the PO recorded, oldest first: our revision, the buyer's version, changes."""
    from state import ingest

    with handled():
        app = load(options)
        with app.connect() as conn:
            history = ingest.po_revision_history(conn, app.tenant, po_number)
    if not history:
        fail(
            f"not found: no PO {po_number!r} in the state (pull it first, or check the number)",
            exits.EXIT_USAGE,
        )
    if options.json_output:
        click.echo(json.dumps({"po_number": po_number, "history": history}))
        return
    click.echo(_human_history(po_number, history))


def _human_history(po_number: str, history: list[dict[str, Any]]) -> str:
    from state.po_changes import describe

    lines = [f"PO {po_number}"]
    for entry in history:
        version = f", buyer version {entry['source_version']}" if entry["source_version"] else ""
        lines.append(
            f"  revision {entry['revision']}{version}  {entry['kind']:<8}  {entry['recorded_at']}"
            f"  ({entry['source']}/{entry['external_id']})"
        )
        lines.extend(f"      {describe(change)}" for change in entry["changes"])
    return "\n".join(lines)
