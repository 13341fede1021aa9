"""The netsuite sink's tax: the plan's tax stated as SuiteTax Tax Details with the override on.

NetSuite's REST record API carries tax only on SuiteTax accounts ("REST web services do not
support legacy tax features"). A SuiteTax account computes a transaction's tax itself from its
nexus and the customer's tax rules, so a plan whose tax was computed elsewhere (the billing
system, a tax engine) is written with `taxDetailsOverride = true` and one `taxDetails` line per
item line: the line's tax code (a `salesTaxItem` internal id, from the sink's `tax_codes`), its
basis (the line's net amount), rate and amount. Item lines and tax lines are joined by
`taxDetailsReference`. The amounts per line are the shared per-line split of the breakdown
(`connector.tax.line_tax_amounts`), so NetSuite's tax total is the plan's, cent for cent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import ConfigError, RejectedError
from connector.http import HttpClient
from connector.model import InvoiceLine, InvoicePlan
from connector.tax import TaxCodeMap, TaxProblem, line_tax_amounts
from connector.values import tax_table_key

TAX_CODE_PATH = "record/v1/salesTaxItem"


def line_reference(line: InvoiceLine) -> str:
    """The `taxDetailsReference` that ties an item line to its tax line."""
    return f"L{line.line_no}"


def document_name(plan: InvoicePlan) -> str:
    """The plan as errors name it: "invoice INV-…" or "credit note CN-…"."""
    return f"{plan.document_type.value.replace('_', ' ')} {plan.invoice_number}"


def tax_code_keys(codes: Mapping[str, str]) -> dict[str, str]:
    """Checks a `tax_codes` table (key -> internal id); raises ValueError naming the entry."""
    checked: dict[str, str] = {}
    for key, code in codes.items():
        normal = tax_table_key("tax_codes", key, code)
        if not code.strip().isdigit():
            raise ValueError(
                f"tax_codes[{key!r}] = {code!r}: a NetSuite tax code is the internal id of a "
                "salesTaxItem record, digits only"
            )
        checked[normal] = code.strip()
    return checked


def tax_details(plan: InvoicePlan, codes: TaxCodeMap, sink_name: str) -> dict[str, Any]:
    """The `taxDetailsOverride` and `taxDetails` fields of a taxed plan's invoice or credit memo
    (a credit memo states the tax it credits, the invoice's, as positive amounts)."""
    amounts = line_tax_amounts(
        ((line.line_no, line.amount.amount, line.tax) for line in plan.lines if line.tax is not None),
        plan.tax_breakdown,
        plan.currency,
    )
    items = []
    for line in plan.lines:
        if line.tax is None:  # a plan is taxed on every line or on none
            continue
        try:
            code = codes.code_for(line.tax)
        except TaxProblem as exc:
            raise RejectedError(
                f"netsuite sink {sink_name!r}: {document_name(plan)}: line {line.line_no}: "
                f"{exc.detail}; add it to tax_codes",
                provider_code=exc.code,
            ) from None
        items.append(
            {
                "taxDetailsReference": line_reference(line),
                "taxCode": {"id": code},
                "taxBasis": line.amount.amount,
                "taxRate": line.tax.percent,
                "taxAmount": amounts[line.line_no],
            }
        )
    return {"taxDetailsOverride": True, "taxDetails": {"items": items}}


def check_tax_codes(client: HttpClient, codes: TaxCodeMap, sink_name: str) -> None:
    """For `doctor`: every configured tax code is an active salesTaxItem of the account, and
    one that states a rate states the rate its key names."""
    problems = []
    for key, code in codes.items():
        try:
            response = client.request("GET", f"{TAX_CODE_PATH}/{code}")
        except RejectedError as exc:
            if exc.status != 404:
                raise
            problems.append(f"tax_codes[{key!r}] = {code!r} is not a tax code (salesTaxItem) of this account")
            continue
        try:
            record = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            problems.append(f"tax_codes[{key!r}] = {code!r}: NetSuite answered no record")
            continue
        name = str(record.get("name") or record.get("itemId") or code)
        if record.get("isInactive") is True:
            problems.append(f"tax_codes[{key!r}] = {code!r} ({name}) is inactive")
        wanted = _rate_of_key(key)
        stated = _percent(record.get("rate"))
        if wanted is not None and stated is not None and stated != wanted:
            problems.append(f"tax_codes[{key!r}] = {code!r} ({name}) is {stated:f}%, not {wanted:f}%")
    if problems:
        raise ConfigError(f"{sink_name}: " + "; ".join(problems))


def _rate_of_key(key: str) -> Decimal | None:
    head, _, tail = key.partition(":")
    if head == "SALES_TAX" or not tail:
        return None
    return Decimal(tail).normalize()


def _percent(value: Any) -> Decimal | None:
    """A rate as NetSuite writes it (8, "8", "8.0%"), normalised; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip().rstrip("%")).normalize()
    except InvalidOperation:
        return None
