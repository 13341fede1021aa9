"""The message outbox as people read it: in a dry run, `status`, `mail list` and the report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from connector.runtime import Connector
from state import messages

# Rows a person may need to act on, or that still wait: status lists every one of them.
OPEN = (messages.PLANNED, messages.SENDING, messages.UNCERTAIN, messages.DEAD, messages.UNADDRESSED)
RECENTLY_SENT = 20  # sent requests status lists, newest first (the report lists them all)


def _iso(value: date | datetime | None) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return None if value is None else value.isoformat()


def request_view(row: dict[str, Any]) -> dict[str, Any]:
    """One message outbox row: what was asked, of whom, for which cycle, and when."""
    details = row["details"]
    return {
        "id": row["id"],
        "state": row["state"],
        "reason": details.get("kind", row["reason"]),
        "customer_ref": row["customer_ref"],
        "customer_name": details.get("customer_name", row["customer_ref"]),
        "po_number": row["po_number"],
        "period_start": details.get("period_start"),
        "period_end": details.get("period_end"),
        "amount": details.get("amount"),
        "currency": details.get("currency"),
        "recipient": row["recipient"],
        "subject": row["subject"],
        "request_id": details.get("request_id"),
        "message_id": row["message_id"],
        "why": details.get("why", ""),
        "planned_at": _iso(row["created_at"]),
        "sent_at": _iso(row["sent_at"]),
        "attempts": row["attempts"],
        "last_error": row["last_error"],
    }


def renewal_requests(
    app: Connector, *, every_sent: bool = True, withdrawn: bool = False
) -> list[dict[str, Any]]:
    """Requests (not withdrawn ones unless asked), oldest first; without `every_sent` only the
    latest sent ones beside every open one."""
    with app.connect() as conn:
        rows = messages.list_messages(conn, app.tenant, kind="renewal_request")
    shown = [request_view(row) for row in rows if withdrawn or row["state"] != messages.WITHDRAWN]
    if every_sent:
        return shown
    sent = [r for r in shown if r["state"] == messages.SENT]
    latest = {r["id"] for r in sorted(sent, key=lambda r: r["sent_at"] or "", reverse=True)[:RECENTLY_SENT]}
    return [r for r in shown if r["state"] in OPEN or r["id"] in latest]


def acknowledgement_replies(app: Connector) -> list[dict[str, Any]]:
    """The replies acknowledging e-mailed POs, oldest first."""
    with app.connect() as conn:
        rows = messages.list_messages(conn, app.tenant, kind="po_acknowledgement")
    out = []
    for row in rows:
        details = row["details"]
        out.append(
            {
                "id": row["id"],
                "state": row["state"],
                "po_number": row["po_number"],
                "revision": details.get("revision"),
                "decision": details.get("decision", ""),
                "recipient": row["recipient"],
                "in_reply_to": details.get("in_reply_to", ""),
                "message_id": row["message_id"],
                "sent_at": _iso(row["sent_at"]),
                "last_error": row["last_error"],
            }
        )
    return out


def mail_status(app: Connector) -> dict[str, Any] | None:
    """`status`'s mail part: rows per state and the requests to see (None without [mail])."""
    if app.settings.mail is None:
        return None
    with app.connect() as conn:
        counts = messages.count_by_state(conn, app.tenant)
    return {
        "transport": app.settings.mail.transport,
        "outbox": counts,
        "renewal_requests": renewal_requests(app, every_sent=False),
        # replies that need a person: they may have been queued (uncertain) or were refused
        "replies_open": [
            r for r in acknowledgement_replies(app) if r["state"] in (messages.UNCERTAIN, messages.DEAD)
        ],
    }


def request_line(r: dict[str, Any]) -> str:
    """A request on one line: reason, customer, PO, cycle, amount."""
    po = f"PO {r['po_number']}" if r["po_number"] else "no PO"
    return (
        f"{r['reason']:<10} {r['customer_ref']}  {po}  {r['period_start']}..{r['period_end']}  "
        f"{r['amount']} {r['currency']}"
    )


def human_mail_status(mail: dict[str, Any]) -> list[str]:
    """The lines `status` prints about mail: counts, what needs a decision, what was asked when."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(mail["outbox"].items())) or "empty"
    lines = [f"mail ({mail['transport']}): {counts}"]
    for r in mail["renewal_requests"]:
        state, ident = r["state"], r["id"]
        if state == messages.UNCERTAIN:
            lines.append(
                f"MAIL UNCERTAIN {ident} to {r['recipient']}: {request_line(r)}: {r['last_error']}; "
                f"decide: `po-connector mail mark-sent {ident}` (it arrived) or `mail resend {ident}`"
            )
        elif state == messages.DEAD:
            lines.append(f"MAIL DEAD {ident} to {r['recipient']}: {request_line(r)}: {r['last_error']}")
        elif state == messages.UNADDRESSED:
            lines.append(f"MAIL NO ADDRESS {ident}: {request_line(r)}: add ap_email to the customer master")
        elif state == messages.SENT:
            lines.append(f"ASKED {r['sent_at']} {r['recipient']}: {request_line(r)}")
        else:
            lines.append(f"MAIL {state.upper()} {ident} to {r['recipient']}: {request_line(r)}")
    for r in mail.get("replies_open", []):
        lines.append(
            f"REPLY {r['state'].upper()} {r['id']} to {r['recipient']}: PO {r['po_number']} {r['decision']}: "
            f"{r['last_error']}; decide with `po-connector mail mark-sent {r['id']}`"
            f" or `mail resend {r['id']}`"
        )
    return lines


def request_actions(requests: list[dict[str, Any]], name: Callable[[str], str]) -> list[dict[str, str]]:
    """The report's action entries for requests that need a person: uncertain, dead, unaddressed."""
    out = []
    for r in requests:
        ident, to = r["id"], r["recipient"]
        if r["state"] == messages.UNCERTAIN:
            what = (
                f"PO request {ident} to {to} may not have arrived ({r['last_error']}): check, then "
                f"`po-connector mail mark-sent {ident}` or `po-connector mail resend {ident}`"
            )
        elif r["state"] == messages.DEAD:
            what = f"PO request {ident} to {to} was refused: {r['last_error']}"
        elif r["state"] == messages.UNADDRESSED:
            what = (
                f"PO request for {r['period_start']} – {r['period_end']} not mailed: "
                "no ap_email in the customer master"
            )
        else:
            continue
        out.append(
            {
                "kind": f"mail_{r['state']}",
                "customer": name(r["customer_ref"]),
                "po_number": r["po_number"],
                "what": what,
                "amount": f"{r['amount']} {r['currency']}" if r["amount"] else "",
            }
        )
    return out
