"""Pure mapping of Stripe invoice JSON (API version 2025-03-31.basil and later) to BillingPeriods.

Rules (reference: billing.md, Stripe section):
- Reconcile on line service periods (`lines.data[].period`), never on `invoice.period_start/end`,
  which look back one period on subscription invoices. One BillingPeriod per (subscription,
  UTC date of the line period start); lines of other subscriptions or periods on the same
  invoice (prorations) form their own periods. Lines without a subscription (one-off invoice
  items) are grouped under the invoice id.
- Stripe's `period.end` is the instant the next period starts, so the service period ends the day
  before it (an end at 23:59:59 is kept as that day).
- Amounts arrive in integer minor units; `pricing.unit_amount_decimal` is a string that may carry
  fractional minor units. They are scaled by Stripe's own exponent table (which differs from
  ISO 4217 for MGA and ISK) into exact Decimals. When the unit price does not explain the billed
  `amount` (prorations, tiers), the billed amount wins.
- The basil fields are read: `parent.subscription_item_details` / `parent.invoice_item_details`
  for the subscription, `pricing.price_details` for price and product, `parent.subscription_details`
  on the invoice.

Tax (reference: tax.md section 7) is the billing system's, carried as `LineTax` with origin
"billing": each `taxes[]` entry of a line names a TaxRate (fetched by the source, or expanded)
and a `taxability_reason`, which `MappingOptions.tax_reasons` turns into an EN 16931 category
(default `DEFAULT_TAX_REASONS`: standard/reduced rated -> S at the TaxRate's percentage,
zero_rated -> Z, reverse_charge -> AE with VATEX-EU-AE, product/customer exempt -> E,
not_subject_to_tax and not_collecting -> O). A TaxRate of `tax_type` sales_tax makes the line
US-style sales tax in jurisdiction "<country>-<state>" (several entries of one state, e.g. state
and city, add up). `customer_tax_exempt` = reverse makes an untaxed line AE, = exempt makes it
E. An inclusive `tax_behavior` makes the line's net its amount less its tax. A line without
`taxes` carries no billing tax (the SKU override or customer master may give it). A bad value
(negative or oversized tax, an unmapped reason, a rate out of range, an unreadable TaxRate) is a
StripeMappingError naming the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from connector.currency import is_known_currency, minor_unit_exponent
from connector.model import BillingLine, BillingPeriod, Money
from connector.tax import LineTax, TaxCategory, TaxScheme

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
_REASON_TEXT = {
    "product_exempt": "Exempt product",
    "product_exempt_holiday": "Exempt product (tax holiday)",
    "customer_exempt": "Exempt customer",
    "not_subject_to_tax": "Not subject to tax",
    "not_collecting": "Not collecting tax (seller not registered)",
    "not_available": "Tax not available",
    "not_supported": "Tax not supported",
    "portion_product_exempt": "Partly exempt product",
}
SALES_TAX_TYPES = frozenset({"sales_tax"})


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


def service_dates(start: int, end: int) -> tuple[date, date]:
    """First and last service day of a Stripe line period (Unix seconds, end = next start)."""
    first = utc_date(start)
    last = utc_date(end + 1) - timedelta(days=1)
    return first, max(first, last)


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StripeMappingError(field, value, "must be an object")
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# 9999-12-31T23:59:59Z minus a day: the last moment whose service day and the day after are dates.
_LATEST_TIMESTAMP = 253402214399


def _timestamp(value: Any, field: str, line_id: str = "") -> int:
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


def _id_of(value: Any) -> str:
    """The id of a field that may be a string id or an expanded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return ""


def invoice_currency(invoice: Mapping[str, Any]) -> str:
    """The invoice's currency as an upper-case ISO code; refused when unknown."""
    raw = invoice.get("currency")
    code = _text(raw).upper()
    if not is_known_currency(code):
        raise StripeMappingError("currency", raw, "is not an ISO 4217 currency code")
    return code


