"""Reconciliation of billing periods against purchase orders: pure functions, no I/O.

Periods are taken in a fixed order (period start, then key), so the outcome never depends on
the order of the inputs. For each period the candidates are the latest revisions of the
customer's POs, or only the PO the period names. A candidate fits when it is open, in the
period's currency, its term covers the period, every billed SKU maps to a PO line at the PO
price with enough quantity left, and its remaining balance covers the period total. One
fitting PO is a match and draws the balance down for later periods; several are ambiguous;
none gives a mismatch with the reasons of the closest candidate, or `missing_po` when the
period lies outside every candidate's term. POs are indexed by customer: O(n + m).

Most periods fit one PO, so the work is split in two. Per PO, plain facts and its lines by
SKU are taken once; per customer, which open POs carry each SKU. A period first asks only the
open candidates in its currency that have a line for every billed SKU whether they fit, with
no reason written. Only when none fits is every candidate checked in full, and a reason's
detail is written only if that reason is reported.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import partial
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


# --- what is known of a PO before any period is looked at -------------------------------------


class _Po:
    """A PO's facts as plain values, and its lines (by line number) under every code they carry."""

    __slots__ = (
        "_total",
        "currency",
        "is_open",
        "key",
        "lines_by_code",
        "number",
        "po",
        "term_end",
        "term_start",
    )

    def __init__(self, po: PurchaseOrder) -> None:
        self.po = po
        self.key = po.key
        self.number = po.po_number
        self.is_open = po.status is POStatus.OPEN
        self.currency = po.currency
        self.term_start = po.term_start
        self.term_end = po.term_end
        self._total: Decimal | None = None
        lines = po.lines if len(po.lines) == 1 else sorted(po.lines, key=_line_no)
        by_code: dict[str, list[POLine]] = {}
        for line in lines:
            by_code.setdefault(line.sku, []).append(line)
            if line.supplier_part_aux_id and line.supplier_part_aux_id != line.sku:
                by_code.setdefault(line.supplier_part_aux_id, []).append(line)
        self.lines_by_code = by_code

    def mapped(self, accepted: frozenset[str]) -> Sequence[POLine]:
        """The lines any of the `accepted` codes names, by line number."""
        hits = [lines for code in accepted if (lines := self.lines_by_code.get(code))]
        if len(hits) == 1:
            return hits[0]
        found = {line.line_no: line for lines in hits for line in lines}
        return [found[number] for number in sorted(found)]

    @property
    def total(self) -> Decimal:
        # Read when a balance is checked, not for every PO: many are never a candidate.
        known = self._total
        if known is None:
            known = self._total = self.po.total.amount
        return known

    def could_take(self, currency: str, accepted_lines: Sequence[frozenset[str]]) -> bool:
        """Open, in `currency`, and a line for every billed SKU: what a fit needs before numbers."""
        by_code = self.lines_by_code
        return (
            self.is_open
            and self.currency == currency
            and all(any(code in by_code for code in accepted) for accepted in accepted_lines)
        )


def _line_no(line: POLine) -> int:
    return line.line_no


class _Customer:
    """One customer's latest POs in candidate order, by PO number, and the open ones per currency and code."""

    __slots__ = ("by_number", "open_by_code", "pos")

    def __init__(self) -> None:
        self.pos: list[_Po] = []
        self.by_number: dict[str, list[_Po]] = {}
        self.open_by_code: dict[str, dict[str, list[int]]] = {}

    def add(self, po: _Po) -> None:
        position = len(self.pos)
        self.pos.append(po)
        self.by_number.setdefault(_norm_po_number(po.number), []).append(po)
        if po.is_open:
            by_code = self.open_by_code.setdefault(po.currency, {})
            for code in po.lines_by_code:
                by_code.setdefault(code, []).append(position)

    def could_take(self, currency: str, accepted_lines: Sequence[frozenset[str]]) -> list[_Po]:
        """The candidates that pass `_Po.could_take`, in candidate order, found through the index."""
        if not accepted_lines:
            return [po for po in self.pos if po.is_open and po.currency == currency]
        by_code = self.open_by_code.get(currency)
        if by_code is None:
            return []
        positions: Sequence[int] | None = None
        for accepted in accepted_lines:
            hits = [found for code in accepted if (found := by_code.get(code))]
            # One code's list is already in candidate order with no repeats.
            reached = hits[0] if len(hits) == 1 else sorted({n for found in hits for n in found})
            if positions is None:
                positions = reached
            else:
                kept = set(reached)
                positions = [n for n in positions if n in kept]
            if not positions:
                return []
        pos = self.pos
        return [pos[n] for n in positions or ()]


