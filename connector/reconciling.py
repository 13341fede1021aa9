"""Runs reconciliation over the stored state and writes results and invoice plans together.

The match results and the outbox rows they justify are written in ONE transaction, so a crash
can never leave a matched period without its plan, or a plan without its match.
"""

from __future__ import annotations

import logging
from datetime import date

from connector.model import MatchStatus, Money
from connector.planning import plan_invoice
from connector.reconcile import PriorInvoice, reconcile
from connector.runtime import Connector, RunContext
from state import ingest, outbox, results

log = logging.getLogger("po_connector.reconcile")

# Billing records that are reconciled (early warning) but never invoiced from here.
NOT_INVOICEABLE = frozenset({"upcoming", "preview", "void", "voided", "cancelled"})


def _prior_invoices(consumed: list[outbox.Consumption]) -> list[PriorInvoice]:
    """One draw per (PO, billing period), however many sinks the invoice goes to."""
    unique: dict[tuple[str, str], PriorInvoice] = {}
    for row in consumed:
        key = (row.po_key, row.billing_key)
        if key in unique:
            continue
        unique[key] = PriorInvoice(
            po_key=row.po_key,
            billing_key=row.billing_key,
            amount=Money(amount=row.amount, currency=row.currency),
            pushed=row.pushed,
            po_revision=row.po_revision,
            line_quantities={
                line.po_line_no: line.quantity for line in row.plan.lines if line.po_line_no is not None
            },
        )
    return list(unique.values())


def reconcile_and_plan(app: Connector, run: RunContext, *, as_of: date | None = None) -> None:
    """Reconcile every stored billing period and plan an invoice per sink for each match."""
    settings = app.settings.reconcile
    if settings.as_of is None:
        settings = settings.model_copy(update={"as_of": as_of or run.started_at.date()})
    sinks = list(app.sinks)
    with app.engine.begin() as conn:
        pos = ingest.load_pos(conn, app.tenant)
        periods = ingest.load_billing_periods(conn, app.tenant)
        prior = _prior_invoices(outbox.consumption(conn, app.tenant))
        outcome = reconcile(pos, periods, app.customer_map, app.sku_map, settings, prior)
        by_key = {period.key: period for period in periods}
        for result in outcome.results:
            run.add(result.status.value)
        for billing_key, allocation in sorted(outcome.allocations.items()):
            period = by_key[billing_key]
            if period.status.lower() in NOT_INVOICEABLE:
                run.add("not_invoiceable")
                continue
            for sink in sinks:
                plan = plan_invoice(
                    allocation,
                    period,
                    sink=sink,
                    tenant=app.tenant,
                    customer_name=app.customer_map.name_of(period.customer_ref) or period.customer_name,
                    default_net_days=app.settings.default_net_days,
                )
                written = outbox.upsert_plan(conn, plan, run.started_at)
                if written == "planned":
                    run.add("invoices_planned")
                elif written == "amended":
                    run.add("amended_after_push")
                    log.warning(
                        "invoice %s was sent before PO %s or its period changed; flagged for review",
                        plan.invoice_number,
                        plan.po_number,
                    )
        spans = {p.key: (p.period_start, p.period_end) for p in periods}
        results.replace_results(conn, app.tenant, outcome.results, spans, run.started_at, run.run_id)
    for status in MatchStatus:
        run.counts.setdefault(status.value, 0)
