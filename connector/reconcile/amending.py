"""Sent invoices whose PO or billing period changed afterwards: what changed, and (when the
`[credit] on_amended` policy says so) crediting them so the period is invoiced again.

The policy runs before reconcile, in its own transaction: the credited invoices give their draw
back and free their periods, so the reconcile that follows in the same run invoices them again,
as they now reconcile, under new numbers. An invoice is credited automatically only when every
copy is known to be in its sink and every such sink takes credit notes; otherwise it is flagged
as before, for a person.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.model import BillingPeriod, InvoicePlan, PurchaseOrder
from connector.planning import NO_PO_KEY, plan_credit_note
from connector.ports import Capability
from connector.runtime import Connector, RunContext
from state import billing_store, credits, ingest, outbox_queries

log = logging.getLogger("po_connector.reconcile")


def sinks_without_credit_notes(app: Connector, sinks: list[str]) -> list[str]:
    """The sinks among `sinks` that are not configured or cannot take a credit note."""
    configured = app.sinks
    return [
        sink
        for sink in sinks
        if sink not in configured
        or Capability.CREDIT_NOTES not in frozenset(getattr(type(configured[sink]), "capabilities", ()))
    ]


def changes_after_sending(
    row: dict[str, Any], period: BillingPeriod | None, po: PurchaseOrder | None, conn: Any
) -> str:
    """What changed since the invoice of `row` was sent (empty when nothing did)."""
    notes = []
    if row["po_key"] == NO_PO_KEY:
        pass  # invoiced without a PO: only its period can change
    elif po is None:
        notes.append(f"PO {row['po_number']} is no longer stored")
    elif po.revision != row["po_revision"]:
        what = ingest.po_changes_since(conn, po, row["po_revision"])
        shown = f": {'; '.join(what)}" if what else ""
        notes.append(
            f"PO {row['po_number']} is at revision {po.revision}, invoiced at {row['po_revision']}{shown}"
        )
    if period is None:
        notes.append("the billing period is gone from billing")
    elif period.total.quantized().amount != row["amount"] or period.currency != row["currency"]:
        notes.append(f"the period now bills {period.total}, invoiced {row['amount']} {row['currency']}")
    return "; ".join(notes)


def credit_amended(app: Connector, run: RunContext) -> None:
    """Credit, to be reissued, every sent invoice whose PO or period changed since it was sent."""
    with app.engine.begin() as conn:
        standing = [row for row in outbox_queries.sent_rows(conn, app.tenant) if row["credited_by"] is None]
        if not standing:
            return
        pos = {po.key: po for po in ingest.load_pos(conn, app.tenant)}
        periods = {p.key: p for p in billing_store.load_billing_periods(conn, app.tenant)}
        by_number: dict[str, list[dict[str, Any]]] = {}
        for row in standing:
            by_number.setdefault(row["invoice_number"], []).append(row)
        for number, rows in sorted(by_number.items()):
            first = rows[0]
            period, po = periods.get(first["billing_key"]), pos.get(first["po_key"])
            changes = changes_after_sending(first, period, po, conn)
            if changes:
                _credit_changed(app, run, conn, number, rows, changes)


def _credit_changed(
    app: Connector, run: RunContext, conn: Any, number: str, rows: list[dict[str, Any]], changes: str
) -> None:
    unsure = [row["sink"] for row in rows if row["state"] != "pushed" or row["uncertain"]]
    refusing = sinks_without_credit_notes(app, sorted({row["sink"] for row in rows}))
    if unsure or refusing:
        why = (
            f"not known to be in {', '.join(unsure)}" if unsure else f"{', '.join(refusing)}: no credit notes"
        )
        log.warning("invoice %s: %s; not credited automatically (%s)", number, changes, why)
        return
    day = run.started_at.date()

    def plan(invoice: InvoicePlan, remote_id: str) -> InvoicePlan:
        return plan_credit_note(
            invoice, reason=f"corrected: {changes}"[:500], issue_date=day, remote_id=remote_id
        )

    planned = credits.credit_invoice(
        conn, app.tenant, number, plan_credit=plan, reissue=True, now=run.started_at
    )
    if any(item.newly_planned for item in planned):
        run.add("invoices_credited")
        log.warning(
            "invoice %s: %s; credited by %s, to be reissued", number, changes, planned[0].credit_number
        )