@dataclass(frozen=True)
class _PoIndex:
    """The latest revision of every PO, by customer and by PO number."""

    latest: dict[str, PurchaseOrder]
    customer_of: dict[str, str | None]
    by_customer: dict[str, _Customer]
    by_number: dict[str, list[_Po]]


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
    by_customer: dict[str, _Customer] = {}
    by_number: dict[str, list[_Po]] = defaultdict(list)
    for po in ordered:
        facts = _Po(po)
        ref = customer_of[po.key]
        if ref is not None:
            owner = by_customer.get(ref)
            if owner is None:
                owner = by_customer[ref] = _Customer()
            owner.add(facts)
        by_number[_norm_po_number(po.po_number)].append(facts)
    return _PoIndex(latest, customer_of, by_customer, dict(by_number))


# --- the balance ledger -----------------------------------------------------------------------

_ZERO = Decimal(0)
_Lines = list[tuple[BillingLine, POLine]]


class _Ledger:
    """What prior invoices and earlier matches of this run consumed, per PO and per PO line."""

    def __init__(self) -> None:
        self.amount: dict[str, Decimal] = defaultdict(Decimal)
        self.quantity: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self.touched: set[str] = set()

    def add(self, po_key: str, amount: Decimal, quantities: Iterable[tuple[int, Decimal]]) -> None:
        self.touched.add(po_key)
        self.amount[po_key] += amount
        for line_no, quantity in quantities:
            self.quantity[(po_key, line_no)] += quantity

    def draw(self, po_key: str, amount: Decimal, lines: _Lines) -> None:
        """Record a match of this run: its total and each billed quantity on its PO line."""
        self.touched.add(po_key)
        self.amount[po_key] += amount
        quantity = self.quantity
        for billed, line in lines:
            quantity[(po_key, line.line_no)] += billed.quantity

    def remaining(self, po: _Po) -> Decimal:
        return po.total - self.amount.get(po.key, _ZERO)

    def line_left(self, po: _Po, line: POLine) -> Decimal:
        return line.quantity - self.quantity.get((po.key, line.line_no), _ZERO)


@dataclass(frozen=True)
class _Rules:
    """The tolerances that apply to one currency."""

    price: Tolerance
    quantity: Tolerance
    total: Tolerance


# --- does a candidate fit: the common path, no reasons ------------------------------------------


def _fit(
    po: _Po,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    total: Decimal,
    rules: _Rules,
    ledger: _Ledger,
) -> _Lines | None:
    """The allocation when `po` takes `period` without a single reason against it, else None.

    Exactly the verdict of `_explain` finding no reason, for a PO that passed `could_take`; the
    line chosen for a billed SKU is the first by line number that serves, is priced and has room.
    """
    start, end = po.term_start, po.term_end
    period_start, period_end = period.period_start, period.period_end
    if (start is not None and period_start < start) or (end is not None and end < period_end):
        return None
    drawn, key = ledger.quantity, po.key
    price, quantity = rules.price, rules.quantity
    taken: dict[int, Decimal] = {}
    lines: _Lines = []
    for billed, accepted in zip(period.lines, accepted_lines, strict=True):
        billed_price, billed_quantity = billed.unit_price.amount, billed.quantity
        for line in po.mapped(accepted):
            if (line.service_start is not None and period_start < line.service_start) or (
                line.service_end is not None and line.service_end < period_end
            ):
                continue
            line_price = line.unit_price.amount
            difference = billed_price - line_price
            if difference and not price.allows(difference, line_price):
                continue
            line_no = line.line_no
            left = (line.quantity - drawn.get((key, line_no), _ZERO)) - taken.get(line_no, _ZERO)
            excess = billed_quantity - left
            if excess <= 0 or quantity.allows(excess, line.quantity):
                taken[line_no] = taken.get(line_no, _ZERO) + billed_quantity
                lines.append((billed, line))
                break
        else:
            return None
    excess = total - ledger.remaining(po)
    if excess > 0 and not rules.total.allows(excess, po.total):
        return None
    return lines


# --- why a candidate does not fit: only when none does ----------------------------------------

_TermMiss = Literal["", "before", "after"]
# A reason's code now, its detail written only if the reason is reported.
_Pending = tuple[str, Callable[[], str]]


@dataclass
class _Check:
    po: _Po
    reasons: list[_Pending] = field(default_factory=list)
    term_miss: _TermMiss = ""

    def sort_key(self) -> tuple[int, str, str]:
        return (len(self.reasons), self.po.number, self.po.key)

    def reported(self, *codes: str) -> list[Reason]:
        return [
            Reason(code=code, detail=explain())
            for code, explain in self.reasons
            if not codes or code in codes
        ]


