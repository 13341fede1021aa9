"""What a reconciliation returns, and the prior invoices it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from connector.model import (
    BillingLine,
    MatchResult,
    Money,
    POLine,
    PurchaseOrder,
)


@dataclass(frozen=True)
class PriorInvoice:
    """An invoice already planned or pushed that consumes part of a PO's balance."""

    po_key: str
    billing_key: str
    amount: Money
    pushed: bool
    po_revision: int
    line_quantities: dict[int, Decimal] = field(default_factory=dict)
    cycle: tuple[date, date] | None = None  # the invoiced period's start and end


@dataclass(frozen=True, slots=True)
class Allocation:
    """How a matched billing period maps onto its PO: each billing line with its PO line.

    `po` is None for a period invoiced without a PO (a customer with `po_required = false`);
    its lines then carry no PO line.
    """

    billing_key: str
    po: PurchaseOrder | None
    lines: tuple[tuple[BillingLine, POLine | None], ...]


@dataclass(frozen=True)
class ReconcileOutcome:
    """One result per billing period, one per open PO nothing used, and the matched allocations."""

    results: tuple[MatchResult, ...]
    allocations: dict[str, Allocation]
