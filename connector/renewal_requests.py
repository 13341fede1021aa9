"""Which PO requests the stored reconciliation asks for, and what the next cycle needs (pure).

One request per (PO, reason) for a matched PO carrying a `renewal_due` warning (its term ends
within the renewal window, or its balance passed the configured share), and one per billing
period that is `missing_po`. Each names the cycle the new PO must cover: for a PO whose term
ends, the first cycle starting after the end; for a consumed PO, the cycle after the last one
invoiced on it; for a period without a PO, that period. Cycles repeat the last one invoiced:
its SKUs, quantities and amount, shifted by whole months when it spans whole months.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from connector.model import BillingLine, BillingPeriod, MatchStatus, Money, PurchaseOrder, Reason
from connector.reconcile import CONSUMED, TERM_END, renewal_reason

KIND = "renewal_request"
MISSING_PO = "missing_po"
RENEWAL_DUE = "renewal_due"  # the code of the warning a PO running out carries
# The template of each kind of request (connector/mail_templates/<name>.txt).
TEMPLATES = {TERM_END: "renewal_term_end", CONSUMED: "renewal_consumed", MISSING_PO: "missing_po"}


@dataclass(frozen=True)
class Cycle:
    """A billing cycle a PO must cover: its dates, the billed lines and their net amount."""

    start: date
    end: date
    lines: tuple[BillingLine, ...]
    amount: Money
    subscriptions: tuple[str, ...]

    def shifted(self) -> Cycle:
        """The next cycle of the same length (whole months when this one spans whole months)."""
        start, end = next_span(self.start, self.end)
        return Cycle(start, end, self.lines, self.amount, self.subscriptions)


@dataclass(frozen=True)
class RenewalRequest:
    """One PO request: about which PO (or period), for which reason, and the cycle it covers."""

    subject_key: str
    reason: str  # stable: term_end:<date>, consumed:<PO total>, missing_po
    kind: str  # TERM_END, CONSUMED or MISSING_PO: which template
    customer_ref: str
    cycle: Cycle
    why: str
    po: PurchaseOrder | None = None
    last_cycle: Cycle | None = None


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def next_span(start: date, end: date) -> tuple[date, date]:
    """The span right after start..end, as long: in months when it is whole months, else days."""
    if start.day == 1 and end == _month_end(end):
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        following = _add_months(start, months)
        return following, _month_end(_add_months(following, months - 1))
    following = end + timedelta(days=1)
    return following, following + (end - start)


def cycle_of(periods: Iterable[BillingPeriod]) -> Cycle:
    """One cycle from the periods billed for it (one per subscription, same currency)."""
    chosen = list(periods)
    currency = chosen[0].currency
    total = sum((p.total.quantized().amount for p in chosen), Decimal(0))
    return Cycle(
        start=min(p.period_start for p in chosen),
        end=max(p.period_end for p in chosen),
        lines=tuple(line for p in chosen for line in p.lines),
        amount=Money(amount=total, currency=currency),
        subscriptions=tuple(dict.fromkeys(p.subscription_id for p in chosen)),
    )


def _last_cycle(periods: list[BillingPeriod]) -> Cycle | None:
    """The latest cycle invoiced on a PO: its periods that start last (in the PO's currency)."""
    if not periods:
        return None
    latest = max(p.period_start for p in periods)
    return cycle_of(p for p in periods if p.period_start == latest)


def _after_term(last: Cycle, term_end: date) -> Cycle:
    cycle = last.shifted()
    for _ in range(1000):  # a daily cycle over a long term still ends; a bad span never spins
        if cycle.start > term_end:
            break
        cycle = cycle.shifted()
    return cycle


def find_requests(
    stored: Iterable[Mapping[str, Any]],
    periods: Mapping[str, BillingPeriod],
    pos: Mapping[str, PurchaseOrder],
) -> list[RenewalRequest]:
    """The requests the stored results ask for, each (subject, reason) once, in a stable order."""
    rows = list(stored)
    matched: dict[str, list[BillingPeriod]] = {}
    warned: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["status"] != MatchStatus.MATCHED.value or not row["po_key"]:
            continue
        period = periods.get(row["billing_key"] or "")
        if period is not None:
            matched.setdefault(row["po_key"], []).append(period)
        for warning in row["warnings"]:
            if warning.get("code") == RENEWAL_DUE:
                warned.setdefault(row["po_key"], []).append(warning)
    found: dict[tuple[str, str], RenewalRequest] = {}
    for po_key, warnings in sorted(warned.items()):
        po = pos.get(po_key)
        last = _last_cycle([p for p in matched.get(po_key, []) if po is None or p.currency == po.currency])
        if po is None or last is None:
            continue
        for warning in warnings:
            kind, reason = renewal_reason(po, Reason(code=warning["code"], detail=warning["detail"]))
            if (po_key, reason) in found:
                continue
            term_end = po.term_end
            cycle = _after_term(last, term_end) if kind == TERM_END and term_end else last.shifted()
            found[(po_key, reason)] = RenewalRequest(
                subject_key=po_key,
                reason=reason,
                kind=kind,
                customer_ref=matched[po_key][0].customer_ref,
                cycle=cycle,
                why=warning["detail"],
                po=po,
                last_cycle=last,
            )
    for row in rows:
        if row["status"] != MatchStatus.MISSING_PO.value:
            continue
        period = periods.get(row["billing_key"] or "")
        if period is None:
            continue
        found[(period.key, MISSING_PO)] = RenewalRequest(
            subject_key=period.key,
            reason=MISSING_PO,
            kind=MISSING_PO,
            customer_ref=period.customer_ref,
            cycle=cycle_of([period]),
            why="; ".join(reason["detail"] for reason in row["reasons"]) or "no PO covers the period",
        )
    return list(found.values())


def _number(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def lines_table(lines: Iterable[BillingLine], currency: str) -> str:
    """The cycle's lines as a fixed-width table for a plain-text message."""
    rows = [("SKU", "Description", "Quantity", "Unit price", f"Amount ({currency})")]
    for line in lines:
        rows.append(
            (
                line.sku,
                line.description,
                _number(line.quantity),
                str(line.unit_price.amount),
                str(line.amount.quantized().amount),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for row in rows:
        left = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:2]))
        right = "  ".join(cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:]))
        out.append(f"  {left}  {right}".rstrip())
    return "\n".join(out)
