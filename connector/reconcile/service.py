"""Runs reconciliation over the stored state and writes results and invoice plans together.

The match results and the outbox rows they justify are written in ONE transaction, so a crash
can never leave a matched period without its plan, or a plan without its match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from connector.model import (
    BillingPeriod,
    InvoicePlan,
    MatchResult,
    MatchStatus,
    Money,
    PurchaseOrder,
    Reason,
    Reissue,
)
from connector.planning import NO_PO_KEY, idempotency_key, plan_invoice
from connector.reconcile import (
    PriorInvoice,
    ReconcileOutcome,
    ReconcileSettings,
    reconcile,
    renewal_warnings,
)
from connector.reconcile.amending import changes_after_sending, credit_amended
from connector.reconcile.indexes import norm_po_number
from connector.reconcile.inputs import settings_digest
from connector.runtime import Connector, RunContext
from connector.taxing import TaxResolver
from state import (
    acks,
    billing_store,
    credits,
    ingest,
    input_notes,
    outbox,
    outbox_queries,
    reconcile_checkpoints,
    results,
)
from state.scopes import MAX_SCOPES

log = logging.getLogger("po_connector.reconcile")

# Billing records that are reconciled (early warning) but never invoiced from here.
NOT_INVOICEABLE = frozenset({"upcoming", "preview", "void", "voided", "cancelled"})


def _prior_invoices(consumed: list[outbox_queries.Consumption]) -> list[PriorInvoice]:
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
            cycle=(row.plan.period_start, row.plan.period_end),
        )
    return list(unique.values())


def reconcile_and_plan(
    app: Connector, run: RunContext, *, as_of: date | None = None, skip_unchanged: bool = False
) -> bool:
    """Reconcile every stored billing period and plan an invoice per sink for each match.

    With `skip_unchanged`, only the customers whose inputs changed since the last
    reconciliation are reconciled (`state.reconcile_checkpoints`): the others' stored results
    and plans stand. When no customer's did, nothing is reconciled and the stored results are
    only counted: True. A change to the settings, maps or day reconciles every customer.

    A period whose invoice was sent (or may have been) keeps that invoice's PO: it is never
    matched again, so a later PO, a closed PO or a late earlier period cannot produce a second
    invoice for it; its amount keeps counting against its PO. A change to its PO or its period
    after sending flags the invoice `amended_after_push`. Plans never sent whose match is gone
    are withdrawn in the same transaction.
    """
    day = app.settings.reconcile.as_of or as_of or run.started_at.date()
    settings = app.settings.reconcile.model_copy(update={"as_of": day})
    now = run.started_at
    if app.settings.credit.on_amended == "credit_and_reissue":
        credit_amended(app, run)
    config_digest = settings_digest(app, day)
    resolve = _scope_resolver(app)
    with app.engine.begin() as conn:
        since = input_notes.horizon(conn)
        stored = reconcile_checkpoints.stored_inputs(conn, app.tenant)
        # The customer stamped on each PO holds while the settings and maps do.
        stamps_hold = stored is not None and stored.settings == config_digest
        scopes = None
        if skip_unchanged and stamps_hold and not input_notes.written_since_checkpoint(conn, app.tenant):
            _count_stored(conn, app, run)
            return True
        if skip_unchanged and stored is not None and stamps_hold:
            scopes, current = _changed_scopes(conn, app, stored, config_digest, resolve)
        if scopes is not None and not scopes:
            # The inputs digest as the checkpoint says: what the notes were for is accounted for.
            input_notes.clear(conn, app.tenant, since)
            _count_stored(conn, app, run)
            return True
        if scopes is None:
            batches = _every_scope_in_batches(conn, app, config_digest, resolve, stamps_hold)
        else:
            run.add("customers_reconciled", len(scopes))
            # A batch reads its customers' POs by their stamps: the moved ones are stamped first.
            _resolve_pos(conn, app, every=False)
            batches = _in_batches(scopes, current)
        rejected = acks.rejected_po_keys(conn, app.tenant)  # a rejected PO binds nothing
        issues = credits.reissues(conn, app.tenant)
        for batch in batches:
            _reconcile_scopes(conn, app, run, settings, batch, rejected, issues)
        counts = results.count_by_status(conn, app.tenant)
        for status in MatchStatus:
            run.add(status.value, counts.get(status.value, 0))
        # Digested after this reconciliation's own writes: reconciling that state again changes
        # nothing. After some customers only, only theirs are digested again.
        if scopes is None:
            inputs = reconcile_checkpoints.current_inputs(conn, app.tenant, config_digest, resolve)
        else:
            inputs = reconcile_checkpoints.inputs_after(conn, app.tenant, current, scopes, resolve)
        reconcile_checkpoints.record(conn, app.tenant, inputs, now, run.run_id)
        input_notes.clear(conn, app.tenant, since)
    return False


# Customers reconciled together when every one is: their POs, periods, draws, results and
# plans are held at once, so the memory a reconciliation needs is that of one batch. A batch
# closes at either bound; a group of tied customers larger than both is one batch of its own.
CUSTOMERS_PER_BATCH = 250
INPUT_ROWS_PER_BATCH = 2000  # POs, billing periods and outbox rows
_STAMPS_PER_READ = 1000
PLANS_PER_WRITE = 500  # invoice plans held before they are stored together


def _every_scope_in_batches(
    conn: Connection, app: Connector, config_digest: str, resolve: Callable[[str], str], stamps_hold: bool
) -> list[set[str]]:
    """Every customer (with inputs or with stored results), in batches that keep each group of
    tied customers whole; every PO is first resolved to its customer as it stands (every one
    again unless the stamps hold)."""
    _resolve_pos(conn, app, every=not stamps_hold)
    inputs = reconcile_checkpoints.current_inputs(conn, app.tenant, config_digest, resolve)
    gone = reconcile_checkpoints.scopes_with_results(conn, app.tenant) - inputs.scopes.keys()
    return _in_batches(inputs.scopes.keys() | gone, inputs)


def _in_batches(scopes: Collection[str], inputs: reconcile_checkpoints.ReconcileInputs) -> list[set[str]]:
    """`scopes` in batches that close at either bound and keep each group of tied customers
    (one group digest in `inputs`) whole; a customer without inputs (its results are to go) is
    a group of its own."""
    groups: dict[str, list[str]] = {}
    alone: list[list[str]] = []
    for scope in sorted(scopes):
        digest = inputs.scopes.get(scope)
        if digest is None:
            alone.append([scope])
        else:
            groups.setdefault(digest, []).append(scope)
    batches: list[set[str]] = []
    batch: set[str] = set()
    rows = 0
    for members in [*groups.values(), *alone]:
        size = sum(inputs.sizes.get(scope, 0) for scope in members)
        if batch and (len(batch) + len(members) > CUSTOMERS_PER_BATCH or rows + size > INPUT_ROWS_PER_BATCH):
            batches.append(batch)
            batch, rows = set(), 0
        batch.update(members)
        rows += size
    if batch or not batches:
        batches.append(batch)
    return batches


def _resolve_pos(conn: Connection, app: Connector, *, every: bool) -> None:
    """Stamp each PO whose content moved since it was last resolved (or `every` one) with its
    customer, a chunk at a time."""
    after = 0
    while chunk := reconcile_checkpoints.pos_to_resolve(
        conn, app.tenant, after, _STAMPS_PER_READ, every=every
    ):
        stamps = []
        for record_id, canonical, content in chunk:
            po = PurchaseOrder.model_validate_json(canonical)
            stamps.append(_stamp_of(app, record_id, po, content))
        reconcile_checkpoints.stamp(conn, stamps)
        after = chunk[-1][0]


def _stamp_of(
    app: Connector, record_id: int, po: PurchaseOrder, content: str
) -> reconcile_checkpoints.PoStamp:
    customer = app.customer_map.customer_for(po) or ""
    return reconcile_checkpoints.PoStamp(record_id, customer, norm_po_number(po.po_number), content)


def _scope_resolver(app: Connector) -> Callable[[str], str]:
    """A stored PO's scope: the customer its buyer resolves to, '' when none."""
    customer_for = app.customer_map.customer_for

    def resolve(canonical: str) -> str:
        return customer_for(PurchaseOrder.model_validate_json(canonical)) or ""

    return resolve