def _status_detail(number: str, status: str) -> str:
    return f"{number} is {status}"


def _partial_detail(period: BillingPeriod, po: _Po) -> str:
    return (
        f"period {_span(period.period_start, period.period_end)} is only partly inside the term "
        f"of {po.number} ({_span(po.term_start, po.term_end)}); proration is not guessed"
    )


def _outside_detail(period: BillingPeriod, po: _Po) -> str:
    return (
        f"period {_span(period.period_start, period.period_end)} is outside the term of "
        f"{po.number} ({_span(po.term_start, po.term_end)})"
    )


def _currency_detail(po: _Po, billed_in: str) -> str:
    return f"{po.number} is in {po.currency}, billed in {billed_in}"


def _unmapped_detail(sku: str, number: str, accepted: frozenset[str]) -> str:
    return f"billed SKU {sku} has no line on {number} (accepted PO SKUs: {', '.join(sorted(accepted))})"


def _serving_detail(number: str, line: POLine, period: BillingPeriod) -> str:
    return (
        f"{number} line {line.line_no} serves {_span(line.service_start, line.service_end)}, "
        f"billed {_span(period.period_start, period.period_end)}"
    )


def _price_detail(po: _Po, line: POLine, billed: BillingLine) -> str:
    return (
        f"unit price {_money(line.unit_price.amount, po.currency)} on {po.number} line "
        f"{line.line_no}, billed {_price(billed.unit_price.amount, po.currency)}"
    )


def _quantity_detail(po: _Po, line: POLine, billed: BillingLine, left: Decimal) -> str:
    return (
        f"billed {_qty(billed.quantity)} {billed.sku}, {po.number} line {line.line_no} has "
        f"{_qty(left)} left of {_qty(line.quantity)}"
    )


def _exhausted_detail(po: _Po, total: Decimal, remaining: Decimal) -> str:
    return (
        f"period total {_money(total, po.currency)}, {po.number} has "
        f"{_money(remaining, po.currency)} left of {_money(po.total, po.currency)}"
    )


def _term_check(check: _Check, period: BillingPeriod) -> None:
    po = check.po
    start, end = po.term_start, po.term_end
    covers = (start is None or start <= period.period_start) and (end is None or period.period_end <= end)
    if covers:
        return
    overlaps = (start is None or start <= period.period_end) and (end is None or period.period_start <= end)
    if overlaps:
        check.reasons.append(("partial_period", partial(_partial_detail, period, po)))
        return
    check.term_miss = "after" if end is not None and end < period.period_start else "before"
    check.reasons.append(("term_not_covered", partial(_outside_detail, period, po)))


def _serves(line: POLine, period: BillingPeriod) -> bool:
    return (line.service_start is None or line.service_start <= period.period_start) and (
        line.service_end is None or period.period_end <= line.service_end
    )


def _lines_check(
    check: _Check,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    rules: _Rules,
    ledger: _Ledger,
) -> None:
    po = check.po
    taken: dict[int, Decimal] = defaultdict(Decimal)
    for billed, accepted in zip(period.lines, accepted_lines, strict=True):
        mapped = po.mapped(accepted)
        if not mapped:
            check.reasons.append(("sku_unmapped", partial(_unmapped_detail, billed.sku, po.number, accepted)))
            continue
        serving = [line for line in mapped if _serves(line, period)]
        if not serving:
            check.reasons.append(("term_not_covered", partial(_serving_detail, po.number, mapped[0], period)))
            continue
        priced = [
            line
            for line in serving
            if rules.price.allows(billed.unit_price.amount - line.unit_price.amount, line.unit_price.amount)
        ]
        if not priced:
            check.reasons.append(("price_differs", partial(_price_detail, po, serving[0], billed)))
            continue
        chosen = next(
            (line for line in priced if _quantity_fits(billed, line, po, taken, ledger, rules)),
            None,
        )
        if chosen is None:
            line = priced[0]
            left = ledger.line_left(po, line) - taken[line.line_no]
            check.reasons.append(("quantity_exceeds_po", partial(_quantity_detail, po, line, billed, left)))
            continue
        taken[chosen.line_no] += billed.quantity


def _quantity_fits(
    billed: BillingLine, line: POLine, po: _Po, taken: dict[int, Decimal], ledger: _Ledger, rules: _Rules
) -> bool:
    excess = billed.quantity - (ledger.line_left(po, line) - taken[line.line_no])
    return excess <= 0 or rules.quantity.allows(excess, line.quantity)


