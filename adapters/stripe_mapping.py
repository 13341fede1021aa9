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
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from adapters.stripe_fields import (
    MappingOptions,
    StripeMappingError,
    decimal_field,
    from_minor_units,
    id_of,
    object_field,
    text_of,
    timestamp_field,
    utc_date,
)
from adapters.stripe_tax import TaxRates, customer_tax_exempt, line_tax, minor_amount
from connector.currency import is_known_currency
from connector.model import BillingLine, BillingPeriod, Money


def service_dates(start: int, end: int) -> tuple[date, date]:
    """First and last service day of a Stripe line period (Unix seconds, end = next start)."""
    first = utc_date(start)
    last = utc_date(end + 1) - timedelta(days=1)
    return first, max(first, last)


def invoice_currency(invoice: Mapping[str, Any]) -> str:
    """The invoice's currency as an upper-case ISO code; refused when unknown."""
    raw = invoice.get("currency")
    code = text_of(raw).upper()
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
            entry = object_field(item, "custom_fields[]")
            if text_of(entry.get("name")).casefold() == wanted:
                return text_of(entry.get("value")) or None
        return None
    key = options.po_metadata_key
    details = object_field(
        object_field(invoice.get("parent"), "parent").get("subscription_details"), "parent"
    )
    for where, metadata in (
        ("metadata", invoice.get("metadata")),
        ("parent.subscription_details.metadata", details.get("metadata")),
    ):
        value = text_of(object_field(metadata, where).get(key))
        if value:
            return value
    return None


def customer_ref(invoice: Mapping[str, Any], options: MappingOptions) -> tuple[str, str]:
    """(customer reference, customer name) per the configured source."""
    customer = invoice.get("customer")
    customer_id = id_of(customer)
    if not customer_id:
        raise StripeMappingError("customer", customer, "the invoice has no customer")
    name = text_of(invoice.get("customer_name"))
    if isinstance(customer, Mapping):
        name = name or text_of(customer.get("name"))
    key = options.customer_metadata_key
    if key is None:
        return customer_id, name
    if not isinstance(customer, Mapping):
        raise StripeMappingError("customer", customer, "is not expanded; customer metadata cannot be read")
    value = text_of(object_field(customer.get("metadata"), "customer.metadata").get(key))
    if not value:
        raise StripeMappingError(
            f"customer.metadata.{key}",
            "",
            f"customer {customer_id} has no metadata {key!r} to use as its reference",
        )
    return value, name


def _subscription_of(line: Mapping[str, Any], invoice: Mapping[str, Any], fallback: str) -> str:
    parent = object_field(line.get("parent"), "parent")
    for kind in ("subscription_item_details", "invoice_item_details"):
        found = id_of(object_field(parent.get(kind), f"parent.{kind}").get("subscription"))
        if found:
            return found
    details = object_field(
        object_field(invoice.get("parent"), "parent").get("subscription_details"), "parent"
    )
    return id_of(details.get("subscription")) or fallback


def _quantity(line: Mapping[str, Any], line_id: str) -> Decimal:
    if isinstance(line.get("quantity_decimal"), str):
        return decimal_field(line["quantity_decimal"], "quantity_decimal", line_id)
    if line.get("quantity") is None:
        return Decimal(1)  # an amount-only invoice item bills one unit
    return decimal_field(line.get("quantity"), "quantity", line_id)


def _sku(
    pricing: Mapping[str, Any], options: MappingOptions, prices: Mapping[str, Mapping[str, Any]], line_id: str
) -> str:
    details = object_field(pricing.get("price_details"), "pricing.price_details")
    if pricing.get("type") != "price_details" or not details:
        raise StripeMappingError(
            "pricing.type", pricing.get("type"), "the line has no price, so it has no SKU", line_id=line_id
        )
    price = details.get("price")
    price_id = id_of(price)
    if options.sku_source == "product":
        sku = id_of(details.get("product"))
        field = "pricing.price_details.product"
    elif options.sku_source == "price":
        sku, field = price_id, "pricing.price_details.price"
    else:
        field = "pricing.price_details.price.lookup_key"
        price_object = price if isinstance(price, Mapping) else prices.get(price_id)
        if price_object is None:
            raise StripeMappingError(field, price_id, "the price was not found", line_id=line_id)
        sku = text_of(price_object.get("lookup_key"))
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
        unit = decimal_field(raw, "pricing.unit_amount_decimal", line_id)
        if abs(unit * quantity - amount) < 1:  # Stripe rounds fractional minor units
            return unit, quantity
    per_unit = amount / quantity
    if per_unit * quantity == amount:
        return per_unit, quantity
    return amount, Decimal(1)


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
    line_id = text_of(line.get("id"))
    line_currency = text_of(line.get("currency")).upper()
    if line_currency and line_currency != currency:
        raise StripeMappingError(
            "currency", line.get("currency"), f"differs from the invoice's {currency}", line_id=line_id
        )
    period = object_field(line.get("period"), "period")
    start = timestamp_field(period.get("start"), "period.start", line_id)
    end = timestamp_field(period.get("end"), "period.end", line_id)
    if end < start:
        raise StripeMappingError("period.end", end, f"is before period.start {start}", line_id=line_id)
    amount = decimal_field(line.get("amount"), "amount", line_id)
    quantity = _quantity(line, line_id)
    if quantity == 0 and amount == 0:
        return None  # e.g. metered usage with no usage
    if quantity <= 0:
        raise StripeMappingError("quantity", quantity, "must be greater than zero", line_id=line_id)
    pricing = object_field(line.get("pricing"), "pricing")
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
        description=text_of(line.get("description")),
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
        stated += minor_amount(
            object_field(raw, "total_taxes[]").get("amount"), f"total_taxes[{index}].amount", ""
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
    invoice_id = text_of(invoice.get("id"))
    currency = invoice_currency(invoice)
    reference, name = customer_ref(invoice, options)
    number = po_number(invoice, options)
    moment = invoice.get("effective_at") or invoice.get("created")
    invoice_date = utc_date(timestamp_field(moment, "created", ""))
    exempt = customer_tax_exempt(invoice)
    if lines is None:
        lines = object_field(invoice.get("lines"), "lines").get("data") or []
    if not isinstance(lines, Sequence) or isinstance(lines, (str, bytes)):
        raise StripeMappingError("lines.data", lines, "must be a list of line items")
    groups: dict[tuple[str, date], list[tuple[date, BillingLine]]] = {}
    for raw in lines:
        line = object_field(raw, "lines.data[]")
        try:
            mapped = map_line(line, currency, options, prices or {}, tax_rates, exempt)
            subscription = _subscription_of(line, invoice, invoice_id)
        except StripeMappingError as exc:
            exc.line_id = exc.line_id or text_of(line.get("id"))
            raise
        if mapped is None:
            continue
        first, last, billing_line = mapped
        if not subscription:
            raise StripeMappingError(
                "parent",
                None,
                "a line without subscription on an invoice without id",
                line_id=text_of(line.get("id")),
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
                    status=status or text_of(invoice.get("status")) or "draft",
                )
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "invoice"
            raise StripeMappingError(field, error.get("input"), error["msg"]) from None
    return periods
