"""Support's decisions on the message outbox: send a message again, or record it as sent.

An uncertain message (the connection was lost after the server took its text) is never sent
again by itself: over SMTP there is no way to ask the server whether it queued it. Support
looks (the customer's AP inbox, the relay's log) and decides: `mail mark-sent ID` when it
arrived, `mail resend ID` when it did not (the same bytes under the same Message-ID, which
lets a receiving system that de-duplicates by Message-ID drop a second copy).
"""

from __future__ import annotations

from typing import Any

from connector.errors import ConfigError, NotFoundError, RefusedError
from connector.jobs import finish
from connector.mail_sending import send_due
from connector.model import utcnow
from connector.runtime import Connector
from state import messages


def _row(app: Connector, row_id: int) -> dict[str, Any]:
    if app.settings.mail is None:
        raise ConfigError("mail: there is no [mail] block in the configuration")
    with app.connect() as conn:
        row = messages.get(conn, app.tenant, row_id)
    if row is None:
        raise NotFoundError(f"no message {row_id} in the mail outbox (see `po-connector mail list`)")
    return row


def resend(app: Connector, row_id: int) -> dict[str, Any]:
    """Put an uncertain or dead message back and send the due messages now."""
    row = _row(app, row_id)
    if row["state"] not in messages.DECIDABLE:
        raise RefusedError(f"message {row_id} is {row['state']}: only an uncertain or dead message is resent")
    with app.run("mail-resend") as run:
        with app.engine.begin() as conn:
            if messages.resend(conn, app.tenant, row_id, utcnow()):
                run.add("renewal_requests_resent")
        send_due(app, run)
        return finish(run)


def mark_sent(app: Connector, row_id: int, note: str) -> dict[str, Any]:
    """Record a message as sent (found delivered, or handled otherwise); it is never sent again."""
    row = _row(app, row_id)
    if row["state"] not in messages.MARKABLE:
        raise RefusedError(
            f"message {row_id} is {row['state']}: only an uncertain, dead, planned or unaddressed "
            "message can be marked sent"
        )
    with app.engine.begin() as conn:
        done = messages.mark_sent_by_support(conn, app.tenant, row_id, utcnow(), f"marked sent: {note}")
    if not done:
        raise RefusedError(f"message {row_id} changed meanwhile; see `po-connector mail list`")
    return {"id": row_id, "state": messages.SENT, "was": row["state"], "note": note}