def _changed_scopes(
    conn: Connection,
    app: Connector,
    stored: reconcile_checkpoints.ReconcileInputs,
    config_digest: str,
    resolve: Callable[[str], str],
) -> tuple[set[str] | None, reconcile_checkpoints.ReconcileInputs]:
    """The customers to reconcile again (None for every one: most of them changed), and the
    inputs as they stand."""
    current = reconcile_checkpoints.current_inputs(conn, app.tenant, config_digest, resolve)
    changed = reconcile_checkpoints.changed_scopes(conn, app.tenant, stored, current)
    known = len(stored.scopes.keys() | current.scopes.keys())
    if len(changed) > MAX_SCOPES or 2 * len(changed) > known:
        return None, current  # most of the book: one full read costs less than many narrow ones
    return changed, current


def _count_stored(conn: Connection, app: Connector, run: RunContext) -> None:
    """Count the stored results: nothing reconciliation reads changed since the last one."""
    counts = results.count_by_status(conn, app.tenant)
    for status in MatchStatus:
        run.counts[status.value] = run.counts.get(status.value, 0) + counts.get(status.value, 0)
    run.add("reconcile_unchanged")
    log.info(
        "nothing reconciliation reads changed since the last one: its %d results stand", sum(counts.values())
    )


def _owners_elsewhere(
    conn: Connection, tenant: str, scopes: set[str], rejected: set[str], periods: list[BillingPeriod]
) -> dict[str, set[str | None]]:
    """For the PO numbers the periods name, the customers of POs outside `scopes` with that number."""
    named = {norm_po_number(period.po_number) for period in periods if period.po_number}
    owners: dict[str, set[str | None]] = {}
    for key, number, customer in ingest.po_numbers_outside(conn, tenant, scopes, named):
        if key not in rejected:
            owners.setdefault(number, set()).add(customer or None)
    return owners


