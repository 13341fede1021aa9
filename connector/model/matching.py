"""What reconciliation concludes: a match status with the reasons a person can act on."""

from __future__ import annotations

import enum

from connector.model.base import Frozen, Money


class MatchStatus(enum.StrEnum):
    """Where a billing period (or an unused PO) ended after reconciliation."""

    MATCHED = "matched"
    MISMATCH = "mismatch"
    MISSING_PO = "missing_po"
    UNUSED_PO = "unused_po"
    AMBIGUOUS = "ambiguous"


class Reason(Frozen):
    """A reason code a person can act on, with the numbers in its detail."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class MatchResult(Frozen):
    """The outcome for one billing period, or for one PO no period used."""

    status: MatchStatus
    reasons: tuple[Reason, ...] = ()
    billing_key: str | None = None
    po_key: str | None = None
    po_number: str | None = None
    customer_ref: str | None = None
    amount: Money | None = None
    warnings: tuple[Reason, ...] = ()

    @property
    def subject_key(self) -> str:
        """What the result is about: the billing period, or the PO for `unused_po`."""
        return self.billing_key or f"po:{self.po_key}"
