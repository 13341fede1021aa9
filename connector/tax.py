"""Tax on invoice lines, and the breakdown and totals of an invoice.

po-connector carries tax that another system computed (the billing system, a tax engine) or that
the customer master states; it never decides taxability itself. The shape follows EN 16931 /
Peppol BIS Billing 3.0, which every sink can be fed from:

- each line has one `LineTax`: a scheme (VAT, which EN 16931 uses for VAT, GST and consumption
  tax alike, or US-style sales tax by jurisdiction), a category (S, Z, E, AE, K, G, O, L, M),
  a rate in percent, an exemption reason where the category needs one, and the tax amount the
  billing system stated for the line, if it stated one;
- the invoice has one `TaxSubtotal` per (scheme, category, rate, jurisdiction), whose tax is
  the taxable amount times the rate, rounded once to the currency's minor unit (BR-CO-17), unless
  the billing system stated the tax of every line in the group: then the stated sum is carried,
  provided it is within rounding of the computed one (else the period is held as `tax_differs`).

All amounts are Decimal; rates are percent (19 for 19%), never fractions, never floats.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from connector.currency import minor_unit


class TaxScheme(enum.StrEnum):
    """Which kind of tax a line carries."""

    VAT = "VAT"  # VAT, GST, consumption tax: what EN 16931 calls VAT
    SALES_TAX = "SALES_TAX"  # US-style sales tax, by jurisdiction


class TaxCategory(enum.StrEnum):
    """EN 16931 VAT category codes (UNCL5305 subset); sales tax uses S, E and O."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    OUTSIDE_SCOPE = "O"
    CANARY_ISLANDS = "L"
    CEUTA_MELILLA = "M"


# Categories whose tax is always zero (BR-Z/E/AE/K/G/O-09) and whose rate is 0 (O has none).
ZERO_TAX = frozenset(
    {
        TaxCategory.ZERO_RATED,
        TaxCategory.EXEMPT,
        TaxCategory.REVERSE_CHARGE,
        TaxCategory.INTRA_COMMUNITY,
        TaxCategory.EXPORT,
        TaxCategory.OUTSIDE_SCOPE,
    }
)
# Categories that need an exemption reason code or text (BR-E/AE/IC/G/O-10) ...
NEEDS_REASON = frozenset(
    {
        TaxCategory.EXEMPT,
        TaxCategory.REVERSE_CHARGE,
        TaxCategory.INTRA_COMMUNITY,
        TaxCategory.EXPORT,
        TaxCategory.OUTSIDE_SCOPE,
    }
)
# ... and the categories that must not carry one (BR-S/Z/AF/AG-10).
NO_REASON = frozenset(
    {TaxCategory.STANDARD, TaxCategory.ZERO_RATED, TaxCategory.CANARY_ISLANDS, TaxCategory.CEUTA_MELILLA}
)

# Peppol P0104-P0111: these VATEX codes belong to exactly one category.
_VATEX_CATEGORY = {
    "VATEX-EU-AE": TaxCategory.REVERSE_CHARGE,
    "VATEX-EU-G": TaxCategory.EXPORT,
    "VATEX-EU-IC": TaxCategory.INTRA_COMMUNITY,
    "VATEX-EU-O": TaxCategory.OUTSIDE_SCOPE,
    "VATEX-EU-D": TaxCategory.EXEMPT,
    "VATEX-EU-F": TaxCategory.EXEMPT,
    "VATEX-EU-I": TaxCategory.EXEMPT,
    "VATEX-EU-J": TaxCategory.EXEMPT,
}
# The article-based codes (VATEX-EU-79-C, -132-1A … -309) are exemptions: category E.
_VATEX_EXEMPT_PREFIXES = ("VATEX-EU-79-", "VATEX-EU-132", "VATEX-EU-143", "VATEX-EU-148", "VATEX-EU-151")
_VATEX_EXEMPT_CODES = frozenset({"VATEX-EU-309"})

_HUNDRED = Decimal(100)