def _reconcile_scopes(
    conn: Connection,
    app: Connector,
    run: RunContext,
    settings: ReconcileSettings,
    scopes: set[str],
    rejected: set[str],
    issues: dict[str, Reissue],
) -> None:
    """Reconcile the customers in `scopes` and write their results and plans; stamp each PO
    read with the customer it resolves to."""
    now = run.started_at
    stored_pos = ingest.load_pos_of(conn, app.tenant, scopes)
    pos = [item.po for item in stored_pos if item.po.key not in rejected]
    periods = billing_store.load_billing_periods(conn, app.tenant, scopes)
    sent = outbox_queries.sent_rows(conn, app.tenant, scopes)
    locked = {row["billing_key"] for row in sent}
    open_periods = [p for p in periods if p.key not in locked]
    prior = _prior_invoices(outbox_queries.consumption(conn, app.tenant, scopes))
    owners = _owners_elsewhere(conn, app.tenant, scopes, rejected, periods)
    open_periods, held_for_tax = _resolve_tax(app, open_periods)
    outcome = reconcile(pos, open_periods, app.customer_map, app.sku_map, settings, prior, owners)
    outcome = _hold_for_tax(outcome, held_for_tax)
    by_key = {period.key: period for period in periods}
    by_key.update({period.key: period for period in open_periods})
    kept: set[str] = set()
    plans: list[InvoicePlan] = []
    # Planned (and so pushed) in invoice-date order: ERPs such as Tryton refuse to number an
    # invoice dated before one their sequence already numbered.
    in_date_order = sorted(
        outcome.allocations.items(),
        key=lambda item: (by_key[item[0]].invoice_date or by_key[item[0]].period_start, item[0]),
    )
    for billing_key, allocation in in_date_order:
        period = by_key[billing_key]
        if period.status.lower() in NOT_INVOICEABLE:
            run.add("not_invoiceable")
            continue
        customer = app.customer_map.get(period.customer_ref)
        for sink in app.sinks:
            plan = plan_invoice(
                allocation,
                period,
                sink=sink,
                tenant=app.tenant,
                customer_name=app.customer_map.name_of(period.customer_ref) or period.customer_name,
                default_net_days=app.settings.default_net_days,
                buyer=customer.party() if customer is not None else None,
                reissue=issues.get(billing_key),
            )
            kept.add(plan.idempotency_key)
            plans.append(plan)
            if len(plans) == PLANS_PER_WRITE:
                _store_plans(conn, run, plans, now)
    _store_plans(conn, run, plans, now)
    locked_results = _keep_sent(conn, app, run, sent, by_key, {po.key: po for po in pos}, kept, issues)
    locked_results = _with_renewal_warnings(locked_results, pos, prior, settings)
    withdrawn = outbox.withdraw_unjustified(
        conn, app.tenant, kept, now, "withdrawn: the billing period no longer matches this PO", scopes
    )
    run.add("invoices_withdrawn", len(withdrawn))
    all_results = [*outcome.results, *locked_results]
    spans = {p.key: (p.period_start, p.period_end) for p in periods}
    results.replace_results(conn, app.tenant, all_results, spans, now, run.run_id, scopes)
    reconcile_checkpoints.stamp(
        conn,
        [_stamp_of(app, item.record_id, item.po, item.content_hash) for item in stored_pos if item.moved],
    )


