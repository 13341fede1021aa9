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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import ValidationError

from connector.currency import is_known_currency, minor_unit_exponent
from connector.model import BillingLine, BillingPeriod, Money

# Stripe's currency page: zero-decimal and three-decimal currencies as its API writes them.
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# ISK has no minor unit in ISO 4217, but Stripe's API still writes it with two decimals.
STRIPE_TWO_DECIMAL = frozenset({"ISK"})

PoNumberSource = Literal["custom_field", "metadata"]
SkuSource = Literal["lookup_key", "product", "price"]


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


def map_line(
    line: Mapping[str, Any],
    currency: str,
    options: MappingOptions,
    prices: Mapping[str, Mapping[str, Any]],
) -> tuple[date, date, BillingLine] | None:
    """One line item -> (first day, last day, BillingLine); None for a line that bills nothing."""
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
    billing_line = BillingLine(
        sku=sku,
        description=_text(line.get("description")),
        quantity=quantity,
        unit_price=Money(amount=from_minor_units(unit, currency), currency=currency),
    )
    return first, last, billing_line


def map_invoice(
    invoice: Mapping[str, Any],
    *,
    source: str,
    options: MappingOptions,
    lines: Sequence[Mapping[str, Any]] | None = None,
    prices: Mapping[str, Mapping[str, Any]] | None = None,
    tenant: str = "default",
    status: str | None = None,
) -> list[BillingPeriod]:
    """Map one invoice (or invoice preview) to its billing periods.

    `lines` are all of the invoice's line items (default: the ones embedded in it); `prices`
    holds price objects by id for `sku_source = "lookup_key"`; `status` overrides the invoice's
    own (a preview is "upcoming"). Raises StripeMappingError naming the field and line.
    """
    invoice_id = _text(invoice.get("id"))
    currency = invoice_currency(invoice)
    reference, name = customer_ref(invoice, options)
    number = po_number(invoice, options)
    moment = invoice.get("effective_at") or invoice.get("created")
    invoice_date = utc_date(_timestamp(moment, "created", ""))
    if lines is None:
        lines = _object(invoice.get("lines"), "lines").get("data") or []
    if not isinstance(lines, Sequence) or isinstance(lines, (str, bytes)):
        raise StripeMappingError("lines.data", lines, "must be a list of line items")
    groups: dict[tuple[str, date], list[tuple[date, BillingLine]]] = {}
    for raw in lines:
        line = _object(raw, "lines.data[]")
        try:
            mapped = map_line(line, currency, options, prices or {})
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
