"""Deciding each period: match, ambiguous, mismatch or missing PO, and the POs nothing used."""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterator, KeysView, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from operator import attrgetter

from connector.maps import CustomerMap, CustomerMaster, SkuMap
from connector.model import (
    BillingPeriod,
    MatchResult,
    MatchStatus,
    POStatus,
    PurchaseOrder,
    Reason,
)
from connector.reconcile.balances import Allocated, Ledger, Rules
from connector.reconcile.explanations import Check, closest, first_look, look_closer
from connector.reconcile.fitting import fit
from connector.reconcile.indexes import PoFacts, PoIndex, build_index, norm_po_number
from connector.reconcile.outcome import Allocation, PriorInvoice, ReconcileOutcome
from connector.reconcile.renewal import RenewalWatch
from connector.reconcile.tolerances import ReconcileSettings

_NO_MASTER = CustomerMaster()


# What a result's fields_set holds (shared by every result, as frozen models never change it).
_GIVEN = {"status", "reasons", "billing_key", "po_key", "po_number", "customer_ref", "amount"}
_GIVEN_WITH_WARNINGS = _GIVEN | {"warnings"}


def _result(
    period: BillingPeriod,
    status: MatchStatus,
    *reasons: Reason,
    po: PoFacts | None = None,
    warnings: tuple[Reason, ...] | None = None,
) -> MatchResult:
    # Every part is validated already (the period, the PO, the reasons): built as validation
    # would build it, `warnings` counting as set only when given.
    return MatchResult.trusted(
        {
            "status": status,
            "reasons": reasons,
            "billing_key": period.key,
            "po_key": po.key if po else None,
            "po_number": po.number if po else None,
            "customer_ref": period.customer_ref,
            "amount": period.total,
            "warnings": () if warnings is None else warnings,
        },
        _GIVEN if warnings is None else _GIVEN_WITH_WARNINGS,
    )


def _po_not_found(period: BillingPeriod, index: PoIndex, number: str) -> MatchResult:
    owners = {index.customer_of[po.key] for po in index.by_number.get(number, [])}
    owners.update(index.owners_elsewhere.get(number, ()))
    elsewhere = sorted({owner or "an unknown customer" for owner in owners})
    where = f"; it belongs to {', '.join(elsewhere)}" if elsewhere else ""
    return _result(
        period,
        MatchStatus.MISSING_PO,
        Reason(
            code="po_not_found",
            detail=f"PO {period.po_number} named by the billing period is not among "
            f"the POs of {period.customer_ref}{where}",
        ),
    )


def _no_po_for_customer(period: BillingPeriod, customers: CustomerMap) -> MatchResult:
    known_name = customers.name_of(period.customer_ref) or period.customer_name
    name = f" ({known_name})" if known_name else ""
    return _result(
        period,
        MatchStatus.MISSING_PO,
        Reason(code="no_po_for_customer", detail=f"no PO for customer {period.customer_ref}{name}"),
    )


def _out_of_term(period: BillingPeriod, checks: list[Check], closer: Callable[[Check], None]) -> MatchResult:
    reasons: list[Reason] = []
    for check in checks:
        po = check.po
        if check.term_miss == "after" and po.term_end is not None:
            reasons.append(
                Reason(
                    code="po_expired",
                    detail=f"{po.number} ended {po.term_end.isoformat()}, before the period "
                    f"starting {period.period_start.isoformat()}",
                )
            )
        elif check.term_miss == "cycle":
            reasons.extend(check.reported("po_cycle_used"))
        else:
            closer(check)  # a line serving outside the period is term_not_covered too
            reasons.extend(check.reported("term_not_covered"))
    only = checks[0].po if len(checks) == 1 else None
    return _result(period, MatchStatus.MISSING_PO, *reasons, po=only)


def _unfit(checks: list[Check], period: BillingPeriod, closer: Callable[[Check], None]) -> MatchResult:
    """No candidate fits: out of every term, or the reasons of the closest candidate."""
    if all(check.term_miss for check in checks):
        return _out_of_term(period, checks, closer)
    best = closest(checks, closer)
    return _result(period, MatchStatus.MISMATCH, *best.reported(), po=best.po)


def _pattern_broken(period: BillingPeriod, pattern: str) -> MatchResult:
    return _result(
        period,
        MatchStatus.MISMATCH,
        Reason(
            code="po_number_pattern",
            detail=f"PO number {period.po_number} does not follow {period.customer_ref}'s PO "
            f"number pattern {pattern}",
        ),
    )


