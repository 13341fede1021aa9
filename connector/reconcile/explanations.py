"""Why a candidate PO does not take a period: every reason, its detail written only if reported.

A candidate is looked at first for what needs no numbers (status, term, cycle, currency), and
closely (its lines, its balance) only where that can change what is reported: a closer look
only adds reasons, so a candidate that already has more than the closest one looked at closely
cannot be the closest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Literal

from connector.currency import minor_unit_exponent
from connector.model import (
    BillingLine,
    BillingPeriod,
    POLine,
    Reason,
)
from connector.reconcile.balances import Ledger, Rules
from connector.reconcile.indexes import PoFacts


def quantity_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def price_text(value: Decimal, currency: str) -> str:
    """Shown at the currency's minor unit unless that would hide digits."""
    places = minor_unit_exponent(currency)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        return quantity_text(value)
    return f"{value:.{places}f}"


def money_text(value: Decimal, currency: str) -> str:
    return f"{price_text(value, currency)} {currency}"


def span_text(start: date | None, end: date | None) -> str:
    return f"{start.isoformat() if start else '…'}..{end.isoformat() if end else '…'}"


_TermMiss = Literal["", "before", "after", "cycle"]
# A reason's code now, its detail written only if the reason is reported.
_Pending = tuple[str, Callable[[], str]]


class Check:
    """What one candidate PO has against one period: its reasons so far, how it misses the term."""

    __slots__ = ("looked_closer", "po", "reasons", "term_miss")

    def __init__(self, po: PoFacts) -> None:
        self.po = po
        self.reasons: list[_Pending] = []
        self.term_miss: _TermMiss = ""
        self.looked_closer = False

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


def _partial_detail(period: BillingPeriod, po: PoFacts) -> str:
    return (
        f"period {span_text(period.period_start, period.period_end)} is only partly inside the term "
        f"of {po.number} ({span_text(po.term_start, po.term_end)}); proration is not guessed"
    )


def _outside_detail(period: BillingPeriod, po: PoFacts) -> str:
    return (
        f"period {span_text(period.period_start, period.period_end)} is outside the term of "
        f"{po.number} ({span_text(po.term_start, po.term_end)})"
    )


def _currency_detail(po: PoFacts, billed_in: str) -> str:
    return f"{po.number} is in {po.currency}, billed in {billed_in}"


def _unmapped_detail(sku: str, number: str, accepted: frozenset[str]) -> str:
    return f"billed SKU {sku} has no line on {number} (accepted PO SKUs: {', '.join(sorted(accepted))})"


def _serving_detail(number: str, line: POLine, period: BillingPeriod) -> str:
    return (
        f"{number} line {line.line_no} serves {span_text(line.service_start, line.service_end)}, "
        f"billed {span_text(period.period_start, period.period_end)}"
    )


def _price_detail(po: PoFacts, line: POLine, billed: BillingLine) -> str:
    return (
        f"unit price {money_text(line.unit_price.amount, po.currency)} on {po.number} line "
        f"{line.line_no}, billed {price_text(billed.unit_price.amount, po.currency)}"
    )


def _quantity_detail(po: PoFacts, line: POLine, billed: BillingLine, left: Decimal) -> str:
    return (
        f"billed {quantity_text(billed.quantity)} {billed.sku}, {po.number} line {line.line_no} has "
        f"{quantity_text(left)} left of {quantity_text(line.quantity)}"
    )


def _exhausted_detail(po: PoFacts, total: Decimal, remaining: Decimal) -> str:
    return (
        f"period total {money_text(total, po.currency)}, {po.number} has "
        f"{money_text(remaining, po.currency)} left of {money_text(po.total, po.currency)}"
    )


def _term_check(check: Check, period: BillingPeriod) -> None:
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


def _cycle_detail(po: PoFacts, taken: tuple[date, date], period: BillingPeriod) -> str:
    return (
        f"{po.number} has no term end and was invoiced for the cycle {span_text(*taken)}; this "
        f"customer's POs cover one billing cycle each (po_scope = per_cycle), so "
        f"{span_text(period.period_start, period.period_end)} needs a new PO"
    )


def _cycle_check(check: Check, period: BillingPeriod, ledger: Ledger) -> None:
    taken = ledger.cycle_taken(check.po, (period.period_start, period.period_end))
    if taken is None:
        return
    if not check.term_miss:
        check.term_miss = "cycle"
    check.reasons.append(("po_cycle_used", partial(_cycle_detail, check.po, taken, period)))


def _serves(line: POLine, period: BillingPeriod) -> bool:
    return (line.service_start is None or line.service_start <= period.period_start) and (
        line.service_end is None or period.period_end <= line.service_end
    )


def _lines_check(
    check: Check,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    rules: Rules,
    ledger: Ledger,
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
    billed: BillingLine, line: POLine, po: PoFacts, taken: dict[int, Decimal], ledger: Ledger, rules: Rules
) -> bool:
    excess = billed.quantity - (ledger.line_left(po, line) - taken[line.line_no])
    return excess <= 0 or rules.quantity.allows(excess, line.quantity)


def _balance_check(check: Check, total: Decimal, rules: Rules, ledger: Ledger) -> None:
    po = check.po
    remaining = ledger.remaining(po)
    excess = total - remaining
    if excess <= 0 or rules.total.allows(excess, po.total):
        return
    check.reasons.append(("po_exhausted", partial(_exhausted_detail, po, total, remaining)))


def first_look(po: PoFacts, period: BillingPeriod, ledger: Ledger, *, one_cycle: bool = False) -> Check:
    """The reasons `po` cannot take `period` that need no numbers: its status, its term, its
    cycle (`one_cycle` when a PO without a term end covers one billing cycle only,
    `po_scope = per_cycle`) and its currency; in another currency nothing more is checked."""
    check = Check(po)
    if not po.is_open:
        status = po.po.status.value
        check.reasons.append((f"po_{status}", partial(_status_detail, po.number, status)))
    _term_check(check, period)
    if one_cycle:
        _cycle_check(check, period, ledger)
    if po.currency != period.currency:
        check.reasons.append(("currency_differs", partial(_currency_detail, po, period.currency)))
        check.looked_closer = True
    return check


def look_closer(
    check: Check,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    total: Decimal,
    rules: Rules,
    ledger: Ledger,
) -> None:
    """Add the reasons of the lines and of the balance (`total` is the period's) to `check`, once."""
    if check.looked_closer:
        return
    check.looked_closer = True
    _lines_check(check, period, accepted_lines, rules, ledger)
    _balance_check(check, total, rules, ledger)


def closest(checks: Sequence[Check], closer: Callable[[Check], None]) -> Check:
    """The check with the fewest reasons once looked at closely (`closer`), then by PO number
    and key: `min` over every check looked at closely, looking only at those that can win."""
    best: Check | None = None
    best_key: tuple[int, str, str] | None = None
    for check in sorted(checks, key=Check.sort_key):
        if best_key is not None and check.sort_key() > best_key:
            break  # it and every later one start with more reasons than the best ends with
        closer(check)
        key = check.sort_key()
        if best_key is None or key < best_key:
            best, best_key = check, key
    assert best is not None, "a period without candidates has no closest one"
    return best