def _store_plans(conn: Connection, run: RunContext, plans: list[InvoicePlan], now: datetime) -> None:
    """Store the plans made so far, in the order made, and let them go."""
    if planned := outbox.upsert_plans(conn, plans, now).count("planned"):
        run.add("invoices_planned", planned)
    plans.clear()


def _resolve_tax(
    app: Connector, periods: list[BillingPeriod]
) -> tuple[list[BillingPeriod], dict[str, tuple[Reason, ...]]]:
    """Every period with its lines' tax; the reasons of those whose tax cannot make a valid invoice.

    A held period is still reconciled (its PO keeps its balance for it and its other problems are
    reported at once), but never invoiced until its tax is fixed.
    """
    tax = app.settings.tax
    resolver = TaxResolver(tax.order, app.sku_map, required=tax.required, supplier=app.supplier)
    taxed: list[BillingPeriod] = []
    held: dict[str, tuple[Reason, ...]] = {}
    for period in periods:
        found = resolver.resolve(period, app.customer_map.get(period.customer_ref))
        if found.period is None:
            held[period.key] = found.reasons
            taxed.append(period)
        else:
            taxed.append(found.period)
    return taxed, held


def _hold_for_tax(outcome: ReconcileOutcome, held: dict[str, tuple[Reason, ...]]) -> ReconcileOutcome:
    """Matched periods whose tax is not known or not valid become mismatches with the tax reasons."""
    if not held:
        return outcome
    allocations = {key: value for key, value in outcome.allocations.items() if key not in held}
    results = []
    for result in outcome.results:
        reasons = held.get(result.billing_key or "")
        if reasons is None:
            results.append(result)
        elif result.status is MatchStatus.MATCHED:
            results.append(result.model_copy(update={"status": MatchStatus.MISMATCH, "reasons": reasons}))
        else:
            results.append(result.model_copy(update={"reasons": (*result.reasons, *reasons)}))
    return ReconcileOutcome(results=tuple(results), allocations=allocations)