def category_of_exemption_code(code: str) -> TaxCategory | None:
    """The category a VATEX exemption code belongs to; None for a code that is not VATEX."""
    upper = code.strip().upper()
    if upper in _VATEX_CATEGORY:
        return _VATEX_CATEGORY[upper]
    if upper in _VATEX_EXEMPT_CODES or upper.startswith(_VATEX_EXEMPT_PREFIXES):
        return TaxCategory.EXEMPT
    return None


def _reject_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("tax rates and amounts must not be floats; pass a Decimal or a string")
    return value


class LineTax(BaseModel):
    """The tax of one invoice or billing line, as another system or the customer master states it.

    `rate` is a percentage (19 = 19%); it is None only for category O. `amount` is the tax the
    billing system computed for the line, in the line's currency, when it stated one. `origin`
    says where the tax came from (billing, sku, customer) so a person can see why.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: TaxScheme = TaxScheme.VAT
    category: TaxCategory
    rate: Decimal | None
    jurisdiction: str = ""
    exemption_reason_code: str = ""
    exemption_reason: str = ""
    amount: Decimal | None = None
    origin: str = ""

    @field_validator("rate", "amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        return _reject_float(value)

    @model_validator(mode="after")
    def _consistent(self) -> LineTax:
        category, rate = self.category, self.rate
        if category is TaxCategory.OUTSIDE_SCOPE:
            if rate is not None and rate != 0:
                raise ValueError(f"category O (outside the scope of tax) has no rate, got {rate}")
        elif rate is None:
            raise ValueError(f"category {category.value} needs a rate")
        elif not Decimal(0) <= rate < _HUNDRED:
            raise ValueError(f"rate {rate} is out of range (0 to under 100 percent)")
        elif category is TaxCategory.STANDARD and rate == 0:
            raise ValueError("category S (standard rate) needs a rate above 0; use Z for zero-rated")
        elif category in ZERO_TAX and rate != 0:
            raise ValueError(f"category {category.value} is charged at 0 percent, got {rate}")
        has_reason = bool(self.exemption_reason_code.strip() or self.exemption_reason.strip())
        if category in NEEDS_REASON and not has_reason:
            raise ValueError(f"category {category.value} needs an exemption reason (code or text)")
        if category in NO_REASON and has_reason:
            raise ValueError(f"category {category.value} must not carry an exemption reason")
        if self.exemption_reason_code:
            belongs = category_of_exemption_code(self.exemption_reason_code)
            if belongs is not None and belongs is not category:
                raise ValueError(
                    f"exemption code {self.exemption_reason_code} belongs to category {belongs.value}, "
                    f"not {category.value}"
                )
        if self.scheme is TaxScheme.SALES_TAX and category is TaxCategory.STANDARD and not self.jurisdiction:
            raise ValueError("sales tax needs its jurisdiction (e.g. US-NY)")
        if self.amount is not None and category in ZERO_TAX and self.amount != 0:
            raise ValueError(f"category {category.value} carries no tax, stated amount {self.amount}")
        return self

    @property
    def percent(self) -> Decimal:
        """The rate as a number, 0 for category O."""
        return self.rate if self.rate is not None else Decimal(0)

    def group_key(self) -> tuple[str, str, Decimal | None, str]:
        """What makes one breakdown group: scheme, category, rate (25 = 25.00), jurisdiction."""
        rate = None if self.rate is None else self.rate.normalize()
        return (self.scheme.value, self.category.value, rate, self.jurisdiction)

    def describe(self) -> str:
        rate = "" if self.rate is None else f" {self.rate.normalize():f}%"
        where = f" {self.jurisdiction}" if self.jurisdiction else ""
        reason = f" ({self.exemption_reason_code or self.exemption_reason})" if not self.rate else ""
        return f"{self.category.value}{rate}{where}{reason}"


class TaxSubtotal(BaseModel):
    """One group of the invoice's tax breakdown (EN 16931 BG-23): lines of one category and rate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: TaxScheme
    category: TaxCategory
    rate: Decimal | None
    jurisdiction: str = ""
    exemption_reason_code: str = ""
    exemption_reason: str = ""
    taxable_amount: Decimal
    tax_amount: Decimal


