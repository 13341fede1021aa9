"""The invoice plan a sink creates exactly once, its lines and totals, and what a sink reports back."""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from connector.model.base import CurrencyCode, Frozen, Money
from connector.model.parties import Address, Party, PaymentTerms
from connector.tax import LineTax, TaxProblem, TaxSubtotal, breakdown, tax_total


class InvoiceLine(Frozen):
    """One line of an invoice plan."""

    line_no: int = Field(ge=1)
    po_line_no: int | None = None
    sku: str
    supplier_part_id: str = ""
    description: str = ""
    quantity: Decimal
    unit_of_measure: str = "EA"
    unit_price: Money
    service_start: date | None = None
    service_end: date | None = None
    tax: LineTax | None = None
    line_amount: Money | None = None

    @property
    def amount(self) -> Money:
        """The line's net amount at the currency's minor unit (BT-131)."""
        if self.line_amount is not None:
            return self.line_amount.quantized()
        return self.unit_price.times(self.quantity).quantized()


class DocumentType(enum.StrEnum):
    """What an outgoing plan is: an invoice, or a credit note that corrects one."""

    INVOICE = "invoice"  # UBL Invoice 380, cXML standard invoice, QuickBooks Invoice, Xero ACCREC
    CREDIT_NOTE = "credit_note"  # UBL CreditNote 381, cXML creditMemo, CreditMemo, ACCRECCREDIT


class CreditedInvoice(Frozen):
    """The invoice a credit note corrects (UBL BillingReference: BT-25 number, BT-26 date).

    `remote_id` is the sink's own id of that invoice, for sinks that link or allocate a credit
    to it (Xero, NetSuite, Tryton); `reason` is what support gave (`credit --reason`).
    """

    invoice_number: str = Field(min_length=1)
    issue_date: date
    remote_id: str = ""
    reason: str = Field(min_length=1)


class Reissue(Frozen):
    """How a billing period is invoiced again after its invoice was credited: the issue ordinal
    (1 for the first reissue) and the day it is issued."""

    issue: int = Field(ge=1)
    issued_on: date


class InvoicePlan(Frozen):
    """An invoice (or a credit note) to create in one sink, exactly once, by its idempotency key.

    A credit note carries the lines of the invoice it credits, with the same positive amounts
    (sinks that sign credits negative, as cXML and Tryton do, negate them when they write), and
    `credits` names that invoice.
    """

    idempotency_key: str
    invoice_number: str
    sink: str
    tenant: str = "default"
    customer_ref: str
    customer_name: str = ""
    po_number: str
    po_key: str
    po_revision: int
    billing_key: str
    currency: CurrencyCode
    issue_date: date
    due_date: date
    payment_terms: PaymentTerms | None = None
    bill_to: Address | None = None
    ship_to: Address | None = None
    lines: tuple[InvoiceLine, ...] = Field(min_length=1)
    period_start: date
    period_end: date
    memo: str = ""
    buyer: Party | None = None
    document_type: DocumentType = DocumentType.INVOICE
    credits: CreditedInvoice | None = None

    @model_validator(mode="after")
    def _credit_note_names_its_invoice(self) -> InvoicePlan:
        if self.is_credit_note and self.credits is None:
            raise ValueError("a credit note must name the invoice it credits")
        if not self.is_credit_note and self.credits is not None:
            raise ValueError("only a credit note names an invoice it credits")
        return self

    @property
    def is_credit_note(self) -> bool:
        return self.document_type is DocumentType.CREDIT_NOTE

    @model_validator(mode="after")
    def _tax_on_every_line_or_none(self) -> InvoicePlan:
        taxed = [line.tax is not None for line in self.lines]
        if any(taxed) and not all(taxed):
            missing = [line.line_no for line in self.lines if line.tax is None]
            raise ValueError(f"lines {missing} carry no tax while others do")
        if any(taxed):
            try:
                _ = self.tax_breakdown
            except TaxProblem as exc:
                raise ValueError(f"{exc.code}: {exc.detail}") from None
        return self

    @property
    def is_taxed(self) -> bool:
        """True when every line carries its tax (plans made before tax was carried have none)."""
        return all(line.tax is not None for line in self.lines)

    @property
    def net_total(self) -> Money:
        """The sum of line net amounts (BT-106 = BT-109: no document allowances or charges)."""
        total = Money.zero(self.currency)
        for line in self.lines:
            total = total + line.amount
        return total

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> InvoicePlan:
        """A copy; the cached breakdown is not carried over, as `update` may change the lines."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("tax_breakdown", None)
        return copied

    @functools.cached_property
    def tax_breakdown(self) -> tuple[TaxSubtotal, ...]:
        """One subtotal per tax category and rate; empty for an untaxed plan (computed once: the
        plan is immutable, and totals, sinks and the outbox all read it)."""
        if not self.is_taxed:
            return ()
        return breakdown(((line.amount.amount, line.tax) for line in self.lines if line.tax), self.currency)

    @property
    def tax_total(self) -> Money:
        return Money(amount=tax_total(self.tax_breakdown, self.currency), currency=self.currency)

    @property
    def total(self) -> Money:
        """What the buyer pays: net plus tax (BT-112 = BT-115, nothing prepaid)."""
        return self.net_total + self.tax_total


class RemoteRef(Frozen):
    """What a sink reports about an invoice it holds: `total` includes tax, `tax` is its tax."""

    remote_id: str
    invoice_number: str = ""
    total: Money | None = None
    tax: Money | None = None
    correlation_id: str = ""
    already_existed: bool = False
