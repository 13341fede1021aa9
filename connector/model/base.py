"""The base of every canonical model: frozen models, currency codes, UTC datetimes, exact Money.

Money is always `Decimal` plus an ISO 4217 code; datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from connector.currency import is_known_currency, minor_unit


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
ExactDecimal = Annotated[Decimal, BeforeValidator(_reject_binary_fraction)]  # an amount or a quantity


class Frozen(BaseModel):
    """Base of canonical models: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(Frozen):
    """An exact amount of one currency. Arithmetic across currencies is an error."""

    amount: ExactDecimal
    currency: CurrencyCode

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


class PricedLine(Protocol):
    """A line priced per unit, as POs and billing periods have them."""

    @property
    def unit_price(self) -> Money: ...

    @property
    def quantity(self) -> Decimal: ...


def lines_total(currency: str, lines: Iterable[PricedLine]) -> Money:
    """The sum of unit price times quantity, unrounded; one Money built, not one per line.

    A line stating its own net amount (`line_amount`) counts with that amount.
    """
    amount = Decimal(0)
    for line in lines:
        if line.unit_price.currency != currency:
            raise ValueError(f"cannot combine {currency} with {line.unit_price.currency}")
        stated = getattr(line, "line_amount", None)
        amount = amount + (stated.amount if stated is not None else line.unit_price.amount * line.quantity)
    return Money(amount=amount, currency=currency)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
