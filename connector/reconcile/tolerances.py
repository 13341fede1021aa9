"""Tolerances: how far a billed price, quantity or total may differ from the PO, per currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

HUNDRED = Decimal(100)


class Tolerance(BaseModel):
    """An allowed variance, Oracle style: None = unlimited, 0 = none allowed.

    A variance passes only when it is within every limit that is not None: `percent` of the
    expected value and `absolute` in the value's own unit. TOML has no null, so a config file
    writes "unlimited" for None. `direction="over"` lets a value below the expected one pass
    (e.g. a price billed under the PO price).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Decimal | None = Field(default=Decimal(0), ge=0)
    absolute: Decimal | None = Field(default=Decimal(0), ge=0)
    direction: Literal["both", "over"] = "both"

    @field_validator("percent", "absolute", mode="before")
    @classmethod
    def _unlimited(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"unlimited", "none"}:
            return None
        return value

    def allows(self, difference: Decimal, expected: Decimal) -> bool:
        """True when `difference` (actual minus expected) is within the tolerance."""
        variance = max(difference, Decimal(0)) if self.direction == "over" else abs(difference)
        if variance == 0:
            return True
        if self.absolute is not None and variance > self.absolute:
            return False
        return self.percent is None or variance * HUNDRED <= abs(expected) * self.percent


class CurrencyTolerances(BaseModel):
    """Price and total tolerances for one currency, replacing the general ones where set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Tolerance | None = None
    total: Tolerance | None = None


class ReconcileSettings(BaseModel):
    """Tolerances and renewal-warning thresholds of a reconciliation run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Tolerance = Tolerance()
    quantity: Tolerance = Tolerance()
    total: Tolerance = Tolerance()
    per_currency: dict[str, CurrencyTolerances] = Field(default_factory=dict)
    renewal_warning_days: int = Field(default=30, ge=0)
    renewal_warning_percent: Decimal = Field(default=Decimal(85), ge=0)
    as_of: date | None = None

    def price_for(self, currency: str) -> Tolerance:
        """The price tolerance for `currency`."""
        override = self.per_currency.get(currency)
        return override.price if override and override.price else self.price

    def total_for(self, currency: str) -> Tolerance:
        """The total (balance) tolerance for `currency`."""
        override = self.per_currency.get(currency)
        return override.total if override and override.total else self.total
