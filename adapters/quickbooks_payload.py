"""Pure QuickBooks Online mapping: plan -> Invoice or CreditMemo JSON, lookup queries, request ids.

Nothing here does I/O. Amounts are written as JSON numbers straight from the Decimal's digits
(`dumps`) and read back as Decimals (`loads`), so no amount ever passes through a float.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connector.model import Address, InvoiceLine, InvoicePlan
from connector.tax import LineTax, TaxCategory, TaxCodeMap, TaxProblem, TaxSubtotal

MAX_DOC_NUMBER = 21  # QBO DocNumber limit
MAX_BATCH_ID = 10  # bId when the batch carries a requestid
MAX_BATCH_ITEMS = 30
MAX_ADDRESS_LINES = 5  # PhysicalAddress Line1..Line5
MAX_PRIVATE_NOTE = 4000
MAX_CUSTOMER_MEMO = 1000
INVOICE = "Invoice"
CREDIT_MEMO = "CreditMemo"
ENTITIES = (INVOICE, CREDIT_MEMO)  # the sales transactions a plan becomes
US_TAXABLE = "TAX"  # the US model's line tax codes: taxable or not
US_NON_TAXABLE = "NON"
TAX_MODES = ("none", "us", "global")


class PayloadError(ValueError):
    """The plan cannot be expressed as a QuickBooks invoice; names the field and value.

    `code` is the problem's reason code when it has one (``tax_code_unmapped``).
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class QuickBooksRefs:
    """How our codes map onto QuickBooks entity ids."""

    customer_refs: Mapping[str, str] = field(default_factory=dict)
    item_refs: Mapping[str, str] = field(default_factory=dict)
    default_item_ref: str = "1"
    terms_refs: Mapping[str, str] = field(default_factory=dict)
    po_field_id: str = "1"
    po_field_name: str = "PO Number"
    tax_mode: str = "none"
    tax_codes: TaxCodeMap = field(default_factory=TaxCodeMap)
    txn_tax_code: str = ""

    def customer_id(self, customer_ref: str) -> str:
        return self.customer_refs.get(customer_ref, customer_ref)

    def item_id(self, sku: str) -> str:
        return self.item_refs.get(sku, self.default_item_ref)


def check_doc_number(number: str) -> None:
    """Raise PayloadError unless `number` fits QuickBooks' DocNumber."""
    if not number or not number.strip():
        raise PayloadError("DocNumber: the invoice number is empty")
    if len(number) > MAX_DOC_NUMBER:
        raise PayloadError(
            f"DocNumber: invoice number {number!r} has {len(number)} characters, "
            f"QuickBooks allows at most {MAX_DOC_NUMBER}"
        )


def entity_of(plan: InvoicePlan) -> str:
    """The QuickBooks entity a plan is written as: a CreditMemo for a credit note, else an Invoice."""
    return CREDIT_MEMO if plan.is_credit_note else INVOICE


