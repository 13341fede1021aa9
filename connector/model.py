"""The canonical model every adapter maps into: purchase orders, billing periods, matches, plans.

All models are frozen pydantic v2 models. Money is always `Decimal` plus an ISO 4217 code;
datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.currency import is_known_currency, minor_unit
from connector.tax import LineTax, TaxProblem, TaxSubtotal, breakdown, tax_total


def _check_currency(code: str) -> str:
    if not is_known_currency(code):
        raise ValueError(f"unknown ISO 4217 currency code {code!r}")
    return code


def _check_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone")
    return value.astimezone(UTC)


def _reject_binary_fraction(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money and quantities must not be floats; pass a Decimal or a string")
    return value


CurrencyCode = Annotated[str, AfterValidator(_check_currency)]
UtcDateTime = Annotated[datetime, AfterValidator(_check_utc)]


class Frozen(BaseModel):
    """Base of canonical models: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(Frozen):
    """An exact amount of one currency. Arithmetic across currencies is an error."""

    amount: Decimal
    currency: CurrencyCode

    @field_validator("amount", mode="before")
    @classmethod
    def _no_binary_fraction(cls, value: Any) -> Any:
        return _reject_binary_fraction(value)

    @classmethod
    def of(cls, amount: Decimal | str | int, currency: str) -> Money:
        """Build from a Decimal, an int or a decimal string."""
        return cls(amount=Decimal(amount), currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    # Results of arithmetic on validated Money skip re-validation (a hot path in reconciliation).
    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money.model_construct(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money.model_construct(amount=self.amount - other.amount, currency=self.currency)

    def times(self, factor: Decimal) -> Money:
        return Money.model_construct(amount=self.amount * factor, currency=self.currency)

    def quantized(self) -> Money:
        """Rounded half-up to the currency's minor unit: only for final amounts."""
        quantum = minor_unit(self.currency)
        return Money.model_construct(
            amount=self.amount.quantize(quantum, ROUND_HALF_UP), currency=self.currency
        )

    def __str__(self) -> str:
        return f"{self.quantized().amount} {self.currency}"


class Address(Frozen):
    """A postal address with the party name, as on a PO's bill-to or ship-to."""

    name: str = ""
    lines: tuple[str, ...] = ()
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2 where known
    email: str = ""


class Party(Frozen):
    """A legal entity on an invoice: the buyer from the customer master, or the seller.

    `endpoint_id` with `endpoint_scheme` (a Peppol EAS code such as 9930 German VAT or 0088 GLN)
    is its electronic address; `tax_registration_id` is a non-VAT tax number (e.g. a US EIN).
    """

    legal_name: str
    address: Address | None = None
    vat_id: str = ""
    tax_registration_id: str = ""
    legal_registration_id: str = ""
    endpoint_id: str = ""
    endpoint_scheme: str = ""
    buyer_reference: str = ""
    contact_email: str = ""
    contact_name: str = ""
    contact_telephone: str = ""
    # The seller's payment instructions (BG-16/BG-17): account (IBAN), its name, bank (BIC).
    payment_account_id: str = ""
    payment_account_name: str = ""
    payment_bank_id: str = ""

    @property
    def country(self) -> str:
        return self.address.country if self.address else ""


class PaymentTerms(Frozen):
    """Payment terms of a PO: a code (e.g. NET30) and the days until due."""

    code: str
    net_days: int = Field(ge=0, le=3650)
    discount_percent: Decimal | None = None
    discount_days: int | None = None


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
    quantity: Decimal = Field(gt=0)
    unit_price: Money
    unit_of_measure: str = "EA"
    supplier_part_aux_id: str = ""
    service_start: date | None = None
    service_end: date | None = None

    @field_validator("quantity", mode="before")
    @classmethod
    def _no_binary_fraction(cls, value: Any) -> Any:
        return _reject_binary_fraction(value)

    @property
    def amount(self) -> Money:
        return self.unit_price.times(self.quantity)


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

    @cached_property
    def key(self) -> str:
        return po_key(self.tenant, self.source, self.external_id)

    @cached_property
    def total(self) -> Money:
        return _lines_total(self.currency, self.lines)


def po_key(tenant: str, source: str, external_id: str) -> str:
    """The stable key of a PO: tenant/source/external id."""
    return f"{tenant}/{source}/{external_id}"


class BillingLine(Frozen):
    """One charge of a billing period, net of tax.

    `tax` is the tax the billing system states for the line, if any. `line_amount` is the net
    amount it states for the line when that is not exactly unit price times quantity (a price
    stated tax-inclusive and converted to net); it wins over the product.
    """

    sku: str
    description: str = ""
    quantity: Decimal = Field(gt=0)
    unit_price: Money
    tax: LineTax | None = None
    line_amount: Money | None = None

    @field_validator("quantity", mode="before")
    @classmethod
    def _no_binary_fraction(cls, value: Any) -> Any:
        return _reject_binary_fraction(value)

    @property
    def amount(self) -> Money:
        return self.line_amount if self.line_amount is not None else self.unit_price.times(self.quantity)


class BillingPeriod(Frozen):
    """A subscription billing record: what the vendor means to invoice for one period."""

    tenant: str = "default"
    billing_source: str
    subscription_id: str
    period_start: date
    period_end: date
    customer_ref: str
    customer_name: str = ""
    po_number: str | None = None
    currency: CurrencyCode
    lines: tuple[BillingLine, ...] = Field(min_length=1)
    invoice_date: date | None = None
    status: str = "open"

    @model_validator(mode="after")
    def _consistent(self) -> BillingPeriod:
        if self.period_end < self.period_start:
            raise ValueError(f"period ends {self.period_end} before it starts {self.period_start}")
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise ValueError(
                    f"line {line.sku} is in {line.unit_price.currency}, period in {self.currency}"
                )
        return self

    @cached_property
    def key(self) -> str:
        return f"{self.tenant}/{self.billing_source}/{self.subscription_id}/{self.period_start.isoformat()}"

    @cached_property
    def total(self) -> Money:
        return _lines_total(self.currency, self.lines)


def _lines_total(currency: str, lines: tuple[POLine, ...] | tuple[BillingLine, ...]) -> Money:
    """The sum of unit price times quantity, unrounded; one Money built, not one per line."""
    amount = Decimal(0)
    for line in lines:
        if line.unit_price.currency != currency:
            raise ValueError(f"cannot combine {currency} with {line.unit_price.currency}")
        stated = getattr(line, "line_amount", None)
        amount = amount + (stated.amount if stated is not None else line.unit_price.amount * line.quantity)
    return Money(amount=amount, currency=currency)


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


class InvoicePlan(Frozen):
    """An invoice to create in one sink, exactly once, identified by its idempotency key."""

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


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