def _balance_check(check: _Check, total: Decimal, rules: _Rules, ledger: _Ledger) -> None:
    po = check.po
    remaining = ledger.remaining(po)
    excess = total - remaining
    if excess <= 0 or rules.total.allows(excess, po.total):
        return
    check.reasons.append(("po_exhausted", partial(_exhausted_detail, po, total, remaining)))


def _explain(
    po: _Po,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    total: Decimal,
    rules: _Rules,
    ledger: _Ledger,
) -> _Check:
    """Every reason `po` cannot take `period` (whose lines add up to `total`) now."""
    check = _Check(po=po)
    if not po.is_open:
        status = po.po.status.value
        check.reasons.append((f"po_{status}", partial(_status_detail, po.number, status)))
    _term_check(check, period)
    if po.currency != period.currency:
        check.reasons.append(("currency_differs", partial(_currency_detail, po, period.currency)))
        return check
    _lines_check(check, period, accepted_lines, rules, ledger)
    _balance_check(check, total, rules, ledger)
    return check


# --- deciding one period ----------------------------------------------------------------------


def _result(
    period: BillingPeriod,
    status: MatchStatus,
    *reasons: Reason,
    po: _Po | None = None,
    warnings: tuple[Reason, ...] | None = None,
) -> MatchResult:
    if warnings is None:
        return MatchResult(
            status=status,
            reasons=reasons,
            billing_key=period.key,
            po_key=po.key if po else None,
            po_number=po.number if po else None,
            customer_ref=period.customer_ref,
            amount=period.total,
        )
    return MatchResult(
        status=status,
        reasons=reasons,
        billing_key=period.key,
        po_key=po.key if po else None,
        po_number=po.number if po else None,
        customer_ref=period.customer_ref,
        amount=period.total,
        warnings=warnings,
    )


