"""The tax of a Stripe invoice line as the billing system stated it: `taxes[]` with their TaxRates
and taxability reasons become one `LineTax` per line (see `stripe_mapping` for the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from adapters.stripe_fields import (
    STRIPE_TAXABILITY_REASONS,
    MappingOptions,
    StripeMappingError,
    TaxTreatment,
    decimal_field,
    from_minor_units,
    object_field,
    text_of,
)
from connector.tax import LineTax, TaxCategory, TaxScheme

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


def minor_amount(value: Any, field: str, line_id: str) -> int:
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
    rate = decimal_field(value, field, line_id)
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
    entry = object_field(raw, where)
    amount = minor_amount(entry.get("amount"), f"{where}.amount", line_id)
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
        minor_amount(entry.get("taxable_amount"), f"{where}.taxable_amount", line_id)
    behavior = entry.get("tax_behavior")
    if behavior not in ("exclusive", "inclusive"):
        raise StripeMappingError(
            f"{where}.tax_behavior", behavior, "must be exclusive or inclusive", line_id=line_id
        )
    if entry.get("type", "tax_rate_details") != "tax_rate_details":
        raise StripeMappingError(
            f"{where}.type", entry.get("type"), "must be tax_rate_details", line_id=line_id
        )
    details = object_field(entry.get("tax_rate_details"), f"{where}.tax_rate_details")
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
    tax_type = text_of(tax_rate.get("tax_type")).lower()
    scheme = TaxScheme.SALES_TAX if tax_type in SALES_TAX_TYPES else TaxScheme.VAT
    jurisdiction = ""
    if scheme is TaxScheme.SALES_TAX:
        country = text_of(tax_rate.get("country")).upper()
        state = text_of(tax_rate.get("state")).upper()
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
    line_id = text_of(line.get("id"))
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
