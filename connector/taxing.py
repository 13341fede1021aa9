"""Gives every line of a billing period its tax, from the places configured, or holds the period.

The connector carries tax another system computed or the customer master states; it never
guesses. For each line the places in `[tax] order` are asked in turn (the billing record, the
SKU's override, the customer master's default) and the first answer wins. Then the answer is
checked against what a valid invoice needs, so a period that could only produce an invoice the
buyer's AP (or the EN 16931 rules) would reject is held with a reason a person can act on:

- `tax_unknown`: no place states a line's tax (and `[tax] required`);
- `tax_differs`: a stated tax amount is not the line's net times its rate within rounding;
- `tax_conflict`: lines of one category and rate give different exemption reasons;
- `tax_needs_buyer_vat_id`: reverse charge (AE) or intra-community supply (K) for a buyer whose
  VAT id the customer master does not hold (BR-AE-02, BR-IC-02);
- `tax_outside_scope_with_vat_ids`: category O on an invoice that names a VAT id (BR-O-02..04);
- `tax_seller_unregistered`: a taxed category while the supplier has neither a VAT id nor a tax
  registration (BR-S-02 and its siblings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connector.maps import Customer, SkuMap
from connector.model import BillingLine, BillingPeriod, Party, Reason
from connector.tax import LineTax, TaxCategory, TaxProblem, breakdown, computed_tax, stated_tolerance

_NEEDS_BUYER_VAT = frozenset({TaxCategory.REVERSE_CHARGE, TaxCategory.INTRA_COMMUNITY})


@dataclass(frozen=True)
class TaxOutcome:
    """The period with every line's tax set, or the reasons it is held (then `period` is unset)."""

    period: BillingPeriod | None
    reasons: tuple[Reason, ...] = ()


class TaxResolver:
    """Resolves and checks the tax of billing periods for one run."""

    def __init__(
        self,
        order: Sequence[str],
        skus: SkuMap,
        *,
        required: bool = True,
        supplier: Party | None = None,
    ) -> None:
        self._order = tuple(order)
        self._skus = skus
        self._required = required
        self._supplier = supplier

    def resolve(self, period: BillingPeriod, customer: Customer | None) -> TaxOutcome:
        """`period` with each line's tax, or why it cannot be invoiced with a valid tax treatment."""
        found = [self._line_tax(line, customer) for line in period.lines]
        unknown = [line for line, tax in zip(period.lines, found, strict=True) if tax is None]
        if len(unknown) == len(found) and not self._required:
            return TaxOutcome(period)  # untaxed invoices allowed: the period goes on as it is
        if unknown:
            names = ", ".join(_line_name(line) for line in unknown)
            detail = (
                f"no tax stated for {names}: not by billing, not as a SKU override, not in the "
                f"customer master of {period.customer_ref} (looked in: {', '.join(self._order)})"
            )
            return TaxOutcome(None, (Reason(code="tax_unknown", detail=detail),))
        lines = tuple(
            line if line.tax is tax else line.model_copy(update={"tax": tax})
            for line, tax in zip(period.lines, found, strict=True)
        )
        reasons = self._check(period, lines, customer)
        if reasons:
            return TaxOutcome(None, tuple(reasons))
        return TaxOutcome(period.model_copy(update={"lines": lines}))

    def _line_tax(self, line: BillingLine, customer: Customer | None) -> LineTax | None:
        for place in self._order:
            if place == "billing" and line.tax is not None:
                return line.tax
            if place == "sku":
                override = self._skus.tax_for(line.sku)
                if override is not None:
                    return override
            if place == "customer" and customer is not None and customer.master.tax is not None:
                return customer.master.tax.model_copy(update={"origin": "customer"})
        return None

    def _check(
        self, period: BillingPeriod, lines: tuple[BillingLine, ...], customer: Customer | None
    ) -> list[Reason]:
        reasons: list[Reason] = []
        currency = period.currency
        buyer_vat = customer.master.vat_id if customer is not None else ""
        seller = self._supplier
        for line in lines:
            tax = line.tax
            assert tax is not None  # every line was resolved above
            net = line.amount.quantized().amount
            if tax.amount is not None:
                expected = computed_tax(net, tax.rate, currency)
                if abs(tax.amount - expected) > stated_tolerance(1, currency):
                    reasons.append(
                        Reason(
                            code="tax_differs",
                            detail=f"{_line_name(line)}: billing states {tax.amount} {currency} tax on "
                            f"{net} {currency} at {tax.describe()}, which is {expected} {currency}",
                        )
                    )
            if tax.category in _NEEDS_BUYER_VAT and not buyer_vat:
                reasons.append(
                    Reason(
                        code="tax_needs_buyer_vat_id",
                        detail=f"{_line_name(line)} is taxed {tax.describe()}, which needs the buyer's "
                        f"VAT id; the customer master of {period.customer_ref} has none (vat_id)",
                    )
                )
            if tax.category is TaxCategory.OUTSIDE_SCOPE and (buyer_vat or (seller and seller.vat_id)):
                reasons.append(
                    Reason(
                        code="tax_outside_scope_with_vat_ids",
                        detail=f"{_line_name(line)} is outside the scope of VAT (O), but the invoice "
                        "names a VAT id (seller or buyer); O invoices carry none",
                    )
                )
            if (
                seller is not None
                and tax.category is not TaxCategory.OUTSIDE_SCOPE
                and not (seller.vat_id or seller.tax_registration_id)
            ):
                reasons.append(
                    Reason(
                        code="tax_seller_unregistered",
                        detail=f"{_line_name(line)} is taxed {tax.describe()}, but [supplier] has "
                        "neither vat_id nor tax_registration_id",
                    )
                )
        if not reasons:
            try:
                breakdown(
                    ((line.amount.quantized().amount, line.tax) for line in lines if line.tax), currency
                )
            except TaxProblem as problem:
                reasons.append(Reason(code=problem.code, detail=problem.detail))
        return _unique(reasons)


def _line_name(line: BillingLine) -> str:
    return f"line {line.sku}" + (f" ({line.description})" if line.description else "")


def _unique(reasons: list[Reason]) -> list[Reason]:
    seen: set[tuple[str, str]] = set()
    out = []
    for reason in reasons:
        if (reason.code, reason.detail) not in seen:
            seen.add((reason.code, reason.detail))
            out.append(reason)
    return out
