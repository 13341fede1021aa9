"""Reading Stripe JSON: its currency exponents and minor units, typed fields with errors that
name the line and field, and the options of the mapping (PO number, SKU, tax reasons)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from connector.currency import minor_unit_exponent
from connector.values import finite_decimal

# Stripe's currency page: zero-decimal and three-decimal currencies as its API writes them.
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())


STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


# ISK has no minor unit in ISO 4217, but Stripe's API still writes it with two decimals.
STRIPE_TWO_DECIMAL = frozenset({"ISK"})


PoNumberSource = Literal["custom_field", "metadata"]


SkuSource = Literal["lookup_key", "product", "price"]


# What a taxability reason means: S (at the TaxRate's percentage), Z, E, AE or O.
TaxTreatment = Literal["S", "Z", "E", "AE", "O"]


TAX_TREATMENTS: tuple[str, ...] = ("S", "Z", "E", "AE", "O")


# Stripe's taxability reasons (basil) -> treatment. not_available, not_supported and
# portion_product_exempt say Stripe could not or did not tax the whole line: left unmapped, a
# line giving one is refused until `tax_reasons` says what it means for this account.
DEFAULT_TAX_REASONS: Mapping[str, TaxTreatment] = MappingProxyType(
    {
        "standard_rated": "S",
        "reduced_rated": "S",
        "portion_standard_rated": "S",
        "portion_reduced_rated": "S",
        "proportionally_rated": "S",
        "taxable_basis_reduced": "S",
        "zero_rated": "Z",
        "reverse_charge": "AE",
        "product_exempt": "E",
        "product_exempt_holiday": "E",
        "customer_exempt": "E",
        "not_subject_to_tax": "O",
        "not_collecting": "O",
    }
)


STRIPE_TAXABILITY_REASONS = frozenset(
    {
        *DEFAULT_TAX_REASONS,
        "not_available",
        "not_supported",
        "portion_product_exempt",
    }
)


def stripe_exponent(currency: str) -> int:
    """Decimal places of Stripe's integer amounts for `currency` (upper-case ISO code)."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in STRIPE_THREE_DECIMAL:
        return 3
    if currency in STRIPE_TWO_DECIMAL:
        return 2
    return minor_unit_exponent(currency)


def from_minor_units(value: Decimal | int, currency: str) -> Decimal:
    """A Stripe amount in minor units as an exact amount of the currency (1999 USD -> 19.99)."""
    return Decimal(value).scaleb(-stripe_exponent(currency))


class StripeMappingError(ValueError):
    """A present but unusable value; names the field path, the value and the line id if any."""

    def __init__(self, field: str, value: Any, reason: str, *, line_id: str = "") -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = "" if value is None else str(value)
        self.reason = reason
        self.line_id = line_id


@dataclass(frozen=True)
class MappingOptions:
    """Where the PO number, the customer reference and the SKU come from."""

    po_number_source: PoNumberSource = "custom_field"
    po_custom_field: str = "PO Number"
    po_metadata_key: str = "po_number"
    customer_metadata_key: str | None = None  # None: the Stripe customer id is the reference
    sku_source: SkuSource = "product"
    tax_reasons: Mapping[str, TaxTreatment] = field(default_factory=lambda: DEFAULT_TAX_REASONS)


def utc_date(timestamp: int) -> date:
    """The UTC calendar date of a Unix timestamp."""
    return datetime.fromtimestamp(timestamp, UTC).date()


def object_field(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StripeMappingError(field, value, "must be an object")
    return value


def text_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# 9999-12-31T23:59:59Z minus a day: the last moment whose service day and the day after are dates.
_LATEST_TIMESTAMP = 253402214399


def timestamp_field(value: Any, field: str, line_id: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StripeMappingError(field, value, "must be a Unix timestamp in seconds", line_id=line_id)
    if value > _LATEST_TIMESTAMP:
        # Python refuses to print an int of more than 4300 digits: say how long it is instead.
        shown = (
            str(value)
            if value < 10**40
            else f"an integer of {len(str(value)) if value < 10**4000 else 'over 4000'} digits"
        )
        raise StripeMappingError(field, shown, "is past the last representable date", line_id=line_id)
    return value


def id_of(value: Any) -> str:
    """The id of a field that may be a string id or an expanded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return text_of(value.get("id"))
    return ""


def decimal_field(value: Any, field: str, line_id: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise StripeMappingError(field, value, "must be an integer or a decimal string", line_id=line_id)
    try:
        return finite_decimal(value)
    except ValueError as exc:
        raise StripeMappingError(field, value, str(exc), line_id=line_id) from None