def po_number(invoice: Mapping[str, Any], options: MappingOptions) -> str | None:
    """The PO number from the named custom field, or from invoice then subscription metadata."""
    if options.po_number_source == "custom_field":
        wanted = options.po_custom_field.strip().casefold()
        fields = invoice.get("custom_fields") or []
        if not isinstance(fields, list):
            raise StripeMappingError("custom_fields", fields, "must be a list")
        for item in fields:
            entry = _object(item, "custom_fields[]")
            if _text(entry.get("name")).casefold() == wanted:
                return _text(entry.get("value")) or None
        return None
    key = options.po_metadata_key
    details = _object(_object(invoice.get("parent"), "parent").get("subscription_details"), "parent")
    for where, metadata in (
        ("metadata", invoice.get("metadata")),
        ("parent.subscription_details.metadata", details.get("metadata")),
    ):
        value = _text(_object(metadata, where).get(key))
        if value:
            return value
    return None


def customer_ref(invoice: Mapping[str, Any], options: MappingOptions) -> tuple[str, str]:
    """(customer reference, customer name) per the configured source."""
    customer = invoice.get("customer")
    customer_id = _id_of(customer)
    if not customer_id:
        raise StripeMappingError("customer", customer, "the invoice has no customer")
    name = _text(invoice.get("customer_name"))
    if isinstance(customer, Mapping):
        name = name or _text(customer.get("name"))
    key = options.customer_metadata_key
    if key is None:
        return customer_id, name
    if not isinstance(customer, Mapping):
        raise StripeMappingError("customer", customer, "is not expanded; customer metadata cannot be read")
    value = _text(_object(customer.get("metadata"), "customer.metadata").get(key))
    if not value:
        raise StripeMappingError(
            f"customer.metadata.{key}",
            "",
            f"customer {customer_id} has no metadata {key!r} to use as its reference",
        )
    return value, name


def _subscription_of(line: Mapping[str, Any], invoice: Mapping[str, Any], fallback: str) -> str:
    parent = _object(line.get("parent"), "parent")
    for kind in ("subscription_item_details", "invoice_item_details"):
        found = _id_of(_object(parent.get(kind), f"parent.{kind}").get("subscription"))
        if found:
            return found
    details = _object(_object(invoice.get("parent"), "parent").get("subscription_details"), "parent")
    return _id_of(details.get("subscription")) or fallback


def _decimal(value: Any, field: str, line_id: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise StripeMappingError(field, value, "must be an integer or a decimal string", line_id=line_id)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise StripeMappingError(field, value, "is not a decimal number", line_id=line_id) from None
    if not number.is_finite():
        raise StripeMappingError(field, value, "is not a finite number", line_id=line_id)
    return number


def _quantity(line: Mapping[str, Any], line_id: str) -> Decimal:
    if isinstance(line.get("quantity_decimal"), str):
        return _decimal(line["quantity_decimal"], "quantity_decimal", line_id)
    if line.get("quantity") is None:
        return Decimal(1)  # an amount-only invoice item bills one unit
    return _decimal(line.get("quantity"), "quantity", line_id)


def _sku(
    pricing: Mapping[str, Any], options: MappingOptions, prices: Mapping[str, Mapping[str, Any]], line_id: str
) -> str:
    details = _object(pricing.get("price_details"), "pricing.price_details")
    if pricing.get("type") != "price_details" or not details:
        raise StripeMappingError(
            "pricing.type", pricing.get("type"), "the line has no price, so it has no SKU", line_id=line_id
        )
    price = details.get("price")
    price_id = _id_of(price)
    if options.sku_source == "product":
        sku = _id_of(details.get("product"))
        field = "pricing.price_details.product"
    elif options.sku_source == "price":
        sku, field = price_id, "pricing.price_details.price"
    else:
        field = "pricing.price_details.price.lookup_key"
        price_object = price if isinstance(price, Mapping) else prices.get(price_id)
        if price_object is None:
            raise StripeMappingError(field, price_id, "the price was not found", line_id=line_id)
        sku = _text(price_object.get("lookup_key"))
        if not sku:
            raise StripeMappingError(
                field,
                price_id,
                "the price has no lookup_key (set one, or use sku_source = 'product')",
                line_id=line_id,
            )
    if not sku:
        raise StripeMappingError(field, details.get(field.rsplit(".", 1)[1]), "is missing", line_id=line_id)
    return sku


def _unit_and_quantity(
    pricing: Mapping[str, Any], amount: Decimal, quantity: Decimal, line_id: str
) -> tuple[Decimal, Decimal]:
    """Unit price in minor units and quantity: Stripe's unit amount when it explains `amount`.

    A proration or a tiered price bills an amount the unit amount does not explain; then the
    billed amount is split per unit when that is exact, else billed as one unit.
    """
    raw = pricing.get("unit_amount_decimal")
    if raw is not None:
        unit = _decimal(raw, "pricing.unit_amount_decimal", line_id)
        if abs(unit * quantity - amount) < 1:  # Stripe rounds fractional minor units
            return unit, quantity
    per_unit = amount / quantity
    if per_unit * quantity == amount:
        return per_unit, quantity
    return amount, Decimal(1)


CUSTOMER_TAX_EXEMPT = ("none", "exempt", "reverse")
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class TaxRates:
    """The TaxRate objects the lines name, by id, and why those that could not be read were not."""

    found: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)


