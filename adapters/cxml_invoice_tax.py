"""The Tax elements of the cXML invoice document: each line's share of the plan's tax and the
summary's breakdown, as TaxDetails (category "vat" or "sales", the rate, taxable base and tax,
the US state as TaxLocation, a zero-tax category's reason and VATEX code), signed as the
document signs its amounts."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from adapters.cxml_invoice_xml import DEBIT, amount_text, lang, money, sub
from connector.model import InvoiceLine, InvoicePlan, Money
from connector.tax import ZERO_TAX, LineTax, TaxCategory, TaxScheme, TaxSubtotal, line_tax_amounts
from connector.values import format_percent

# What a category is called in a Tax Description, and the reason a zero-tax TaxDetail gives
# when the plan states only an exemption code (Coupa wants a Description on exempt and
# reverse-charge details).
_CATEGORY_NAMES = {
    TaxCategory.STANDARD: "standard rate",
    TaxCategory.ZERO_RATED: "zero rated",
    TaxCategory.EXEMPT: "exempt",
    TaxCategory.REVERSE_CHARGE: "reverse charge",
    TaxCategory.INTRA_COMMUNITY: "intra-community supply",
    TaxCategory.EXPORT: "export",
    TaxCategory.OUTSIDE_SCOPE: "outside the scope of tax",
    TaxCategory.CANARY_ISLANDS: "Canary Islands IGIC",
    TaxCategory.CEUTA_MELILLA: "Ceuta and Melilla IPSI",
}


_ZERO_TAX_REASONS = {
    TaxCategory.ZERO_RATED: "Zero rated",
    TaxCategory.EXEMPT: "Exempt from tax",
    TaxCategory.REVERSE_CHARGE: "Reverse charge: the customer accounts for the VAT",
    TaxCategory.INTRA_COMMUNITY: "Intra-community supply, exempt from VAT",
    TaxCategory.EXPORT: "Export outside the EU, exempt from VAT",
    TaxCategory.OUTSIDE_SCOPE: "Not subject to VAT",
}


_EXEMPT_DETAIL = {TaxCategory.ZERO_RATED: "zeroRated", TaxCategory.EXEMPT: "exempt"}


def describe_tax(tax: LineTax | TaxSubtotal) -> str:
    """A Tax Description: "VAT standard rate 19%", "Sales tax US-NY 8.875%", "VAT reverse charge 0%"."""
    words = ["VAT", _CATEGORY_NAMES[tax.category]]
    if tax.scheme is TaxScheme.SALES_TAX:
        # a charged sales tax is named by where it is due; only exemptions say so
        named = "" if tax.category is TaxCategory.STANDARD else _CATEGORY_NAMES[tax.category]
        words = ["Sales tax", tax.jurisdiction, named]
    words.append(f"{format_percent(tax.rate or Decimal(0))}%")
    return " ".join(word for word in words if word)


def exemption_text(tax: LineTax | TaxSubtotal) -> str:
    """The reason a zero-tax detail states: the plan's text, its code in brackets."""
    code = tax.exemption_reason_code.strip()
    text = tax.exemption_reason.strip() or _ZERO_TAX_REASONS.get(tax.category, "")
    if code and code not in text:
        return f"{text} ({code})" if text else code
    return text


def tax_location(jurisdiction: str) -> str:
    """The TaxLocation of a US sales tax: the state (NY for US-NY), else the jurisdiction as given."""
    code = jurisdiction.strip().upper()
    return code[3:] if code.startswith("US-") and len(code) > 3 else code


def tax_detail(
    parent: etree._Element,
    tax: LineTax | TaxSubtotal,
    taxable: Money,
    amount: Money,
    language: str,
    *,
    sign: Decimal = DEBIT,
) -> None:
    """One TaxDetail: category and rate, its taxable base and tax (signed), where it is due and,
    for zero-tax categories, why."""
    attributes = {
        "purpose": "tax",
        "category": "sales" if tax.scheme is TaxScheme.SALES_TAX else "vat",
        "percentageRate": format_percent(tax.rate or Decimal(0)),
    }
    if tax.category in _EXEMPT_DETAIL:
        attributes["exemptDetail"] = _EXEMPT_DETAIL[tax.category]
    detail = sub(parent, "TaxDetail", **attributes)
    money(detail, "TaxableAmount", taxable, sign=sign)
    money(detail, "TaxAmount", amount, sign=sign)
    if tax.jurisdiction:
        lang(detail, "TaxLocation", tax_location(tax.jurisdiction), language)
    if tax.category in ZERO_TAX:
        reason = exemption_text(tax)
        lang(detail, "Description", reason, language)
        if tax.exemption_reason_code.strip():
            exemption = sub(detail, "TaxExemption", exemptCode=tax.exemption_reason_code.strip())
            lang(exemption, "ExemptReason", reason, language)


def line_tax(
    item: etree._Element, line: InvoiceLine, tax: LineTax, amount: Money, language: str, *, sign: Decimal
) -> None:
    """An InvoiceDetailItem's Tax: its share of the plan's tax, described, with one TaxDetail."""
    element = sub(item, "Tax")
    sub(element, "Money", amount_text(amount, sign), currency=amount.currency)
    lang(element, "Description", describe_tax(tax), language)
    tax_detail(element, tax, line.amount, amount, language, sign=sign)


def summary_tax(summary: etree._Element, plan: InvoicePlan, language: str, *, sign: Decimal) -> None:
    """The summary Tax: the plan's tax, one TaxDetail per breakdown group ("No tax" without)."""
    tax = sub(summary, "Tax")
    sub(tax, "Money", amount_text(plan.tax_total, sign), currency=plan.currency)
    groups = plan.tax_breakdown
    if not groups:
        lang(tax, "Description", "No tax", language)
        return
    lang(tax, "Description", "; ".join(describe_tax(group) for group in groups), language)
    for group in groups:
        tax_detail(
            tax,
            group,
            Money(amount=group.taxable_amount, currency=plan.currency),
            Money(amount=group.tax_amount, currency=plan.currency),
            language,
            sign=sign,
        )


def plan_line_taxes(plan: InvoicePlan) -> dict[int, Money]:
    """Each line's tax by line number, summing to each breakdown group's tax to the minor unit."""
    amounts = line_tax_amounts(
        ((line.line_no, line.amount.amount, line.tax) for line in plan.lines if line.tax is not None),
        plan.tax_breakdown,
        plan.currency,
    )
    return {number: Money(amount=amount, currency=plan.currency) for number, amount in amounts.items()}