class TaxProblem(ValueError):
    """The lines' tax cannot make a valid breakdown: `code` is the reason a period is held for."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def round_tax(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (JPY has none)."""
    return amount.quantize(minor_unit(currency), ROUND_HALF_UP)


def computed_tax(taxable: Decimal, rate: Decimal | None, currency: str) -> Decimal:
    """Taxable amount times rate, rounded once (BR-CO-17)."""
    if not rate:
        return round_tax(Decimal(0), currency)
    return round_tax(taxable * rate / _HUNDRED, currency)


def stated_tolerance(lines_in_group: int, currency: str) -> Decimal:
    """How far a stated group tax may be from the computed one: rounding per line, at least 1 minor unit.

    A billing system that rounds each line's tax (Xero, Stripe per line) can be half a minor
    unit off per line; anything beyond that is a different tax, not rounding.
    """
    quantum = minor_unit(currency)
    return max(quantum, quantum * ((lines_in_group + 1) // 2))


def breakdown(lines: Iterable[tuple[Decimal, LineTax]], currency: str) -> tuple[TaxSubtotal, ...]:
    """One subtotal per (scheme, category, rate, jurisdiction) from (line net amount, line tax).

    Raises TaxProblem: `tax_conflict` when one group holds two exemption reasons (a breakdown
    group carries one), `tax_differs` when the billing system's stated tax is not taxable x rate
    within rounding.
    """
    groups: dict[tuple[str, str, Decimal | None, str], list[tuple[Decimal, LineTax]]] = {}
    for net, line_tax in lines:
        groups.setdefault(line_tax.group_key(), []).append((net, line_tax))
    out: list[TaxSubtotal] = []
    for members in groups.values():
        first = members[0][1]
        reasons = {(t.exemption_reason_code.strip(), t.exemption_reason.strip()) for _, t in members}
        if len(reasons) > 1:
            shown = "; ".join(sorted(code or text for code, text in reasons))
            raise TaxProblem(
                "tax_conflict", f"lines taxed {first.describe()} give different exemption reasons: {shown}"
            )
        taxable = sum((net for net, _ in members), Decimal(0))
        amount = computed_tax(taxable, first.rate, currency)
        stated = [t.amount for _, t in members]
        if all(amount is not None for amount in stated):
            given = round_tax(sum((a for a in stated if a is not None), Decimal(0)), currency)
            if abs(given - amount) > stated_tolerance(len(members), currency):
                raise TaxProblem(
                    "tax_differs",
                    f"billing states {given} {currency} tax on {taxable} {currency} at "
                    f"{first.describe()}, which is {amount} {currency}",
                )
            amount = given
        code, text = next(iter(reasons))
        out.append(
            TaxSubtotal(
                scheme=first.scheme,
                category=first.category,
                rate=first.rate,
                jurisdiction=first.jurisdiction,
                exemption_reason_code=code,
                exemption_reason=text,
                taxable_amount=round_tax(taxable, currency),
                tax_amount=amount,
            )
        )
    out.sort(
        key=lambda group: (group.scheme.value, group.category.value, group.jurisdiction, group.rate or 0)
    )
    return tuple(out)


def line_tax_amounts(
    lines: Iterable[tuple[int, Decimal, LineTax]], groups: Sequence[TaxSubtotal], currency: str
) -> dict[int, Decimal]:
    """Each line's tax, by line number, summing to its breakdown group's tax exactly.

    `lines` are (line number, line net amount, line tax); `groups` is the breakdown made from
    them. Per group: the billing system's stated line amounts when every line states one, else
    net x rate rounded per line; then the group's rounding remainder (the group's tax minus the
    sum of its lines) goes on its largest line (the first of equals), so the lines sum to the
    breakdown exactly. Sinks that state tax per line use this, so every target shows one tax.
    """
    members_of: dict[tuple[str, str, Decimal | None, str], list[tuple[int, Decimal, LineTax]]] = {}
    for number, net, line_tax in lines:
        members_of.setdefault(line_tax.group_key(), []).append((number, net, line_tax))
    wanted = {
        (g.scheme.value, g.category.value, None if g.rate is None else g.rate.normalize(), g.jurisdiction): (
            g.tax_amount
        )
        for g in groups
    }
    amounts: dict[int, Decimal] = {}
    for key, members in members_of.items():
        every_stated = all(line_tax.amount is not None for _, _, line_tax in members)
        for number, net, line_tax in members:
            if every_stated and line_tax.amount is not None:
                amounts[number] = round_tax(line_tax.amount, currency)
            else:
                amounts[number] = round_tax(net * line_tax.percent / _HUNDRED, currency)
        remainder = wanted[key] - sum((amounts[number] for number, _, _ in members), Decimal(0))
        if remainder:
            largest = max(members, key=lambda member: (abs(member[1]), -member[0]))
            amounts[largest[0]] += remainder
    return amounts


def tax_total(groups: Sequence[TaxSubtotal], currency: str) -> Decimal:
    """The invoice's tax: the sum of its groups (BR-CO-14)."""
    return round_tax(sum((group.tax_amount for group in groups), Decimal(0)), currency)


class TaxCodeMap:
    """Our tax treatment -> a target system's tax code (a Xero TaxType, a QuickBooks TaxCode id...).

    Keys, most specific first: ``"S:19"`` (category and rate), ``"S"`` (category), and for US
    sales tax ``"SALES_TAX:US-NY"`` then ``"SALES_TAX"``. A rate key matches 19, 19.0 and 19.00
    alike. Which code a system uses is configuration; a line whose treatment has no key is a
    `TaxProblem` ``tax_code_unmapped``, never a silent default.
    """

    def __init__(self, codes: dict[str, str] | None = None) -> None:
        self._codes: dict[str, str] = {}
        for key, code in (codes or {}).items():
            self._codes[self.normalise_key(key)] = code

    @staticmethod
    def normalise_key(key: str) -> str:
        """Checks and canonicalises a key ("s:19.00" -> "S:19"); raises ValueError naming it."""
        text = key.strip()
        head, _, tail = text.partition(":")
        head = head.strip().upper()
        if head == TaxScheme.SALES_TAX.value:
            return f"{head}:{tail.strip().upper()}" if tail.strip() else head
        try:
            category = TaxCategory(head)
        except ValueError:
            raise ValueError(
                f"tax code key {key!r}: {head!r} is not a tax category "
                f"({', '.join(c.value for c in TaxCategory)}) or SALES_TAX"
            ) from None
        if not tail.strip():
            return category.value
        try:
            rate = Decimal(tail.strip())
        except ArithmeticError:
            raise ValueError(f"tax code key {key!r}: rate {tail.strip()!r} is not a number") from None
        if not rate.is_finite() or not Decimal(0) <= rate < _HUNDRED:
            raise ValueError(f"tax code key {key!r}: rate {tail.strip()!r} is out of range")
        return f"{category.value}:{_plain(rate)}"

    @staticmethod
    def keys_for(line_tax: LineTax) -> tuple[str, ...]:
        """The keys that may name `line_tax`'s code, most specific first."""
        if line_tax.scheme is TaxScheme.SALES_TAX:
            base = TaxScheme.SALES_TAX.value
            if line_tax.category is TaxCategory.STANDARD and line_tax.jurisdiction:
                return (f"{base}:{line_tax.jurisdiction.upper()}", base)
            return (f"{base}:{line_tax.category.value}", line_tax.category.value)
        category = line_tax.category.value
        if line_tax.rate is None:
            return (category,)
        return (f"{category}:{_plain(line_tax.rate)}", category)

    def code_for(self, line_tax: LineTax) -> str:
        """The configured code for the line's treatment; TaxProblem when none is configured."""
        keys = self.keys_for(line_tax)
        for key in keys:
            if key in self._codes:
                return self._codes[key]
        raise TaxProblem(
            "tax_code_unmapped",
            f"no tax code configured for {line_tax.describe()} (add one of: {', '.join(keys)})",
        )

    def __bool__(self) -> bool:
        return bool(self._codes)

    def items(self) -> list[tuple[str, str]]:
        return sorted(self._codes.items())


def _plain(rate: Decimal) -> str:
    """19 for 19.00, 7.5 for 7.50: the form rates take in keys and texts."""
    return f"{rate.normalize():f}"