def _unused_po(po: PurchaseOrder, customer_ref: str | None) -> MatchResult:
    reasons = [Reason(code="no_billing_period", detail=f"no billing period matched {po.po_number}")]
    if customer_ref is None:
        buyer = po.buyer_id or po.buyer_name or "(none)"
        reasons.append(
            Reason(
                code="customer_unknown",
                detail=f"buyer {buyer} of {po.po_number} is not in the customer map",
            )
        )
    return MatchResult(
        status=MatchStatus.UNUSED_PO,
        reasons=tuple(reasons),
        po_key=po.key,
        po_number=po.po_number,
        customer_ref=customer_ref,
        amount=po.total,
    )


def _unique_periods(periods: Sequence[BillingPeriod]) -> tuple[list[BillingPeriod], KeysView[str]]:
    """One period per key (a key is one period) in processing order, by start then key; the keys."""
    by_key: dict[str, BillingPeriod] = {}
    for period in periods:
        known = by_key.setdefault(period.key, period)
        if known is not period and period.model_dump_json() > known.model_dump_json():
            by_key[period.key] = period
    ordered = sorted(by_key.values(), key=_period_key)
    ordered.sort(key=_period_start)
    return ordered, by_key.keys()


_period_key = attrgetter("key")
_period_start = attrgetter("period_start")


class _Run:
    """One reconciliation: the PO index, the ledger, and what is cached per SKU and currency."""

    def __init__(
        self,
        index: PoIndex,
        customers: CustomerMap,
        skus: SkuMap,
        settings: ReconcileSettings,
        ledger: Ledger,
    ) -> None:
        self.index = index
        self.customers = customers
        self.skus = skus
        self.settings = settings
        self.ledger = ledger
        self.allocations: dict[str, Allocation] = {}
        self._accepted: dict[str, frozenset[str]] = {}
        self._rules: dict[str, Rules] = {}
        self._watches: dict[str, RenewalWatch] = {}
        self._policies: dict[str, CustomerMaster] = {}

    def policy(self, customer_ref: str) -> CustomerMaster:
        """The customer's master data, which holds its PO policy (the defaults when unknown)."""
        known = self._policies.get(customer_ref)
        if known is None:
            customer = self.customers.get(customer_ref)
            known = self._policies[customer_ref] = customer.master if customer else _NO_MASTER
        return known

    def without_po(self, period: BillingPeriod, why: str) -> MatchResult:
        """A period of a customer that needs no PO, invoiced without a PO reference."""
        self.allocations[period.key] = Allocation(
            period.key, None, tuple((billed, None) for billed in period.lines)
        )
        reason = Reason(
            code="invoiced_without_po",
            detail=f"{why}; {period.customer_ref} needs no PO (po_required = false)",
        )
        return _result(period, MatchStatus.MATCHED, reason)

    def accepted(self, billing_sku: str) -> frozenset[str]:
        known = self._accepted.get(billing_sku)
        if known is None:
            known = self._accepted[billing_sku] = self.skus.po_skus_for(billing_sku)
        return known

    def rules(self, currency: str) -> Rules:
        known = self._rules.get(currency)
        if known is None:
            settings = self.settings
            known = self._rules[currency] = Rules(
                settings.price_for(currency), settings.quantity, settings.total_for(currency)
            )
        return known

    def decide(self, period: BillingPeriod) -> MatchResult:
        """The result for `period`; a match draws the PO down and records the allocation."""
        ref = period.customer_ref
        policy = self._policies.get(ref) or self.policy(ref)
        customer = self.index.by_customer.get(ref)
        known = self._accepted
        billed_lines = period.lines
        if len(billed_lines) == 1:
            sku = billed_lines[0].sku
            accepted_lines: tuple[frozenset[str], ...] = (known.get(sku) or self.accepted(sku),)
        else:
            accepted_lines = tuple(
                [known.get(billed.sku) or self.accepted(billed.sku) for billed in billed_lines]
            )
        currency = period.currency
        candidates: list[PoFacts]
        if period.po_number:
            if policy.po_pattern and not policy.po_number_follows_pattern(period.po_number):
                return _pattern_broken(period, policy.po_pattern)
            number = norm_po_number(period.po_number)
            named = customer.by_number.get(number) if customer else None
            if not named:
                return _po_not_found(period, self.index, number)
            candidates = named
            eligible = [po for po in named if po.could_take(currency, accepted_lines)]
        elif customer is None:
            if not policy.po_required:
                return self.without_po(period, "no PO on file")
            return _no_po_for_customer(period, self.customers)
        else:
            candidates = customer.pos
            eligible = customer.could_take(currency, accepted_lines)
        total = period.total.amount
        rules = self._rules.get(currency) or self.rules(currency)
        ledger = self.ledger
        one_cycle = policy.po_scope == "per_cycle"
        if one_cycle and ledger.cycles:
            cycle = (period.period_start, period.period_end)
            eligible = [po for po in eligible if ledger.cycle_taken(po, cycle) is None]
        fitting: list[tuple[PoFacts, Allocated]] = []
        for po in eligible:
            lines = fit(po, period, accepted_lines, total, rules, ledger)
            if lines is not None:
                fitting.append((po, lines))
        if len(fitting) != 1:
            if fitting:
                names = ", ".join(po.number for po, _ in fitting)
                reason = Reason(code="several_pos", detail=f"{names} all fit the period")
                return _result(period, MatchStatus.AMBIGUOUS, reason)
            if not period.po_number and not policy.po_required:
                return self.without_po(period, "no PO of the customer fits the period")
            checks = [first_look(po, period, ledger, one_cycle=one_cycle) for po in candidates]
            return _unfit(
                checks,
                period,
                lambda check: look_closer(check, period, accepted_lines, total, rules, ledger),
            )
        po, lines = fitting[0]
        ledger.draw(
            po.key, total, lines, (period.period_start, period.period_end) if po.term_end is None else None
        )
        key = period.key
        self.allocations[key] = Allocation(key, po.po, tuple(lines))
        return _result(period, MatchStatus.MATCHED, po=po, warnings=self.renewal_warnings(po))

    def renewal_warnings(self, po: PoFacts) -> tuple[Reason, ...]:
        """The renewal warnings of `po` after a match, through its one watch of the run."""
        watch = self._watches.get(po.key)
        if watch is None:
            watch = self._watches[po.key] = RenewalWatch(po, self.settings)
        return watch.warnings(self.ledger)


