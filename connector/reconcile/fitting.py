"""Does a candidate PO take a period: the common path, with no reason written."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from connector.model import (
    BillingPeriod,
)
from connector.reconcile.balances import ZERO, Allocated, Ledger, Rules
from connector.reconcile.indexes import PoFacts


def fit(
    po: PoFacts,
    period: BillingPeriod,
    accepted_lines: Sequence[frozenset[str]],
    total: Decimal,
    rules: Rules,
    ledger: Ledger,
) -> Allocated | None:
    """The allocation when `po` takes `period` without a single reason against it, else None.

    Exactly the verdict of `first_look` and `look_closer` finding no reason, for a PO that passed
    `could_take`; the line chosen for a billed SKU is the first by line number that serves, is
    priced and has room.
    """
    start, end = po.term_start, po.term_end
    period_start, period_end = period.period_start, period.period_end
    if (start is not None and period_start < start) or (end is not None and end < period_end):
        return None
    drawn, key = ledger.quantity, po.key
    price, quantity = rules.price, rules.quantity
    mapped_by = po.mapped_by
    taken: dict[int, Decimal] = {}
    lines: Allocated = []
    for billed, accepted in zip(period.lines, accepted_lines, strict=True):
        billed_price, billed_quantity = billed.unit_price.amount, billed.quantity
        for line in mapped_by.get(accepted) or po.mapped(accepted):
            if (line.service_start is not None and period_start < line.service_start) or (
                line.service_end is not None and line.service_end < period_end
            ):
                continue
            line_price = line.unit_price.amount
            difference = billed_price - line_price
            if difference and not price.allows(difference, line_price):
                continue
            line_no = line.line_no
            left = (line.quantity - drawn.get((key, line_no), ZERO)) - taken.get(line_no, ZERO)
            excess = billed_quantity - left
            if excess <= 0 or quantity.allows(excess, line.quantity):
                taken[line_no] = taken.get(line_no, ZERO) + billed_quantity
                lines.append((billed, line))
                break
        else:
            return None
    po_total = po.total
    excess = total - (po_total - ledger.amount.get(key, ZERO))  # the period total - what is left
    if excess > 0 and not rules.total.allows(excess, po_total):
        return None
    return lines
