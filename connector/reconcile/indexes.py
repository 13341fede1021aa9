"""What is known of the POs before any period is looked at: facts per PO, candidates per customer."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

from connector.maps import CustomerMap
from connector.model import (
    POLine,
    POStatus,
    PurchaseOrder,
)
from connector.model.base import lines_amount


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
        "mapped_by",
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
        # `mapped`, per set of accepted codes: the periods a PO sees bill the same few SKUs.
        self.mapped_by: dict[frozenset[str], Sequence[POLine]] = {}
        lines = po.lines
        by_code: dict[str, Sequence[POLine]]
        if len(lines) == 1:  # the common case, without a list per code
            line = lines[0]
            by_code = {line.sku: lines}
            if line.supplier_part_aux_id and line.supplier_part_aux_id != line.sku:
                by_code[line.supplier_part_aux_id] = lines
        else:
            grouped: dict[str, list[POLine]] = {}
            for line in sorted(lines, key=_line_no):
                grouped.setdefault(line.sku, []).append(line)
                if line.supplier_part_aux_id and line.supplier_part_aux_id != line.sku:
                    grouped.setdefault(line.supplier_part_aux_id, []).append(line)
            by_code = dict(grouped)
        self.lines_by_code = by_code

    def mapped(self, accepted: frozenset[str]) -> Sequence[POLine]:
        """The lines any of the `accepted` codes names, by line number."""
        known = self.mapped_by.get(accepted)
        if known is None:
            hits = [lines for code in accepted if (lines := self.lines_by_code.get(code))]
            if len(hits) == 1:
                known = hits[0]
            else:
                found = {line.line_no: line for lines in hits for line in lines}
                known = [found[number] for number in sorted(found)]
            self.mapped_by[accepted] = known
        return known

    @property
    def total(self) -> Decimal:
        # Read when a balance is checked, not for every PO: many are never a candidate.
        known = self._total
        if known is None:
            known = self._total = lines_amount(self.currency, self.po.lines)
        return known

    def could_take(self, currency: str, accepted_lines: Sequence[frozenset[str]]) -> bool:
        """Open, in `currency`, and a line for every billed SKU: what a fit needs before numbers."""
        if not self.is_open or self.currency != currency:
            return False
        return not any(map(self.lines_by_code.keys().isdisjoint, accepted_lines))


def _line_no(line: POLine) -> int:
    return line.line_no


class CustomerPos:
    """One customer's latest POs in candidate order, by PO number, and the open ones per currency and code."""

    __slots__ = ("_eligible", "by_number", "open_by_code", "pos")

    def __init__(self) -> None:
        self.pos: list[PoFacts] = []
        self.by_number: dict[str, list[PoFacts]] = {}
        self.open_by_code: dict[str, dict[str, list[int]]] = {}
        # (currency, accepted codes per billed line) -> `could_take`: periods repeat their SKUs.
        self._eligible: dict[tuple[str, tuple[frozenset[str], ...]], list[PoFacts]] = {}

    def add(self, po: PoFacts, number: str) -> None:
        """Add the next PO in candidate order, under its normalised PO `number`."""
        position = len(self.pos)
        self.pos.append(po)
        known = self.by_number.get(number)
        if known is None:
            self.by_number[number] = [po]
        else:
            known.append(po)
        if po.is_open:
            by_code = self.open_by_code.get(po.currency)
            if by_code is None:
                by_code = self.open_by_code[po.currency] = {}
            for code in po.lines_by_code:
                found = by_code.get(code)
                if found is None:
                    by_code[code] = [position]
                else:
                    found.append(position)

    def could_take(self, currency: str, accepted_lines: tuple[frozenset[str], ...]) -> list[PoFacts]:
        """The candidates that pass `PoFacts.could_take`, in candidate order (not to be changed)."""
        key = (currency, accepted_lines)
        known = self._eligible.get(key)
        if known is None:
            known = self._eligible[key] = self._could_take(currency, accepted_lines)
        return known

    def _could_take(self, currency: str, accepted_lines: Sequence[frozenset[str]]) -> list[PoFacts]:
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
    # normalised PO number -> the customers of POs not reconciled with these (a scoped run)
    owners_elsewhere: Mapping[str, Collection[str | None]] = field(default_factory=dict)


def build_index(
    pos: Sequence[PurchaseOrder],
    customers: CustomerMap,
    owners_elsewhere: Mapping[str, Collection[str | None]] | None = None,
) -> PoIndex:
    latest: dict[str, PurchaseOrder] = {}
    for po in pos:
        known = latest.setdefault(po.key, po)
        # Same key and revision twice: keep one by content, so input order cannot matter.
        if known is not po and (po.revision, po.model_dump_json()) > (
            known.revision,
            known.model_dump_json(),
        ):
            latest[po.key] = po
    # Candidate order is by PO number, then key: sorted by key, then (stably) by number.
    ordered = [latest[key] for key in sorted(latest)]
    ordered.sort(key=attrgetter("po_number"))
    customer_of: dict[str, str | None] = {}
    by_customer: dict[str, CustomerPos] = {}
    by_number: dict[str, list[PoFacts]] = {}
    customer_for = customers.customer_for
    for po in ordered:
        key = po.key
        facts = PoFacts(po)
        number = norm_po_number(po.po_number)
        ref = customer_of[key] = customer_for(po)
        if ref is not None:
            owner = by_customer.get(ref)
            if owner is None:
                owner = by_customer[ref] = CustomerPos()
            owner.add(facts, number)
        same = by_number.get(number)
        if same is None:
            by_number[number] = [facts]
        else:
            same.append(facts)
    return PoIndex(latest, customer_of, by_customer, by_number, owners_elsewhere or {})
