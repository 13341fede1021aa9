"""`po-connector mail ...`: the messages to customers (renewal PO requests, replies acknowledging
e-mailed POs) and support's decisions."""

from __future__ import annotations

import json

import click

from connector import exits
from connector.cli_base import Options, cli, fail, handled, load, pass_options, run_job


@cli.group("mail")
def mail_group() -> None:
    """Renewal PO requests: what is planned, sent, uncertain or dead, and deciding uncertain ones."""


@mail_group.command("list")
@click.option("--state", "states", multiple=True, help="Only this state (repeatable): planned, sent, ...")
@click.option("--replies", is_flag=True, help="The replies acknowledging e-mailed POs instead.")
@pass_options
def mail_list(options: Options, states: tuple[str, ...], replies: bool) -> None:
    """Every renewal request (withdrawn ones only when asked for by --state), oldest first; with
    --replies, the replies that acknowledged e-mailed POs."""
    from connector.mail_views import acknowledgement_replies, renewal_requests

    if replies:
        with handled():
            shown = [r for r in acknowledgement_replies(load(options)) if not states or r["state"] in states]
        if options.json_output:
            click.echo(json.dumps(shown))
            return
        for r in shown:
            click.echo(
                f"{r['id']:>4}  {r['state']:<11} PO {r['po_number']} rev {r['revision']} {r['decision']}"
                f"  to {r['recipient'] or '(no address)'}  in reply to {r['in_reply_to']}"
                f"  {r['sent_at'] or ''}"
            )
        return
    with handled():
        rows = renewal_requests(load(options), withdrawn="withdrawn" in states)
    if states:
        rows = [row for row in rows if row["state"] in states]
    if options.json_output:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no renewal requests" + (f" in state {', '.join(states)}" if states else ""))
    for r in rows:
        po = f"PO {r['po_number']}" if r["po_number"] else "no PO"
        when = f"sent {r['sent_at']}" if r["sent_at"] else f"planned {r['planned_at']}"
        error = f"  [{r['last_error']}]" if r["last_error"] and r["state"] != "sent" else ""
        click.echo(
            f"{r['id']:>4}  {r['state']:<11} {r['reason']:<10} {r['customer_ref']}  {po}  "
            f"{r['period_start']}..{r['period_end']}  {r['amount']} {r['currency']}  "
            f"to {r['recipient'] or '(no AP e-mail)'}  {when}{error}"
        )


@mail_group.command("show")
@click.argument("message_id", type=int)
@pass_options
def mail_show(options: Options, message_id: int) -> None:
    """One message as it goes (or went) out, headers and body."""
    from connector.errors import NotFoundError
    from state import messages

    with handled():
        app = load(options)
        with app.connect() as conn:
            row = messages.get(conn, app.tenant, message_id)
        if row is None:
            raise NotFoundError(f"no message {message_id} in the mail outbox (see `po-connector mail list`)")
    if options.json_output:
        click.echo(json.dumps(row, default=str))
    elif row["message"]:
        click.echo(row["message"].replace("\r\n", "\n"), nl=False)
    else:
        click.echo(f"message {message_id} is {row['state']}: not rendered (no recipient)")


@mail_group.command("resend")
@click.argument("message_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask (it may reach the customer twice).")
@pass_options
def mail_resend(options: Options, message_id: int, yes: bool) -> None:
    """Send an uncertain or dead message again, same Message-ID (after checking it did not arrive)."""
    from connector.cli_support import confirm
    from connector.mail_support import resend

    confirm(f"message {message_id} may already have reached the customer; send it again?", yes)
    run_job(options, lambda app: resend(app, message_id))


@mail_group.command("mark-sent")
@click.argument("message_id", type=int)
@click.option("--note", default="confirmed delivered", show_default=True, help="How it was checked.")
@pass_options
def mail_mark_sent(options: Options, message_id: int, note: str) -> None:
    """Record a message as sent (an uncertain one found delivered); it is never sent again."""
    from connector.mail_support import mark_sent

    if not note.strip():
        fail("mail mark-sent: --note must not be empty", exits.EXIT_USAGE)
    with handled():
        data = mark_sent(load(options), message_id, note.strip())
    if options.json_output:
        click.echo(json.dumps(data))
    else:
        click.echo(f"message {data['id']}: {data['was']} -> sent ({data['note']})")