def invoice_payload(
    plan: InvoicePlan, refs: QuickBooksRefs, tax_rates: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The QuickBooks Invoice entity for a plan (amounts stay Decimal: encode with `dumps`).

    `tax_rates` maps a TaxCode id onto the id of its sales TaxRate (from the company's TaxCode
    list); a non-US invoice states its tax per rate only where the rate's id is known.
    """
    invoice = _sales_transaction(plan, refs, tax_rates or {})
    invoice["DueDate"] = plan.due_date.isoformat()
    if plan.payment_terms is not None:
        term = refs.terms_refs.get(plan.payment_terms.code)
        if term:
            invoice["SalesTermRef"] = {"value": term}
    note = plan.memo or f"PO {plan.po_number}, period {plan.period_start} to {plan.period_end}"
    invoice["PrivateNote"] = note[:MAX_PRIVATE_NOTE]
    return invoice


def credit_memo_payload(
    plan: InvoicePlan, refs: QuickBooksRefs, tax_rates: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The QuickBooks CreditMemo entity for a credit note: the credited invoice's lines and tax.

    Amounts stay positive, as QuickBooks keeps a credit memo's. A credit memo has no link to an
    invoice in QuickBooks (nor a due date or terms), so the credited invoice's number is written
    where people read it: the CustomerMemo printed on the credit memo, and the PrivateNote.
    """
    if plan.credits is None:
        raise PayloadError(f"CreditMemo: {plan.invoice_number} is not a credit note")
    memo = _sales_transaction(plan, refs, tax_rates or {})
    credited = plan.credits.invoice_number
    said = f"Credit note for invoice {credited}: {plan.credits.reason}"
    memo["CustomerMemo"] = {"value": said[:MAX_CUSTOMER_MEMO]}
    note = plan.memo if credited in plan.memo else "; ".join(t for t in (said, plan.memo) if t)
    memo["PrivateNote"] = note[:MAX_PRIVATE_NOTE]
    return memo


def _sales_transaction(
    plan: InvoicePlan, refs: QuickBooksRefs, tax_rates: Mapping[str, str]
) -> dict[str, Any]:
    """What an Invoice and a CreditMemo share: number, customer, date, currency, PO, lines, tax."""
    check_doc_number(plan.invoice_number)
    customer = refs.customer_id(plan.customer_ref)
    if not customer:
        raise PayloadError(f"CustomerRef: customer {plan.customer_ref!r} maps to an empty id")
    entity: dict[str, Any] = {
        "DocNumber": plan.invoice_number,
        "CustomerRef": {"value": customer},
        "TxnDate": plan.issue_date.isoformat(),
        "CurrencyRef": {"value": plan.currency},
        "CustomField": [
            {
                "DefinitionId": refs.po_field_id,
                "Name": refs.po_field_name,
                "Type": "StringType",
                "StringValue": plan.po_number,
            }
        ]
        if plan.po_number
        else [],
        "Line": [_line(plan, line, refs) for line in plan.lines],
    }
    if plan.is_taxed:
        _add_tax(entity, plan, refs, tax_rates)
    if plan.customer_name:
        entity["CustomerRef"]["name"] = plan.customer_name
    if plan.bill_to is not None:
        entity["BillAddr"] = physical_address(plan.bill_to)
    if plan.ship_to is not None:
        entity["ShipAddr"] = physical_address(plan.ship_to)
    return entity


def _line(plan: InvoicePlan, line: InvoiceLine, refs: QuickBooksRefs) -> dict[str, Any]:
    if line.unit_price.currency != plan.currency:
        raise PayloadError(
            f"Line {line.line_no}: UnitPrice is in {line.unit_price.currency}, invoice in {plan.currency}"
        )
    detail: dict[str, Any] = {
        "ItemRef": {"value": refs.item_id(line.sku)},
        "Qty": line.quantity,
        "UnitPrice": line.unit_price.amount,
        "ServiceDate": (line.service_start or plan.period_start).isoformat(),
    }
    tax_code = _line_tax_code(line, refs)
    if tax_code is not None:
        detail["TaxCodeRef"] = {"value": tax_code}
    return {
        "LineNum": line.line_no,
        "DetailType": "SalesItemLineDetail",
        "Amount": line.amount.amount,
        "Description": (line.description or line.sku)[:MAX_PRIVATE_NOTE],
        "SalesItemLineDetail": detail,
    }


def _line_tax_code(line: InvoiceLine, refs: QuickBooksRefs) -> str | None:
    """The line's TaxCodeRef value, None for an untaxed plan."""
    if line.tax is None:
        return None
    if refs.tax_mode == "us":
        return US_TAXABLE if _is_taxable(line.tax) else US_NON_TAXABLE
    if refs.tax_mode == "global":
        try:
            return refs.tax_codes.code_for(line.tax)
        except TaxProblem as exc:
            raise PayloadError(f"Line {line.line_no}: {exc.detail}", code=exc.code) from None
    raise PayloadError(
        "TxnTaxDetail: the invoice carries tax but the sink has no tax_mode "
        '(set tax_mode = "us" or "global")',
        code="tax_code_unmapped",
    )


def _is_taxable(tax: LineTax) -> bool:
    """US model: a line is TAX when tax is charged on it at all (category S at a rate above 0)."""
    return tax.category is TaxCategory.STANDARD and bool(tax.rate)


def _add_tax(
    txn: dict[str, Any], plan: InvoicePlan, refs: QuickBooksRefs, tax_rates: Mapping[str, str]
) -> None:
    """State the plan's tax, so QuickBooks (automated sales tax, or per-line VAT) keeps it."""
    total_tax = plan.tax_total.amount
    detail: dict[str, Any] = {}
    if refs.tax_mode == "us":
        if refs.txn_tax_code:
            detail["TxnTaxCodeRef"] = {"value": refs.txn_tax_code}
        detail["TotalTax"] = total_tax
        txn["TxnTaxDetail"] = detail
        return
    txn["GlobalTaxCalculation"] = "TaxExcluded"
    tax_lines = []
    for group in plan.tax_breakdown:
        sample = next(line.tax for line in plan.lines if line.tax and _same_group(line.tax, group))
        rate_id = tax_rates.get(refs.tax_codes.code_for(sample))
        if rate_id is None:
            continue
        tax_lines.append(
            {
                "Amount": group.tax_amount,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {
                    "TaxRateRef": {"value": rate_id},
                    "PercentBased": True,
                    "TaxPercent": group.rate if group.rate is not None else Decimal(0),
                    "NetAmountTaxable": group.taxable_amount,
                },
            }
        )
    if len(tax_lines) == len(plan.tax_breakdown):
        # Every rate stated: QuickBooks keeps these amounts instead of rounding per line.
        detail["TotalTax"] = total_tax
        detail["TaxLine"] = tax_lines
        txn["TxnTaxDetail"] = detail


def _same_group(tax: LineTax, group: TaxSubtotal) -> bool:
    key = tax.group_key()
    rate = None if group.rate is None else group.rate.normalize()
    return key == (group.scheme.value, group.category.value, rate, group.jurisdiction)


def physical_address(address: Address) -> dict[str, str]:
    """A QuickBooks PhysicalAddress: the name and street lines in Line1..Line5."""
    lines = [text for text in (address.name, *address.lines) if text]
    if len(lines) > MAX_ADDRESS_LINES:
        lines = [*lines[: MAX_ADDRESS_LINES - 1], ", ".join(lines[MAX_ADDRESS_LINES - 1 :])]
    result = {f"Line{number}": text for number, text in enumerate(lines, start=1)}
    for key, value in (
        ("City", address.city),
        ("CountrySubDivisionCode", address.region),
        ("PostalCode", address.postal_code),
        ("Country", address.country),
    ):
        if value:
            result[key] = value
    return result


def fresh_request_id() -> str:
    """A requestid (a UUID, 36 characters) for one write call.

    QuickBooks answers a repeated requestid with the answer it stored for it, so the id lives for
    one call: the HTTP policy's retries inside the call reuse it, while a later attempt (after a
    fix, or after a transient fault answer) gets a new one. What keeps a later attempt from
    creating a second invoice is the lookup by DocNumber before it and the duplicate-number check.
    """
    return str(uuid.uuid4())


def batch_id(index: int) -> str:
    """The bId of the item at `index` of a batch (at most 10 characters)."""
    return f"b{index}"


def quote(value: str) -> str:
    """A QuickBooks query string literal: single quotes, with quote and backslash escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


TAX_CODE_QUERY = "select * from TaxCode startposition 1 maxresults 1000"


def sales_rates(tax_codes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """TaxCode id -> its one sales TaxRate id, for codes charging a single rate."""
    rates: dict[str, str] = {}
    for code in tax_codes:
        details = ((code.get("SalesTaxRateList") or {}).get("TaxRateDetail")) or []
        refs = [str((d.get("TaxRateRef") or {}).get("value", "")) for d in details if isinstance(d, dict)]
        if len(refs) == 1 and refs[0]:
            rates[str(code.get("Id", ""))] = refs[0]
    return rates


def doc_number_query(numbers: Iterable[str], entity: str = INVOICE) -> str:
    """`select * from <entity> where DocNumber in (...)` for the given numbers."""
    if entity not in ENTITIES:
        raise ValueError(f"{entity!r} is not one of {ENTITIES}")
    values = sorted(set(numbers))
    if not values:
        raise ValueError("no document numbers to look up")
    if len(values) == 1:
        return f"select * from {entity} where DocNumber = {quote(values[0])}"  # noqa: S608 - quoted
    listed = ",".join(quote(v) for v in values)
    return f"select * from {entity} where DocNumber in ({listed})"  # noqa: S608 - every value quoted


def dumps(value: Any) -> str:
    """JSON text in which every Decimal is a JSON number written from its own digits."""
    return "".join(_encode(value))


def _encode(value: Any) -> Iterable[str]:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PayloadError(f"amount {value} is not a finite number")
        yield format(value, "f")
    elif isinstance(value, dict):
        yield "{"
        for position, (key, item) in enumerate(value.items()):
            if position:
                yield ","
            yield json.dumps(str(key))
            yield ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for position, item in enumerate(value):
            if position:
                yield ","
            yield from _encode(item)
        yield "]"
    elif isinstance(value, float):
        raise PayloadError("floats are not allowed in a QuickBooks payload")
    else:
        yield json.dumps(value)


def loads(text: str) -> Any:
    """Parse a QuickBooks answer with every non-integer number as a Decimal."""
    return json.loads(text, parse_float=Decimal)
