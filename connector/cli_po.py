"""`po-connector po ...`: what support staff ask about one purchase order."""

from __future__ import annotations

import json
from typing import Any

import click

from connector import exits
from connector.cli_base import Options, cli, fail, handled, load, pass_options, run_job


@cli.group("po")
def po_group() -> None:
    """One purchase order: its revisions, what changed in each, and accepting or rejecting it."""


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


def _decide(options: Options, po_number: str, decision: str, reason: str) -> None:
    from connector.model import AckDecision
    from connector.po_decisions import decide_po

    if not reason.strip():
        fail(f"po {decision}: --reason must say why", exits.EXIT_USAGE)
    run_job(options, lambda app: decide_po(app, po_number, AckDecision(decision), reason.strip()))


@po_group.command("accept")
@click.argument("po_number")
@click.option("--reason", default="accepted by support", show_default=True, help="Kept with the decision.")
@pass_options
def po_accept(options: Options, po_number: str, reason: str) -> None:
    """Accept the PO's newest revision and tell the buyer (a PO waiting for support, or a rejected one)."""
    _decide(options, po_number, "accept", reason)


@po_group.command("reject")
@click.argument("po_number")
@click.option("--reason", required=True, help="Why: sent to the buyer where the channel carries it.")
@pass_options
def po_reject(options: Options, po_number: str, reason: str) -> None:
    """Reject the PO's newest revision and tell the buyer; a rejected PO is not invoiced against."""
    _decide(options, po_number, "reject", reason)


@po_group.command("acks")
@click.option("--waiting", is_flag=True, help="Only revisions waiting for a decision.")
@pass_options
def po_acks(options: Options, waiting: bool) -> None:
    """Each PO revision's decision and whether the buyer was told, oldest first."""
    from state import acks

    with handled():
        app = load(options)
        with app.connect() as conn:
            rows = acks.list_acks(conn, app.tenant, states=(acks.WAITING,) if waiting else ())
    shown = [
        {
            "po_number": row["po_number"],
            "revision": row["revision"],
            "source": row["source"],
            "decision": row["decision"],
            "decided_by": row["decided_by"] or "",
            "reason": row["reason"],
            "state": row["state"],
            "sent_at": row["sent_at"].isoformat() if row["sent_at"] else "",
            "error": row["last_error"] or "",
        }
        for row in rows
    ]
    if options.json_output:
        click.echo(json.dumps(shown))
        return
    if not shown:
        click.echo("no acknowledgements" if not waiting else "nothing waits for a decision")
    for row in shown:
        sent = f" sent {row['sent_at']}" if row["sent_at"] else ""
        error = f" ! {row['error']}" if row["error"] else ""
        click.echo(
            f"{row['po_number']} rev {row['revision']} ({row['source']}): {row['decision']}"
            f" [{row['state']}]{sent} - {row['reason']}{error}"
        )
