"""The base of every canonical model: frozen models, currency codes, UTC datetimes, exact Money.

Money is always `Decimal` plus an ISO 4217 code; datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Generic, Protocol, Self, TypeVar, overload

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


T = TypeVar("T")
_new = object.__new__
_set = object.__setattr__


class cached(Generic[T]):
    """`functools.cached_property` for frozen models, without the lock Python 3.11 takes.

    Up to 3.11 every first read of a `cached_property` takes one lock shared by all instances
    (3.12 dropped it); that doubled the cost of the keys and totals read once per PO and
    period in a reconciliation. The value is kept in the instance's `__dict__` as
    `cached_property` keeps it, so later reads are plain attribute reads.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | Self:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


class Frozen(BaseModel):
    """Base of canonical models: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached,))

    @classmethod
    def trusted(cls, fields: dict[str, Any], fields_set: set[str] | None = None) -> Self:
        """A model holding `fields` as they are, without validating them again.

        What `model_construct` makes, at a fifth of its cost (and a third of validation's), for
        the hot paths that build many models from validated parts: arithmetic on Money,
        reconciliation results. `fields` holds every field in declaration order, each a value
        validation would have kept as it is. `fields_set` names those given explicitly (all of
        them by default), as `model_fields_set` reports them; like `model_construct`'s it is
        kept, not copied, so one set can serve every model built alike (a frozen model never
        changes it, `model_copy` changes a copy).
        """
        model = _new(cls)
        _set(model, "__dict__", fields)
        _set_fields_set(model, set(fields) if fields_set is None else fields_set)
        _set_extra(model, None)
        _set_private(model, None)
        return model


# The slots pydantic keeps beside `__dict__`, set through their descriptors.
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


_MONEY_FIELDS = {"amount", "currency"}  # shared by the Money that arithmetic builds


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

    # Results of arithmetic on validated Money are not validated again (hot in reconciliation).
    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money.trusted({"amount": self.amount + other.amount, "currency": self.currency}, _MONEY_FIELDS)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money.trusted({"amount": self.amount - other.amount, "currency": self.currency}, _MONEY_FIELDS)

    def times(self, factor: Decimal) -> Money:
        return Money.trusted({"amount": self.amount * factor, "currency": self.currency}, _MONEY_FIELDS)

    def quantized(self) -> Money:
        """Rounded half-up to the currency's minor unit: only for final amounts."""
        quantum = minor_unit(self.currency)
        amount = self.amount.quantize(quantum, ROUND_HALF_UP)
        return Money.trusted({"amount": amount, "currency": self.currency}, _MONEY_FIELDS)

    def __str__(self) -> str:
        return f"{self.quantized().amount} {self.currency}"


class PricedLine(Protocol):
    """A line priced per unit, as POs and billing periods have them."""

    @property
    def unit_price(self) -> Money: ...

    @property
    def quantity(self) -> Decimal: ...

    @property
    def line_amount(self) -> Money | None:
        """The net amount the line states when it is not unit price times quantity."""
        ...


def lines_amount(currency: str, lines: Iterable[PricedLine]) -> Decimal:
    """The amount of `lines_total`, as a Decimal."""
    amount = Decimal(0)
    for line in lines:
        price = line.unit_price
        if price.currency != currency:
            raise ValueError(f"cannot combine {currency} with {price.currency}")
        stated = line.line_amount
        amount = amount + (stated.amount if stated is not None else price.amount * line.quantity)
    return amount


def lines_total(currency: str, lines: Sequence[PricedLine]) -> Money:
    """The sum of unit price times quantity, unrounded; one Money built, not one per line.

    A line stating its own net amount (`line_amount`) counts with that amount.
    """
    amount = lines_amount(currency, lines)
    if lines:  # then `currency` is that of validated Money
        return Money.trusted({"amount": amount, "currency": currency}, _MONEY_FIELDS)
    return Money(amount=amount, currency=currency)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
