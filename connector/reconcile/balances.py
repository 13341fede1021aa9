"""The balance ledger: what prior invoices and this run's matches consumed, per PO and PO line."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from connector.model import (
    BillingLine,
    POLine,
)
from connector.reconcile.indexes import PoFacts
from connector.reconcile.tolerances import Tolerance

ZERO = Decimal(0)
Allocated = list[tuple[BillingLine, POLine]]


class Ledger:
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

    def draw(self, po_key: str, amount: Decimal, lines: Allocated) -> None:
        """Record a match of this run: its total and each billed quantity on its PO line."""
        self.touched.add(po_key)
        self.amount[po_key] += amount
        quantity = self.quantity
        for billed, line in lines:
            quantity[(po_key, line.line_no)] += billed.quantity

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
