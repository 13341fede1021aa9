"""Reconciliation of billing periods against purchase orders: pure functions, no I/O.

Periods are taken in a fixed order (period start, then key), so the outcome never depends on
the order of the inputs. For each period the candidates are the latest revisions of the
customer's POs, or only the PO the period names. A candidate fits when it is open, in the
period's currency, its term covers the period, every billed SKU maps to a PO line at the PO
price with enough quantity left, and its remaining balance covers the period total. One
fitting PO is a match and draws the balance down for later periods; several are ambiguous;
none gives a mismatch with the reasons of the closest candidate, or `missing_po` when the
period lies outside every candidate's term. POs are indexed by customer: O(n + m).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.currency import minor_unit_exponent
from connector.maps import CustomerMap, SkuMap
from connector.model import (
    BillingLine,
    BillingPeriod,
    MatchResult,
    MatchStatus,
    Money,
    POLine,
    POStatus,
    PurchaseOrder,
    Reason,
)

_HUNDRED = Decimal(100)


class Tolerance(BaseModel):
    """An allowed variance, Oracle style: None = unlimited, 0 = none allowed.

    A variance passes only when it is within every limit that is not None: `percent` of the
    expected value and `absolute` in the value's own unit. TOML has no null, so a config file
    writes "unlimited" for None. `direction="over"` lets a value below the expected one pass
    (e.g. a price billed under the PO price).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Decimal | None = Field(default=Decimal(0), ge=0)
    absolute: Decimal | None = Field(default=Decimal(0), ge=0)
    direction: Literal["both", "over"] = "both"

    @field_validator("percent", "absolute", mode="before")
    @classmethod
    def _unlimited(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"unlimited", "none"}:
            return None
        return value

    def allows(self, difference: Decimal, expected: Decimal) -> bool:
        """True when `difference` (actual minus expected) is within the tolerance."""
        variance = max(difference, Decimal(0)) if self.direction == "over" else abs(difference)
        if variance == 0:
            return True
        if self.absolute is not None and variance > self.absolute:
            return False
        return self.percent is None or variance * _HUNDRED <= abs(expected) * self.percent


class CurrencyTolerances(BaseModel):
    """Price and total tolerances for one currency, replacing the general ones where set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Tolerance | None = None
    total: Tolerance | None = None


class ReconcileSettings(BaseModel):
    """Tolerances and renewal-warning thresholds of a reconciliation run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Tolerance = Tolerance()
    quantity: Tolerance = Tolerance()
    total: Tolerance = Tolerance()
    per_currency: dict[str, CurrencyTolerances] = Field(default_factory=dict)
    renewal_warning_days: int = Field(default=30, ge=0)
    renewal_warning_percent: Decimal = Field(default=Decimal(85), ge=0)
    as_of: date | None = None

    def price_for(self, currency: str) -> Tolerance:
        """The price tolerance for `currency`."""
        override = self.per_currency.get(currency)
        return override.price if override and override.price else self.price

    def total_for(self, currency: str) -> Tolerance:
        """The total (balance) tolerance for `currency`."""
        override = self.per_currency.get(currency)
        return override.total if override and override.total else self.total


