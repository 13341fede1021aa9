"""`credit`: a credit note for a sent invoice in every sink that holds it, and optionally the
corrected invoice after it.

The credit note is planned in the outbox in one transaction with marking its invoice credited,
then pushed by the same protocol as invoices (lookup before send, so a retry, a crash or an
overlapping run never sends it twice). With `reissue`, the period is reconciled again at once
and its corrected invoice, under a new number, is pushed after the credit note.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.errors import RefusedError
from connector.jobs import finish
from connector.model import InvoicePlan
from connector.planning import plan_credit_note
from connector.pushing import push_all
from connector.reconcile.amending import sinks_without_credit_notes
from connector.reconcile.service import reconcile_and_plan
from connector.runtime import Connector
from state import credits
from state.tables import invoice_outbox

log = logging.getLogger("po_connector.credit")


def _sinks_of(app: Connector, name: str) -> list[str]:
    from sqlalchemy import or_, select

    with app.connect() as conn:
        rows = conn.execute(
            select(invoice_outbox.c.sink).where(
                invoice_outbox.c.tenant == app.tenant,
                or_(invoice_outbox.c.invoice_number == name, invoice_outbox.c.idempotency_key == name),
            )
        ).all()
    return sorted({row.sink for row in rows})


def _check_sinks_credit(app: Connector, sinks: list[str]) -> None:
    """Every sink the invoice went to must be configured and able to take a credit note."""
    refusing = sinks_without_credit_notes(app, sinks)
    if refusing:
        raise RefusedError(
            f"sink(s) {', '.join(map(repr, refusing))} are not configured or cannot take credit notes"
        )


def credit(app: Connector, name: str, *, reason: str, reissue: bool) -> dict[str, Any]:
    """Credit invoice `name` (number or idempotency key) everywhere it was sent; push the credit
    notes (and, with `reissue`, the corrected invoice); the summary lists what was planned."""
    reason = reason.strip()
    if not reason:
        raise RefusedError("credit needs a --reason saying why the invoice is credited")
    app.validate_adapters()
    sinks = _sinks_of(app, name)
    _check_sinks_credit(app, sinks)
    with app.run("credit") as run:

        def plan(invoice: InvoicePlan, remote_id: str) -> InvoicePlan:
            return plan_credit_note(
                invoice, reason=reason, issue_date=run.started_at.date(), remote_id=remote_id
            )

        try:
            with app.engine.begin() as conn:
                planned = credits.credit_invoice(
                    conn, app.tenant, name, plan_credit=plan, reissue=reissue, now=run.started_at
                )
        except credits.CreditRefused as exc:
            raise RefusedError(str(exc)) from None
        run.add("credit_notes_planned", sum(1 for item in planned if item.newly_planned))
        for item in planned:
            log.info(
                "invoice %s in %s: credit note %s %s",
                item.invoice_number,
                item.sink,
                item.credit_number,
                "planned" if item.newly_planned else "was planned before",
            )
        # Reconciled again at once: the PO's balance and the period's result show the credit,
        # and with `reissue` the period is invoiced again.
        reconcile_and_plan(app, run)
        # the reissue is planned for every configured sink, so all are pushed then
        push_all(app, run, None if reissue else sorted({item.sink for item in planned}))
        data = finish(run)
    data["credit_notes"] = [
        {"sink": item.sink, "invoice": item.invoice_number, "credit_note": item.credit_number}
        for item in planned
    ]
    data["reissue"] = reissue
    return data
