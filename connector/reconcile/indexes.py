"""What is known of the POs before any period is looked at: facts per PO, candidates per customer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from connector.maps import CustomerMap
from connector.model import (
    POLine,
    POStatus,
    PurchaseOrder,
)


def norm_po_number(number: str) -> str:
    return number.strip().casefold()


class PoFacts:
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


class CustomerPos:
    """One customer's latest POs in candidate order, by PO number, and the open ones per currency and code."""

    __slots__ = ("by_number", "open_by_code", "pos")

    def __init__(self) -> None:
        self.pos: list[PoFacts] = []
        self.by_number: dict[str, list[PoFacts]] = {}
        self.open_by_code: dict[str, dict[str, list[int]]] = {}

    def add(self, po: PoFacts) -> None:
        position = len(self.pos)
        self.pos.append(po)
        self.by_number.setdefault(norm_po_number(po.number), []).append(po)
        if po.is_open:
            by_code = self.open_by_code.setdefault(po.currency, {})
            for code in po.lines_by_code:
                by_code.setdefault(code, []).append(position)

    def could_take(self, currency: str, accepted_lines: Sequence[frozenset[str]]) -> list[PoFacts]:
        """The candidates that pass `PoFacts.could_take`, in candidate order, found through the index."""
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
class PoIndex:
    """The latest revision of every PO, by customer and by PO number."""

    latest: dict[str, PurchaseOrder]
    customer_of: dict[str, str | None]
    by_customer: dict[str, CustomerPos]
    by_number: dict[str, list[PoFacts]]


def build_index(pos: Sequence[PurchaseOrder], customers: CustomerMap) -> PoIndex:
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
    by_customer: dict[str, CustomerPos] = {}
    by_number: dict[str, list[PoFacts]] = defaultdict(list)
    for po in ordered:
        facts = PoFacts(po)
        ref = customer_of[po.key]
        if ref is not None:
            owner = by_customer.get(ref)
            if owner is None:
                owner = by_customer[ref] = CustomerPos()
            owner.add(facts)
        by_number[norm_po_number(po.po_number)].append(facts)
    return PoIndex(latest, customer_of, by_customer, dict(by_number))