@dataclass(frozen=True)
class PriorInvoice:
    """An invoice already planned or pushed that consumes part of a PO's balance."""

    po_key: str
    billing_key: str
    amount: Money
    pushed: bool
    po_revision: int
    line_quantities: dict[int, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocation:
    """How a matched billing period maps onto its PO: each billing line with its PO line."""

    billing_key: str
    po: PurchaseOrder
    lines: tuple[tuple[BillingLine, POLine], ...]


@dataclass(frozen=True)
class ReconcileOutcome:
    """One result per billing period, one per open PO nothing used, and the matched allocations."""

    results: tuple[MatchResult, ...]
    allocations: dict[str, Allocation]


# --- formatting: numbers in reason details --------------------------------------------------


def _qty(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def _price(value: Decimal, currency: str) -> str:
    """Shown at the currency's minor unit unless that would hide digits."""
    places = minor_unit_exponent(currency)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        return _qty(value)
    return f"{value:.{places}f}"


def _money(value: Decimal, currency: str) -> str:
    return f"{_price(value, currency)} {currency}"


def _span(start: date | None, end: date | None) -> str:
    return f"{start.isoformat() if start else '…'}..{end.isoformat() if end else '…'}"


def _norm_po_number(number: str) -> str:
    return number.strip().casefold()


# --- the balance ledger -----------------------------------------------------------------------


class _Ledger:
    """What prior invoices and earlier matches of this run consumed, per PO and per PO line."""

    def __init__(self) -> None:
        self.amount: dict[str, Decimal] = defaultdict(Decimal)
        self.quantity: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self.touched: set[str] = set()
        self._totals: dict[str, Decimal] = {}

    def add(self, po_key: str, amount: Decimal, quantities: Iterable[tuple[int, Decimal]]) -> None:
        self.touched.add(po_key)
        self.amount[po_key] += amount
        for line_no, quantity in quantities:
            self.quantity[(po_key, line_no)] += quantity

    def total(self, po: PurchaseOrder) -> Decimal:
        known = self._totals.get(po.key)
        if known is None:
            known = self._totals[po.key] = po.total.amount
        return known

    def remaining(self, po: PurchaseOrder) -> Decimal:
        return self.total(po) - self.amount.get(po.key, Decimal(0))

    def line_left(self, po: PurchaseOrder, line: POLine) -> Decimal:
        return line.quantity - self.quantity.get((po.key, line.line_no), Decimal(0))


# --- checking one candidate -------------------------------------------------------------------

_TermMiss = Literal["", "before", "after"]


@dataclass
class _Check:
    po: PurchaseOrder
    reasons: list[Reason] = field(default_factory=list)
    lines: list[tuple[BillingLine, POLine]] = field(default_factory=list)
    term_miss: _TermMiss = ""

    def sort_key(self) -> tuple[int, str, str]:
        return (len(self.reasons), self.po.po_number, self.po.key)


class _LineIndex:
    """PO lines by SKU and supplier part id, built once per PO; accepted SKUs once per SKU."""

    def __init__(self, skus: SkuMap) -> None:
        self._skus = skus
        self._accepted: dict[str, frozenset[str]] = {}
        self._cache: dict[str, dict[str, list[POLine]]] = {}

    def accepted(self, billing_sku: str) -> frozenset[str]:
        known = self._accepted.get(billing_sku)
        if known is None:
            known = self._accepted[billing_sku] = self._skus.po_skus_for(billing_sku)
        return known

    def lines_for(self, po: PurchaseOrder, accepted: frozenset[str]) -> list[POLine]:
        index = self._cache.get(po.key)
        if index is None:
            index = defaultdict(list)
            for line in sorted(po.lines, key=lambda item: item.line_no):
                index[line.sku].append(line)
                if line.supplier_part_aux_id and line.supplier_part_aux_id != line.sku:
                    index[line.supplier_part_aux_id].append(line)
            self._cache[po.key] = index
        found = {line.line_no: line for code in accepted for line in index.get(code, ())}
        return [found[number] for number in sorted(found)]


def _status_reason(po: PurchaseOrder) -> Reason | None:
    if po.status is POStatus.OPEN:
        return None
    return Reason(code=f"po_{po.status.value}", detail=f"{po.po_number} is {po.status.value}")


def _term_check(check: _Check, period: BillingPeriod) -> None:
    po = check.po
    start, end = po.term_start, po.term_end
    covers = (start is None or start <= period.period_start) and (end is None or period.period_end <= end)
    if covers:
        return
    span = _span(period.period_start, period.period_end)
    term = _span(start, end)
    overlaps = (start is None or start <= period.period_end) and (end is None or period.period_start <= end)
    if overlaps:
        check.reasons.append(
            Reason(
                code="partial_period",
                detail=f"period {span} is only partly inside the term of {po.po_number} "
                f"({term}); proration is not guessed",
            )
        )
        return
    check.term_miss = "after" if end is not None and end < period.period_start else "before"
    check.reasons.append(
        Reason(
            code="term_not_covered",
            detail=f"period {span} is outside the term of {po.po_number} ({term})",
        )
    )


def _serves(line: POLine, period: BillingPeriod) -> bool:
    return (line.service_start is None or line.service_start <= period.period_start) and (
        line.service_end is None or period.period_end <= line.service_end
    )


def _lines_check(
    check: _Check, period: BillingPeriod, settings: ReconcileSettings, ledger: _Ledger, index: _LineIndex
) -> None:
    po = check.po
    price_tolerance = settings.price_for(po.currency)
    taken: dict[int, Decimal] = defaultdict(Decimal)
    for billed in period.lines:
        accepted = index.accepted(billed.sku)
        mapped = index.lines_for(po, accepted)
        if not mapped:
            check.reasons.append(
                Reason(
                    code="sku_unmapped",
                    detail=f"billed SKU {billed.sku} has no line on {po.po_number} "
                    f"(accepted PO SKUs: {', '.join(sorted(accepted))})",
                )
            )
            continue
        serving = [line for line in mapped if _serves(line, period)]
        if not serving:
            line = mapped[0]
            check.reasons.append(
                Reason(
                    code="term_not_covered",
                    detail=f"{po.po_number} line {line.line_no} serves "
                    f"{_span(line.service_start, line.service_end)}, billed "
                    f"{_span(period.period_start, period.period_end)}",
                )
            )
            continue
        priced = [
            line
            for line in serving
            if price_tolerance.allows(
                billed.unit_price.amount - line.unit_price.amount, line.unit_price.amount
            )
        ]
        if not priced:
            line = serving[0]
            check.reasons.append(
                Reason(
                    code="price_differs",
                    detail=f"unit price {_money(line.unit_price.amount, po.currency)} on "
                    f"{po.po_number} line {line.line_no}, billed "
                    f"{_price(billed.unit_price.amount, po.currency)}",
                )
            )
            continue
        chosen = next(
            (line for line in priced if _quantity_fits(billed, line, po, taken, ledger, settings)),
            None,
        )
        if chosen is None:
            line = priced[0]
            left = ledger.line_left(po, line) - taken[line.line_no]
            check.reasons.append(
                Reason(
                    code="quantity_exceeds_po",
                    detail=f"billed {_qty(billed.quantity)} {billed.sku}, {po.po_number} line "
                    f"{line.line_no} has {_qty(left)} left of {_qty(line.quantity)}",
                )
            )
            continue
        taken[chosen.line_no] += billed.quantity
        check.lines.append((billed, chosen))


def _quantity_fits(
    billed: BillingLine,
    line: POLine,
    po: PurchaseOrder,
    taken: dict[int, Decimal],
    ledger: _Ledger,
    settings: ReconcileSettings,
) -> bool:
    excess = billed.quantity - (ledger.line_left(po, line) - taken[line.line_no])
    return excess <= 0 or settings.quantity.allows(excess, line.quantity)


def _balance_check(check: _Check, total: Decimal, settings: ReconcileSettings, ledger: _Ledger) -> None:
    po = check.po
    remaining = ledger.remaining(po)
    excess = total - remaining
    if excess <= 0 or settings.total_for(po.currency).allows(excess, ledger.total(po)):
        return
    check.reasons.append(
        Reason(
            code="po_exhausted",
            detail=f"period total {_money(total, po.currency)}, {po.po_number} has "
            f"{_money(remaining, po.currency)} left of {_money(ledger.total(po), po.currency)}",
        )
    )


def _check_candidate(
    po: PurchaseOrder,
    period: BillingPeriod,
    total: Decimal,
    settings: ReconcileSettings,
    ledger: _Ledger,
    index: _LineIndex,
) -> _Check:
    """Every reason `po` cannot take `period` (whose lines add up to `total`) now."""
    check = _Check(po=po)
    status = _status_reason(po)
    if status:
        check.reasons.append(status)
    _term_check(check, period)
    if po.currency != period.currency:
        check.reasons.append(
            Reason(
                code="currency_differs",
                detail=f"{po.po_number} is in {po.currency}, billed in {period.currency}",
            )
        )
        return check
    _lines_check(check, period, settings, ledger, index)
    _balance_check(check, total, settings, ledger)
    return check


# --- deciding one period ----------------------------------------------------------------------


@dataclass(frozen=True)
class _PoIndex:
    """The latest revision of every PO, by customer and by PO number."""

    latest: dict[str, PurchaseOrder]
    customer_of: dict[str, str | None]
    by_customer: dict[str, list[PurchaseOrder]]
    by_number: dict[str, list[PurchaseOrder]]


def _build_index(pos: Sequence[PurchaseOrder], customers: CustomerMap) -> _PoIndex:
    latest: dict[str, PurchaseOrder] = {}
    for po in pos:
        known = latest.get(po.key)
        # Same key and revision twice: keep one by content, so input order cannot matter.
        if known is None or (po.revision, po.model_dump_json()) > (
            known.revision,
            known.model_dump_json(),
        ):
            latest[po.key] = po
    ordered = sorted(latest.values(), key=lambda po: (po.po_number, po.key))
    customer_of = {po.key: customers.customer_for(po) for po in ordered}
    by_customer: dict[str, list[PurchaseOrder]] = defaultdict(list)
    by_number: dict[str, list[PurchaseOrder]] = defaultdict(list)
    for po in ordered:
        ref = customer_of[po.key]
        if ref is not None:
            by_customer[ref].append(po)
        by_number[_norm_po_number(po.po_number)].append(po)
    return _PoIndex(latest, customer_of, dict(by_customer), dict(by_number))


def _result(
    period: BillingPeriod, status: MatchStatus, *reasons: Reason, po: PurchaseOrder | None = None
) -> MatchResult:
    return MatchResult(
        status=status,
        reasons=reasons,
        billing_key=period.key,
        po_key=po.key if po else None,
        po_number=po.po_number if po else None,
        customer_ref=period.customer_ref,
        amount=period.total,
    )


def _candidates(
    period: BillingPeriod, index: _PoIndex, customers: CustomerMap
) -> list[PurchaseOrder] | MatchResult:
    owned = index.by_customer.get(period.customer_ref, [])
    if period.po_number:
        named = [po for po in owned if _norm_po_number(po.po_number) == _norm_po_number(period.po_number)]
        if named:
            return named
        elsewhere = sorted(
            {
                index.customer_of[po.key] or "an unknown customer"
                for po in index.by_number.get(_norm_po_number(period.po_number), [])
            }
        )
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
    if owned:
        return owned
    known_name = customers.name_of(period.customer_ref) or period.customer_name
    name = f" ({known_name})" if known_name else ""
    return _result(
        period,
        MatchStatus.MISSING_PO,
        Reason(
            code="no_po_for_customer",
            detail=f"no PO for customer {period.customer_ref}{name}",
        ),
    )


def _out_of_term(period: BillingPeriod, checks: list[_Check]) -> MatchResult:
    reasons: list[Reason] = []
    for check in checks:
        po = check.po
        if check.term_miss == "after" and po.term_end is not None:
            reasons.append(
                Reason(
                    code="po_expired",
                    detail=f"{po.po_number} ended {po.term_end.isoformat()}, before the period "
                    f"starting {period.period_start.isoformat()}",
                )
            )
        else:
            reasons.extend(r for r in check.reasons if r.code == "term_not_covered")
    only = checks[0].po if len(checks) == 1 else None
    return _result(period, MatchStatus.MISSING_PO, *reasons, po=only)


def _decide(period: BillingPeriod, checks: list[_Check]) -> tuple[MatchResult, _Check | None]:
    fitting = [check for check in checks if not check.reasons]
    if len(fitting) == 1:
        return _result(period, MatchStatus.MATCHED, po=fitting[0].po), fitting[0]
    if fitting:
        names = ", ".join(check.po.po_number for check in fitting)
        reason = Reason(code="several_pos", detail=f"{names} all fit the period")
        return _result(period, MatchStatus.AMBIGUOUS, reason), None
    if all(check.term_miss for check in checks):
        return _out_of_term(period, checks), None
    best = min(checks, key=_Check.sort_key)
    return _result(period, MatchStatus.MISMATCH, *best.reasons, po=best.po), None


def _renewal_warnings(po: PurchaseOrder, settings: ReconcileSettings, ledger: _Ledger) -> tuple[Reason, ...]:
    warnings: list[Reason] = []
    if settings.as_of is not None and po.term_end is not None:
        days_left = (po.term_end - settings.as_of).days
        if days_left <= settings.renewal_warning_days:
            warnings.append(
                Reason(
                    code="renewal_due",
                    detail=f"{po.po_number} term ends {po.term_end.isoformat()}, "
                    f"{days_left} days after {settings.as_of.isoformat()}",
                )
            )
    total = ledger.total(po)
    consumed = total - ledger.remaining(po)
    if total > 0 and consumed * _HUNDRED >= total * settings.renewal_warning_percent:
        share = (consumed * _HUNDRED / total).quantize(Decimal("0.1"))
        warnings.append(
            Reason(
                code="renewal_due",
                detail=f"{po.po_number} is {share}% consumed "
                f"({_money(consumed, po.currency)} of {_money(total, po.currency)})",
            )
        )
    return tuple(warnings)


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


def _unique_periods(periods: Sequence[BillingPeriod]) -> list[BillingPeriod]:
    """One period per key (a key is one period), in processing order."""
    by_key: dict[str, BillingPeriod] = {}
    for period in periods:
        known = by_key.get(period.key)
        if known is None or period.model_dump_json() > known.model_dump_json():
            by_key[period.key] = period
    return sorted(by_key.values(), key=lambda period: (period.period_start, period.key))


def reconcile(
    pos: Sequence[PurchaseOrder],
    periods: Sequence[BillingPeriod],
    customers: CustomerMap,
    skus: SkuMap,
    settings: ReconcileSettings,
    prior: Sequence[PriorInvoice] = (),
) -> ReconcileOutcome:
    """Match each billing period to at most one PO and report the POs nothing used."""
    index = _build_index(pos, customers)
    ordered = _unique_periods(periods)
    period_keys = {period.key for period in ordered}
    ledger = _Ledger()
    for invoice in sorted(prior, key=lambda item: (item.po_key, item.billing_key)):
        po = index.latest.get(invoice.po_key)
        if po is None or invoice.billing_key in period_keys:
            continue
        # An amount in another currency (the PO was revised to a new currency) cannot be
        # subtracted; its quantities still count against the lines.
        amount = invoice.amount.amount if invoice.amount.currency == po.currency else Decimal(0)
        ledger.add(po.key, amount, invoice.line_quantities.items())
    line_index = _LineIndex(skus)
    results: list[MatchResult] = []
    allocations: dict[str, Allocation] = {}
    for period in ordered:
        found = _candidates(period, index, customers)
        if isinstance(found, MatchResult):
            results.append(found)
            continue
        total = period.total.amount
        checks = [_check_candidate(po, period, total, settings, ledger, line_index) for po in found]
        result, chosen = _decide(period, checks)
        if chosen is not None:
            ledger.add(
                chosen.po.key,
                total,
                ((po_line.line_no, billed.quantity) for billed, po_line in chosen.lines),
            )
            allocations[period.key] = Allocation(period.key, chosen.po, tuple(chosen.lines))
            result = result.model_copy(update={"warnings": _renewal_warnings(chosen.po, settings, ledger)})
        results.append(result)
    for key, po in index.latest.items():
        if po.status is POStatus.OPEN and key not in ledger.touched:
            results.append(_unused_po(po, index.customer_of[key]))
    ordered_results = results[: len(ordered)] + sorted(
        results[len(ordered) :], key=lambda result: (result.po_number or "", result.po_key or "")
    )
    return ReconcileOutcome(results=tuple(ordered_results), allocations=allocations)
