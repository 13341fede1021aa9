"""The canonical purchase order: its status, its lines and its key."""

from __future__ import annotations

import enum
from datetime import date

from pydantic import Field, model_validator

from connector.model.base import (
    CurrencyCode,
    ExactDecimal,
    Frozen,
    Money,
    UtcDateTime,
    cached,
    lines_total,
)
from connector.model.parties import Address, PaymentTerms


class POStatus(enum.StrEnum):
    """Canonical PO status; adapters keep the source's own status beside it."""

    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ON_HOLD = "on_hold"


class POLine(Frozen):
    """One line of a purchase order."""

    line_no: int = Field(ge=1)
    sku: str
    description: str = ""
    quantity: ExactDecimal = Field(gt=0)
    unit_price: Money
    unit_of_measure: str = "EA"
    supplier_part_aux_id: str = ""
    service_start: date | None = None
    service_end: date | None = None

    @property
    def amount(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def line_amount(self) -> None:
        """A PO line states no net amount of its own: it is unit price times quantity."""
        return None


class PurchaseOrder(Frozen):
    """A buyer's purchase order in canonical form, whatever system it came from."""

    tenant: str = "default"
    source: str
    external_id: str
    po_number: str = Field(min_length=1)
    revision: int = Field(default=1, ge=0)
    # The buyer system's own version label as it stated it ("" when it states none).
    source_version: str = Field(default="", max_length=64)
    status: POStatus = POStatus.OPEN
    source_status: str = ""
    buyer_id: str = ""
    buyer_name: str = ""
    customer_ref: str | None = None
    bill_to: Address | None = None
    ship_to: Address | None = None
    currency: CurrencyCode
    payment_terms: PaymentTerms | None = None
    term_start: date | None = None
    term_end: date | None = None
    issued_on: date | None = None
    lines: tuple[POLine, ...] = Field(min_length=1)
    approver: str = ""
    comments: str = ""
    prices_include_tax: bool = False
    source_updated_at: UtcDateTime | None = None
    raw_sha256: str = ""
    extrinsics: dict[str, str] = Field(default_factory=dict)
    # The e-mail a PO arrived in (its Message-ID and sender), which the acknowledgement replies
    # to; not part of the PO's content (the same order re-sent in another e-mail is unchanged).
    origin_message: str = ""
    origin_sender: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> PurchaseOrder:
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise ValueError(
                    f"line {line.line_no} is in {line.unit_price.currency}, PO in {self.currency}"
                )
        numbers = [line.line_no for line in self.lines]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"duplicate line numbers {sorted(numbers)}")
        if self.term_start and self.term_end and self.term_end < self.term_start:
            raise ValueError(f"term ends {self.term_end} before it starts {self.term_start}")
        return self

    @cached
    def key(self) -> str:
        return po_key(self.tenant, self.source, self.external_id)

    @cached
    def total(self) -> Money:
        return lines_total(self.currency, self.lines)


def po_key(tenant: str, source: str, external_id: str) -> str:
    """The stable key of a PO: tenant/source/external id."""
    return f"{tenant}/{source}/{external_id}"