def reconcile(
    pos: Sequence[PurchaseOrder],
    periods: Sequence[BillingPeriod],
    customers: CustomerMap,
    skus: SkuMap,
    settings: ReconcileSettings,
    prior: Sequence[PriorInvoice] = (),
    owners_elsewhere: Mapping[str, Collection[str | None]] | None = None,
) -> ReconcileOutcome:
    """Match each billing period to at most one PO and report the POs nothing used.

    Customers are decided apart, so some customers' POs and periods may be reconciled alone;
    `owners_elsewhere` (normalised PO number -> customers) then names the owners of the POs
    left out, for a period naming one of them.
    """
    with _cycle_collection_paused():
        return _reconcile(pos, periods, customers, skus, settings, prior, owners_elsewhere or {})


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Pause the cycle collector, and restart it after only if it was running before.

    A run keeps a few new objects per period (results, allocations, totals). Each full
    collection they trigger walks every PO and period the caller holds too, which at 100,000
    periods took longer than the matching itself. A run makes no reference cycles, so pausing
    the collector frees nothing later: reference counting frees the run's garbage as before.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def _reconcile(
    pos: Sequence[PurchaseOrder],
    periods: Sequence[BillingPeriod],
    customers: CustomerMap,
    skus: SkuMap,
    settings: ReconcileSettings,
    prior: Sequence[PriorInvoice],
    owners_elsewhere: Mapping[str, Collection[str | None]],
) -> ReconcileOutcome:
    index = build_index(pos, customers, owners_elsewhere)
    ordered, period_keys = _unique_periods(periods)
    ledger = Ledger()
    for invoice in sorted(prior, key=lambda item: (item.po_key, item.billing_key)):
        po = index.latest.get(invoice.po_key)
        if po is None or invoice.billing_key in period_keys:
            continue
        # An amount in another currency (the PO was revised to a new currency) cannot be
        # subtracted; its quantities still count against the lines.
        amount = invoice.amount.amount if invoice.amount.currency == po.currency else Decimal(0)
        ledger.add(
            po.key, amount, invoice.line_quantities.items(), invoice.cycle if po.term_end is None else None
        )
    run = _Run(index, customers, skus, settings, ledger)
    decide = run.decide
    results = [decide(period) for period in ordered]
    unused = [
        _unused_po(po, index.customer_of[key])
        for key, po in index.latest.items()
        if po.status is POStatus.OPEN and key not in ledger.touched
    ]
    unused.sort(key=lambda result: (result.po_number or "", result.po_key or ""))
    return ReconcileOutcome(results=tuple(results + unused), allocations=run.allocations)
