"""`po accept|reject`: support's decision on a PO revision, answered to the buyer at once."""

from __future__ import annotations

from typing import Any

from connector.acknowledging import (
    answering_sources,
    mail_answers,
    record_acknowledgements,
    send_acknowledgements,
)
from connector.errors import NotFoundError
from connector.jobs import finish
from connector.model import AckDecision
from connector.reconcile.service import reconcile_and_plan
from connector.runtime import Connector
from state import acks, ingest


def decide_po(app: Connector, po_number: str, decision: AckDecision, reason: str) -> dict[str, Any]:
    """Support's decision on the newest revision of the PO(s) numbered `po_number`, sent at once;
    the reconciliation is run again, as the decision changes what the PO binds (nothing pushed)."""
    app.validate_adapters()
    answering = answering_sources(app)
    with app.run(f"po-{decision.value}") as run:
        record_acknowledgements(app, run)
        with app.engine.begin() as conn:
            rows = acks.latest(conn, app.tenant, po_number)
            if not rows:
                raise NotFoundError(f"no PO {po_number!r} in the state (pull it first, or check the number)")
            changed = []
            for row in rows:
                po = ingest.po_at_revision(conn, row["po_key"], row["revision"])
                by_mail = mail_answers(app) and po is not None and bool(po.origin_message)
                answers = row["source"] in answering or by_mail
                if acks.decide(conn, row, decision, reason, run.started_at, can_acknowledge=answers):
                    changed.append(row)
        run.add("acknowledgements_decided", len(changed))
        send_acknowledgements(app, run, sorted({row["source"] for row in changed}))
        # A rejected PO binds nothing, an accepted one binds again: the results follow at once.
        reconcile_and_plan(app, run)
        data = finish(run)
    data["po_number"] = po_number
    data["decision"] = decision.value
    data["revisions"] = [{"source": row["source"], "revision": row["revision"]} for row in rows]
    return data