def tax_rate_ids(lines: Any) -> list[str]:
    """The distinct TaxRate ids (not expanded objects) the lines' `taxes[]` name, in order."""
    found: dict[str, None] = {}
    if not isinstance(lines, Sequence) or isinstance(lines, (str, bytes)):
        return []
    for line in lines:
        taxes = line.get("taxes") if isinstance(line, Mapping) else None
        for entry in taxes if isinstance(taxes, list) else []:
            details = entry.get("tax_rate_details") if isinstance(entry, Mapping) else None
            rate = details.get("tax_rate") if isinstance(details, Mapping) else None
            if isinstance(rate, str) and rate.strip():
                found.setdefault(rate.strip(), None)
    return list(found)


def customer_tax_exempt(invoice: Mapping[str, Any]) -> str:
    """The customer's tax status snapshotted on the invoice: none, exempt or reverse."""
    raw = invoice.get("customer_tax_exempt")
    if raw is None:
        return "none"
    if raw not in CUSTOMER_TAX_EXEMPT:
        raise StripeMappingError(
            "customer_tax_exempt", raw, f"must be one of {', '.join(CUSTOMER_TAX_EXEMPT)}"
        )
    return str(raw)


def _minor_amount(value: Any, field: str, line_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StripeMappingError(field, value, "must be an integer amount in minor units", line_id=line_id)
    return value


def _percentage(value: Any, field: str, line_id: str) -> Decimal:
    """A TaxRate percentage: JSON writes it as a number, read as the decimal it was written as."""
    if isinstance(value, float):
        value = repr(value)  # the shortest repr is the number as written, e.g. 8.875
    elif isinstance(value, Decimal):
        value = str(value)
    if value is None:
        raise StripeMappingError(field, value, "is missing", line_id=line_id)
    rate = _decimal(value, field, line_id)
    if not Decimal(0) <= rate < _HUNDRED:
        raise StripeMappingError(field, value, "is out of range (0 to under 100 percent)", line_id=line_id)
    return rate


@dataclass(frozen=True)
class _Entry:
    """One `taxes[]` entry, read: its treatment, scheme, jurisdiction, percentage and tax."""

    field: str
    treatment: TaxTreatment
    reason: str
    scheme: TaxScheme
    jurisdiction: str
    rate: Decimal
    amount: int
    inclusive: bool


def _tax_rate_object(ref: Any, field: str, rates: TaxRates, line_id: str) -> Mapping[str, Any]:
    if isinstance(ref, Mapping):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise StripeMappingError(field, ref, "must be a TaxRate id", line_id=line_id)
    ident = ref.strip()
    if ident in rates.unreadable:
        raise StripeMappingError(
            field, ident, f"the TaxRate cannot be read: {rates.unreadable[ident]}", line_id=line_id
        )
    found = rates.found.get(ident)
    if not isinstance(found, Mapping):
        raise StripeMappingError(field, ident, "the TaxRate was not found", line_id=line_id)
    return found


def _entry(
    raw: Any,
    index: int,
    line_amount: Decimal,
    options: MappingOptions,
    rates: TaxRates,
    line_id: str,
    exempt: str,
) -> _Entry:
    where = f"taxes[{index}]"
    entry = _object(raw, where)
    amount = _minor_amount(entry.get("amount"), f"{where}.amount", line_id)
    if line_amount >= 0 and amount < 0:
        raise StripeMappingError(f"{where}.amount", amount, "must not be negative", line_id=line_id)
    if line_amount < 0 and amount > 0:
        raise StripeMappingError(
            f"{where}.amount",
            amount,
            f"a credit line ({line_amount}) carries no positive tax",
            line_id=line_id,
        )
    if abs(amount) > abs(line_amount):
        raise StripeMappingError(
            f"{where}.amount", amount, f"is more than the line's amount {line_amount}", line_id=line_id
        )
    if entry.get("taxable_amount") is not None:
        _minor_amount(entry.get("taxable_amount"), f"{where}.taxable_amount", line_id)
    behavior = entry.get("tax_behavior")
    if behavior not in ("exclusive", "inclusive"):
        raise StripeMappingError(
            f"{where}.tax_behavior", behavior, "must be exclusive or inclusive", line_id=line_id
        )
    if entry.get("type", "tax_rate_details") != "tax_rate_details":
        raise StripeMappingError(
            f"{where}.type", entry.get("type"), "must be tax_rate_details", line_id=line_id
        )
    details = _object(entry.get("tax_rate_details"), f"{where}.tax_rate_details")
    rate_field = f"{where}.tax_rate_details.tax_rate"
    tax_rate = _tax_rate_object(details.get("tax_rate"), rate_field, rates, line_id)
    rate = _percentage(tax_rate.get("percentage"), f"{rate_field}.percentage", line_id)
    reason_raw = entry.get("taxability_reason")
    treatment: TaxTreatment
    if reason_raw is None:
        # a manually set TaxRate gives no reason: only a positive rate says what it is
        if rate == 0 and exempt == "none":
            raise StripeMappingError(
                f"{where}.taxability_reason",
                None,
                "a 0% TaxRate without a taxability reason: zero-rated, exempt or outside the scope of "
                "tax cannot be told apart",
                line_id=line_id,
            )
        reason, treatment = "", "S"
    if reason_raw is None and rate == 0 and exempt != "none":
        reason, treatment = "customer_exempt", "AE" if exempt == "reverse" else "E"
    else:
        if not isinstance(reason_raw, str) or reason_raw not in options.tax_reasons:
            stripes = isinstance(reason_raw, str) and reason_raw in STRIPE_TAXABILITY_REASONS
            known = "a Stripe taxability reason" if stripes else "known"
            raise StripeMappingError(
                f"{where}.taxability_reason",
                reason_raw,
                f"is not mapped to a tax category (it is {'not ' if known == 'known' else ''}{known}; "
                "set tax_reasons to map it to S, Z, E, AE or O)",
                line_id=line_id,
            )
        reason, treatment = reason_raw, options.tax_reasons[reason_raw]
    tax_type = _text(tax_rate.get("tax_type")).lower()
    scheme = TaxScheme.SALES_TAX if tax_type in SALES_TAX_TYPES else TaxScheme.VAT
    jurisdiction = ""
    if scheme is TaxScheme.SALES_TAX:
        country = _text(tax_rate.get("country")).upper()
        state = _text(tax_rate.get("state")).upper()
        if treatment == "S" and not (country and state):
            raise StripeMappingError(
                f"{rate_field}.state",
                tax_rate.get("state"),
                "sales tax needs the TaxRate's country and state for its jurisdiction",
                line_id=line_id,
            )
        jurisdiction = f"{country}-{state}" if country and state else ""
    return _Entry(where, treatment, reason, scheme, jurisdiction, rate, amount, behavior == "inclusive")


def line_tax(
    line: Mapping[str, Any],
    line_amount: Decimal,
    currency: str,
    options: MappingOptions,
    rates: TaxRates,
    exempt: str = "none",
) -> tuple[LineTax | None, Decimal]:
    """The line's tax as the billing system states it, and its net amount in minor units.

    None when the line has no `taxes` and the customer is neither exempt nor reverse charge.
    Raises StripeMappingError naming the entry and field of a bad value.
    """
    line_id = _text(line.get("id"))
    raw = line.get("taxes")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise StripeMappingError("taxes", raw, "must be a list", line_id=line_id)
    entries = [
        _entry(item, index, line_amount, options, rates, line_id, exempt) for index, item in enumerate(raw)
    ]
    stated = sum(entry.amount for entry in entries)
    if abs(stated) > abs(line_amount):
        raise StripeMappingError(
            "taxes", stated, f"the line's taxes are more than its amount {line_amount}", line_id=line_id
        )
    if len({entry.inclusive for entry in entries}) > 1:
        raise StripeMappingError(
            "taxes", "exclusive, inclusive", "entries mix tax-exclusive and tax-inclusive", line_id=line_id
        )
    inclusive = bool(entries) and entries[0].inclusive
    net = line_amount - stated if inclusive else line_amount
    if exempt == "reverse":
        if stated:
            raise StripeMappingError(
                "customer_tax_exempt",
                exempt,
                f"the customer is reverse charge but the line states {stated} tax",
                line_id=line_id,
            )
        reverse = _built(
            line_id,
            "customer_tax_exempt",
            category=TaxCategory.REVERSE_CHARGE,
            rate=Decimal(0),
            exemption_reason_code="VATEX-EU-AE",
            exemption_reason="Reverse charge",
            amount=Decimal(0),
        )
        return reverse, net
    if not entries:
        if exempt == "exempt":
            tax = _built(
                line_id,
                "customer_tax_exempt",
                category=TaxCategory.EXEMPT,
                rate=Decimal(0),
                exemption_reason=_REASON_TEXT["customer_exempt"],
                amount=Decimal(0),
            )
            return tax, net
        return None, net
    return _combined(entries, stated, currency, line_id), net


def _combined(entries: list[_Entry], stated: int, currency: str, line_id: str) -> LineTax:
    """One LineTax from a line's entries: the taxed ones add up (sales tax of one state)."""
    amount = from_minor_units(stated, currency)
    taxed = [entry for entry in entries if entry.treatment == "S"]
    if taxed:
        for entry in entries:
            if entry.treatment != "S" and entry.amount:
                raise StripeMappingError(
                    f"{entry.field}.amount",
                    entry.amount,
                    f"taxability {entry.reason or 'none'} ({entry.treatment}) carries no tax",
                    line_id=line_id,
                )
        first = taxed[0]
        for entry in taxed[1:]:
            if first.scheme is TaxScheme.VAT or entry.scheme is TaxScheme.VAT:
                raise StripeMappingError(
                    f"{entry.field}.tax_rate_details.tax_rate",
                    f"{entry.rate}%",
                    f"a second VAT rate on one line ({first.field} is {first.rate}%)",
                    line_id=line_id,
                )
            if entry.jurisdiction != first.jurisdiction:
                raise StripeMappingError(
                    f"{entry.field}.tax_rate_details.tax_rate",
                    entry.jurisdiction,
                    f"sales tax of two jurisdictions on one line ({first.jurisdiction})",
                    line_id=line_id,
                )
        rate = sum((entry.rate for entry in taxed), Decimal(0))
        return _built(
            line_id,
            f"{first.field}.tax_rate_details.tax_rate.percentage",
            scheme=first.scheme,
            category=TaxCategory.STANDARD,
            rate=rate,
            jurisdiction=first.jurisdiction,
            amount=amount,
        )
    treatments = {entry.treatment for entry in entries}
    if len(treatments) > 1:
        raise StripeMappingError(
            "taxes", ", ".join(sorted(treatments)), "entries give different tax treatments", line_id=line_id
        )
    first = entries[0]
    if stated:
        raise StripeMappingError(
            f"{first.field}.amount",
            stated,
            f"taxability {first.reason} ({first.treatment}) carries no tax",
            line_id=line_id,
        )
    category = TaxCategory(first.treatment)
    code = "VATEX-EU-AE" if category is TaxCategory.REVERSE_CHARGE else ""
    text = "Reverse charge" if code else _REASON_TEXT.get(first.reason, first.reason.replace("_", " "))
    return _built(
        line_id,
        f"{first.field}.taxability_reason",
        scheme=first.scheme,
        category=category,
        rate=None if category is TaxCategory.OUTSIDE_SCOPE else Decimal(0),
        jurisdiction=first.jurisdiction,
        exemption_reason_code=code,
        exemption_reason="" if category is TaxCategory.ZERO_RATED else text,
        amount=amount,
    )


def _built(line_id: str, field: str, **values: Any) -> LineTax:
    try:
        return LineTax(origin="billing", **values)
    except ValidationError as exc:
        detail = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        shown = values.get("rate")
        raise StripeMappingError(field, shown, detail, line_id=line_id) from None


def _net_unit(net: Decimal, quantity: Decimal) -> Decimal:
    """Net unit price (minor units) of a tax-inclusive line: exact, or to a millionth of a minor unit."""
    per_unit = net / quantity
    if per_unit * quantity == net:
        return per_unit
    return per_unit.quantize(Decimal("0.000001"))


def map_line(
    line: Mapping[str, Any],
    currency: str,
    options: MappingOptions,
    prices: Mapping[str, Mapping[str, Any]],
    rates: TaxRates | None = None,
    exempt: str = "none",
) -> tuple[date, date, BillingLine] | None:
    """One line item -> (first day, last day, BillingLine); None for a line that bills nothing.

    The BillingLine carries the line's billing tax (see `line_tax`); a tax-inclusive line's
    unit price and `line_amount` are net of its tax.
    """
    line_id = _text(line.get("id"))
    line_currency = _text(line.get("currency")).upper()
    if line_currency and line_currency != currency:
        raise StripeMappingError(
            "currency", line.get("currency"), f"differs from the invoice's {currency}", line_id=line_id
        )
    period = _object(line.get("period"), "period")
    start = _timestamp(period.get("start"), "period.start", line_id)
    end = _timestamp(period.get("end"), "period.end", line_id)
    if end < start:
        raise StripeMappingError("period.end", end, f"is before period.start {start}", line_id=line_id)
    amount = _decimal(line.get("amount"), "amount", line_id)
    quantity = _quantity(line, line_id)
    if quantity == 0 and amount == 0:
        return None  # e.g. metered usage with no usage
    if quantity <= 0:
        raise StripeMappingError("quantity", quantity, "must be greater than zero", line_id=line_id)
    pricing = _object(line.get("pricing"), "pricing")
    unit, quantity = _unit_and_quantity(pricing, amount, quantity, line_id)
    sku = _sku(pricing, options, prices, line_id)
    first, last = service_dates(start, end)
    tax, net = line_tax(line, amount, currency, options, rates or TaxRates(), exempt)
    stated: Money | None = None
    if net != amount:  # tax-inclusive: the net is what is invoiced
        unit = _net_unit(net, quantity)
        stated = Money(amount=from_minor_units(net, currency), currency=currency)
    billing_line = BillingLine(
        sku=sku,
        description=_text(line.get("description")),
        quantity=quantity,
        unit_price=Money(amount=from_minor_units(unit, currency), currency=currency),
        tax=tax,
        line_amount=stated,
    )
    return first, last, billing_line


def _check_total_taxes(invoice: Mapping[str, Any], lines: Sequence[Any]) -> None:
    """The invoice's `total_taxes` must be the sum of its lines' taxes (when it states any)."""
    totals = invoice.get("total_taxes")
    if totals is None:
        return
    if not isinstance(totals, list):
        raise StripeMappingError("total_taxes", totals, "must be a list")
    stated = 0
    for index, raw in enumerate(totals):
        stated += _minor_amount(
            _object(raw, "total_taxes[]").get("amount"), f"total_taxes[{index}].amount", ""
        )
    on_lines = 0
    for line in lines:
        taxes = line.get("taxes") if isinstance(line, Mapping) else None
        for entry in taxes if isinstance(taxes, list) else []:
            amount = entry.get("amount") if isinstance(entry, Mapping) else None
            if isinstance(amount, int) and not isinstance(amount, bool):
                on_lines += amount
    if stated != on_lines:
        raise StripeMappingError(
            "total_taxes", stated, f"differs from the sum of the lines' taxes {on_lines}"
        )


def map_invoice(
    invoice: Mapping[str, Any],
    *,
    source: str,
    options: MappingOptions,
    lines: Sequence[Mapping[str, Any]] | None = None,
    prices: Mapping[str, Mapping[str, Any]] | None = None,
    tax_rates: TaxRates | None = None,
    tenant: str = "default",
    status: str | None = None,
) -> list[BillingPeriod]:
    """Map one invoice (or invoice preview) to its billing periods.

    `lines` are all of the invoice's line items (default: the ones embedded in it); `prices`
    holds price objects by id for `sku_source = "lookup_key"`; `tax_rates` the TaxRates the
    lines' taxes name by id; `status` overrides the invoice's own (a preview is "upcoming").
    Raises StripeMappingError naming the field and line.
    """
    invoice_id = _text(invoice.get("id"))
    currency = invoice_currency(invoice)
    reference, name = customer_ref(invoice, options)
    number = po_number(invoice, options)
    moment = invoice.get("effective_at") or invoice.get("created")
    invoice_date = utc_date(_timestamp(moment, "created", ""))
    exempt = customer_tax_exempt(invoice)
    if lines is None:
        lines = _object(invoice.get("lines"), "lines").get("data") or []
    if not isinstance(lines, Sequence) or isinstance(lines, (str, bytes)):
        raise StripeMappingError("lines.data", lines, "must be a list of line items")
    groups: dict[tuple[str, date], list[tuple[date, BillingLine]]] = {}
    for raw in lines:
        line = _object(raw, "lines.data[]")
        try:
            mapped = map_line(line, currency, options, prices or {}, tax_rates, exempt)
            subscription = _subscription_of(line, invoice, invoice_id)
        except StripeMappingError as exc:
            exc.line_id = exc.line_id or _text(line.get("id"))
            raise
        if mapped is None:
            continue
        first, last, billing_line = mapped
        if not subscription:
            raise StripeMappingError(
                "parent",
                None,
                "a line without subscription on an invoice without id",
                line_id=_text(line.get("id")),
            )
        groups.setdefault((subscription, first), []).append((last, billing_line))
    _check_total_taxes(invoice, lines)
    periods: list[BillingPeriod] = []
    for (subscription, first), members in groups.items():
        try:
            periods.append(
                BillingPeriod(
                    tenant=tenant,
                    billing_source=source,
                    subscription_id=subscription,
                    period_start=first,
                    period_end=max(last for last, _ in members),
                    customer_ref=reference,
                    customer_name=name,
                    po_number=number,
                    currency=currency,
                    lines=tuple(billing_line for _, billing_line in members),
                    invoice_date=invoice_date,
                    status=status or _text(invoice.get("status")) or "draft",
                )
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "invoice"
            raise StripeMappingError(field, error.get("input"), error["msg"]) from None
    return periods
