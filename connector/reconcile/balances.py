"""The balance ledger: what prior invoices and this run's matches consumed, per PO and PO line."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from connector.model import (
    BillingLine,
    POLine,
)
from connector.reconcile.indexes import PoFacts
from connector.reconcile.tolerances import Tolerance

ZERO = Decimal(0)
Allocated = list[tuple[BillingLine, POLine]]
Cycle = tuple[date, date]  # a billing period's start and end


class Ledger:
    """What prior invoices and earlier matches of this run consumed, per PO and per PO line."""

    def __init__(self) -> None:
        self.amount: dict[str, Decimal] = defaultdict(Decimal)
        self.quantity: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self.touched: set[str] = set()
        # The billing cycles each PO without a term end was invoiced for (the only POs whose
        # cycles matter: a PO with a term covers the cycles inside it).
        self.cycles: dict[str, set[Cycle]] = {}

    def add(
        self,
        po_key: str,
        amount: Decimal,
        quantities: Iterable[tuple[int, Decimal]],
        cycle: Cycle | None = None,
    ) -> None:
        self.touched.add(po_key)
        self.amount[po_key] += amount
        for line_no, quantity in quantities:
            self.quantity[(po_key, line_no)] += quantity
        if cycle is not None:
            self.cycles.setdefault(po_key, set()).add(cycle)

    def draw(self, po_key: str, amount: Decimal, lines: Allocated, cycle: Cycle | None = None) -> None:
        """Record a match of this run: its total, each billed quantity on its PO line, and for a
        PO without a term end the cycle it covered."""
        self.touched.add(po_key)
        if cycle is not None:
            self.cycles.setdefault(po_key, set()).add(cycle)
        self.amount[po_key] += amount
        quantity = self.quantity
        for billed, line in lines:
            quantity[(po_key, line.line_no)] += billed.quantity

    def cycle_taken(self, po: PoFacts, cycle: Cycle) -> Cycle | None:
        """For a PO without a term end: another cycle it was already invoiced for, if any."""
        if po.term_end is not None:
            return None
        taken = self.cycles.get(po.key)
        if not taken or cycle in taken:
            return None
        return min(taken)

    def remaining(self, po: PoFacts) -> Decimal:
        return po.total - self.amount.get(po.key, ZERO)

    def line_left(self, po: PoFacts, line: POLine) -> Decimal:
        return line.quantity - self.quantity.get((po.key, line.line_no), ZERO)


@dataclass(frozen=True)
class Rules:
    """The tolerances that apply to one currency."""

    price: Tolerance
    quantity: Tolerance
    total: Tolerance
