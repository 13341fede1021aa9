"""Renewal warnings: a PO whose term ends soon or whose balance is mostly consumed."""

from __future__ import annotations

from decimal import Decimal

from connector.model import (
    PurchaseOrder,
    Reason,
)
from connector.reconcile.balances import Ledger
from connector.reconcile.explanations import money_text
from connector.reconcile.indexes import PoFacts
from connector.reconcile.tolerances import HUNDRED, ReconcileSettings

_TERM_ENDS = "term ends"


TERM_END, CONSUMED = "term_end", "consumed"


def term_warning(po: PoFacts, settings: ReconcileSettings) -> tuple[Reason, ...]:
    if settings.as_of is None or po.term_end is None:
        return ()
    days_left = (po.term_end - settings.as_of).days
    if days_left > settings.renewal_warning_days:
        return ()
    return (
        Reason(
            code="renewal_due",
            detail=f"{po.number} {_TERM_ENDS} {po.term_end.isoformat()}, "
            f"{days_left} days after {settings.as_of.isoformat()}",
        ),
    )


class RenewalWatch:
    """The renewal warnings of one PO while a run draws it down: the term-end one, which the run
    cannot change, and the consumed-share one, looked at after each match."""

    __slots__ = ("_limit", "_po", "_settings", "dated")

    def __init__(self, po: PoFacts, settings: ReconcileSettings) -> None:
        self._po = po
        self._settings = settings
        self.dated = term_warning(po, settings)
        total = po.total
        # `_share_warning` warns from consumed * 100 >= total * percent: the right side, once.
        self._limit = total * settings.renewal_warning_percent if total > 0 else None

    def warnings(self, ledger: Ledger) -> tuple[Reason, ...]:
        """The PO's renewal warnings with what `ledger` holds as consumed now."""
        po = self._po
        consumed = po.total - ledger.remaining(po)
        if self._limit is None or consumed * HUNDRED < self._limit:
            return self.dated
        share = _share_warning(po, consumed, self._settings)
        return self.dated if share is None else (*self.dated, share)


def _share_warning(po: PoFacts, consumed: Decimal, settings: ReconcileSettings) -> Reason | None:
    total = po.total
    if total > 0 and consumed * HUNDRED >= total * settings.renewal_warning_percent:
        share = (consumed * HUNDRED / total).quantize(Decimal("0.1"))
        return Reason(
            code="renewal_due",
            detail=f"{po.number} is {share}% consumed "
            f"({money_text(consumed, po.currency)} of {money_text(total, po.currency)})",
        )
    return None


def renewal_warnings(po: PurchaseOrder, consumed: Decimal, settings: ReconcileSettings) -> tuple[Reason, ...]:
    """The renewal warnings of a PO of which `consumed` is already invoiced (term end, share)."""
    facts = PoFacts(po)
    share = _share_warning(facts, consumed, settings)
    return (*term_warning(facts, settings), *((share,) if share else ()))


def renewal_reason(po: PurchaseOrder, warning: Reason) -> tuple[str, str]:
    """What a `renewal_due` warning of `po` asks for, as (kind, stable key).

    The kind is TERM_END or CONSUMED; the key names what the ask is about, so the same ask
    has the same key on every run while a new one (a PO extended to a later end, or revised
    to a larger total) gets its own: `term_end:2026-12-31`, `consumed:24000.00`.
    """
    if po.term_end is not None and warning.detail.startswith(f"{po.po_number} {_TERM_ENDS} "):
        return TERM_END, f"{TERM_END}:{po.term_end.isoformat()}"
    return CONSUMED, f"{CONSUMED}:{po.total.amount}"