def _po_not_found(period: BillingPeriod, index: _PoIndex, number: str) -> MatchResult:
    elsewhere = sorted(
        {index.customer_of[po.key] or "an unknown customer" for po in index.by_number.get(number, [])}
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


def _no_po_for_customer(period: BillingPeriod, customers: CustomerMap) -> MatchResult:
    known_name = customers.name_of(period.customer_ref) or period.customer_name
    name = f" ({known_name})" if known_name else ""
    return _result(
        period,
        MatchStatus.MISSING_PO,
        Reason(code="no_po_for_customer", detail=f"no PO for customer {period.customer_ref}{name}"),
    )


def _out_of_term(period: BillingPeriod, checks: list[_Check]) -> MatchResult:
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
        else:
            reasons.extend(check.reported("term_not_covered"))
    only = checks[0].po if len(checks) == 1 else None
    return _result(period, MatchStatus.MISSING_PO, *reasons, po=only)


def _unfit(checks: list[_Check], period: BillingPeriod) -> MatchResult:
    """No candidate fits: out of every term, or the reasons of the closest candidate."""
    if all(check.term_miss for check in checks):
        return _out_of_term(period, checks)
    best = min(checks, key=_Check.sort_key)
    return _result(period, MatchStatus.MISMATCH, *best.reported(), po=best.po)


def _term_warning(po: _Po, settings: ReconcileSettings) -> tuple[Reason, ...]:
    if settings.as_of is None or po.term_end is None:
        return ()
    days_left = (po.term_end - settings.as_of).days
    if days_left > settings.renewal_warning_days:
        return ()
    return (
        Reason(
            code="renewal_due",
            detail=f"{po.number} term ends {po.term_end.isoformat()}, "
            f"{days_left} days after {settings.as_of.isoformat()}",
        ),
    )


def _consumed_warning(po: _Po, settings: ReconcileSettings, ledger: _Ledger) -> Reason | None:
    return _share_warning(po, po.total - ledger.remaining(po), settings)


def _share_warning(po: _Po, consumed: Decimal, settings: ReconcileSettings) -> Reason | None:
    total = po.total
    if total > 0 and consumed * _HUNDRED >= total * settings.renewal_warning_percent:
        share = (consumed * _HUNDRED / total).quantize(Decimal("0.1"))
        return Reason(
            code="renewal_due",
            detail=f"{po.number} is {share}% consumed "
            f"({_money(consumed, po.currency)} of {_money(total, po.currency)})",
        )
    return None


def renewal_warnings(po: PurchaseOrder, consumed: Decimal, settings: ReconcileSettings) -> tuple[Reason, ...]:
    """The renewal warnings of a PO of which `consumed` is already invoiced (term end, share)."""
    facts = _Po(po)
    share = _share_warning(facts, consumed, settings)
    return (*_term_warning(facts, settings), *((share,) if share else ()))


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


class _Run:
    """One reconciliation: the PO index, the ledger, and what is cached per SKU and currency."""

    def __init__(
        self,
        index: _PoIndex,
        customers: CustomerMap,
        skus: SkuMap,
        settings: ReconcileSettings,
        ledger: _Ledger,
    ) -> None:
        self.index = index
        self.customers = customers
        self.skus = skus
        self.settings = settings
        self.ledger = ledger
        self.allocations: dict[str, Allocation] = {}
        self._accepted: dict[str, frozenset[str]] = {}
        self._rules: dict[str, _Rules] = {}
        self._term_warnings: dict[str, tuple[Reason, ...]] = {}

    def accepted(self, billing_sku: str) -> frozenset[str]:
        known = self._accepted.get(billing_sku)
        if known is None:
            known = self._accepted[billing_sku] = self.skus.po_skus_for(billing_sku)
        return known

    def rules(self, currency: str) -> _Rules:
        known = self._rules.get(currency)
        if known is None:
            settings = self.settings
            known = self._rules[currency] = _Rules(
                settings.price_for(currency), settings.quantity, settings.total_for(currency)
            )
        return known

    def decide(self, period: BillingPeriod) -> MatchResult:
        """The result for `period`; a match draws the PO down and records the allocation."""
        customer = self.index.by_customer.get(period.customer_ref)
        known = self._accepted
        accepted_lines = [known.get(billed.sku) or self.accepted(billed.sku) for billed in period.lines]
        currency = period.currency
        candidates: list[_Po]
        if period.po_number:
            number = _norm_po_number(period.po_number)
            named = customer.by_number.get(number) if customer else None
            if not named:
                return _po_not_found(period, self.index, number)
            candidates = named
            eligible = [po for po in named if po.could_take(currency, accepted_lines)]
        elif customer is None:
            return _no_po_for_customer(period, self.customers)
        else:
            candidates = customer.pos
            eligible = customer.could_take(currency, accepted_lines)
        total = period.total.amount
        rules = self.rules(currency)
        ledger = self.ledger
        fitting: list[tuple[_Po, _Lines]] = []
        for po in eligible:
            lines = _fit(po, period, accepted_lines, total, rules, ledger)
            if lines is not None:
                fitting.append((po, lines))
        if len(fitting) > 1:
            names = ", ".join(po.number for po, _ in fitting)
            reason = Reason(code="several_pos", detail=f"{names} all fit the period")
            return _result(period, MatchStatus.AMBIGUOUS, reason)
        if not fitting:
            checks = [_explain(po, period, accepted_lines, total, rules, ledger) for po in candidates]
            return _unfit(checks, period)
        po, lines = fitting[0]
        ledger.draw(po.key, total, lines)
        self.allocations[period.key] = Allocation(period.key, po.po, tuple(lines))
        return _result(period, MatchStatus.MATCHED, po=po, warnings=self.renewal_warnings(po))

    def renewal_warnings(self, po: _Po) -> tuple[Reason, ...]:
        """`_renewal_warnings`, with the term-end one (which the ledger cannot change) kept per PO."""
        dated = self._term_warnings.get(po.key)
        if dated is None:
            dated = self._term_warnings[po.key] = _term_warning(po, self.settings)
        consumed = _consumed_warning(po, self.settings, self.ledger)
        if consumed is None:
            return dated
        return (*dated, consumed)


def reconcile(
    pos: Sequence[PurchaseOrder],
    periods: Sequence[BillingPeriod],
    customers: CustomerMap,
    skus: SkuMap,
    settings: ReconcileSettings,
    prior: Sequence[PriorInvoice] = (),
) -> ReconcileOutcome:
    """Match each billing period to at most one PO and report the POs nothing used."""
    with _cycle_collection_paused():
        return _reconcile(pos, periods, customers, skus, settings, prior)


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
) -> ReconcileOutcome:
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
    run = _Run(index, customers, skus, settings, ledger)
    results = [run.decide(period) for period in ordered]
    unused = [
        _unused_po(po, index.customer_of[key])
        for key, po in index.latest.items()
        if po.status is POStatus.OPEN and key not in ledger.touched
    ]
    unused.sort(key=lambda result: (result.po_number or "", result.po_key or ""))
    return ReconcileOutcome(results=tuple(results + unused), allocations=run.allocations)