def _with_renewal_warnings(
    found: list[MatchResult], pos: list[PurchaseOrder], prior: list[PriorInvoice], settings: ReconcileSettings
) -> list[MatchResult]:
    """Renewal warnings for POs whose periods were invoiced earlier (not matched again)."""
    consumed: dict[str, Decimal] = {}
    for invoice in prior:
        consumed[invoice.po_key] = consumed.get(invoice.po_key, Decimal(0)) + invoice.amount.amount
    latest = {po.key: po for po in pos}
    out = []
    for result in found:
        po = latest.get(result.po_key or "")
        if po is None:
            out.append(result)
            continue
        warnings = renewal_warnings(po, consumed.get(po.key, Decimal(0)), settings)
        out.append(result.model_copy(update={"warnings": warnings}) if warnings else result)
    return out


def _keep_sent(
    conn: Connection,
    app: Connector,
    run: RunContext,
    sent: list[dict[str, Any]],
    periods: dict[str, BillingPeriod],
    pos: dict[str, PurchaseOrder],
    kept: set[str],
    issues: dict[str, Reissue],
) -> list[MatchResult]:
    """Matched results for periods already invoiced; flag changes; plan them for new sinks.

    A period whose invoice was credited without a reissue is settled: it stays matched, with a
    `credited` warning, and nothing more is planned or flagged for it.
    """
    by_period: dict[str, list[dict[str, Any]]] = {}
    for row in sent:
        by_period.setdefault(row["billing_key"], []).append(row)
    found: list[MatchResult] = []
    for billing_key, rows in sorted(by_period.items()):
        first = rows[0]
        period = periods.get(billing_key)
        without_po = first["po_key"] == NO_PO_KEY
        po = pos.get(first["po_key"])
        settled = first["credited_by"] is not None
        found.append(
            MatchResult(
                status=MatchStatus.MATCHED,
                billing_key=billing_key,
                po_key=None if without_po else first["po_key"],
                po_number=None if without_po else first["po_number"],
                customer_ref=first["customer_ref"],
                amount=Money(amount=first["amount"], currency=first["currency"]),
                warnings=(
                    (Reason(code="credited", detail=f"invoice {first['invoice_number']} was credited"),)
                    if settled
                    else ()
                ),
            )
        )
        if settled:
            kept.update(row["idempotency_key"] for row in rows)
            continue
        changes = changes_after_sending(first, period, po, conn)
        for row in rows:
            kept.add(row["idempotency_key"])
            if changes and outbox_queries.flag_amended(conn, row["idempotency_key"], changes, run.started_at):
                run.add("amended_after_push")
                log.warning("invoice %s: %s; flagged for review", row["invoice_number"], changes)
        reissue = issues.get(billing_key)
        _plan_for_new_sinks(conn, app, run, rows, kept, reissue.issue if reissue else 0)
    return found


def _plan_for_new_sinks(
    conn: Connection, app: Connector, run: RunContext, rows: list[dict[str, Any]], kept: set[str], issue: int
) -> None:
    """A sink added after the invoice went out gets the same invoice (same number and issue)."""
    have = {row["sink"] for row in rows}
    missing = [sink for sink in app.sinks if sink not in have]
    if not missing:  # the common case: asked for nothing, so read nothing
        return
    template = outbox_queries.plan_json_of(conn, rows[0]["idempotency_key"])
    if template is None:
        return
    for sink in missing:
        plan = InvoicePlan.model_validate(template)
        plan = plan.model_copy(
            update={
                "sink": sink,
                "idempotency_key": idempotency_key(
                    app.tenant, sink, plan.customer_ref, plan.po_key, plan.billing_key, issue
                ),
            }
        )
        kept.add(plan.idempotency_key)
        if outbox.upsert_plan(conn, plan, run.started_at) == "planned":
            run.add("invoices_planned")
