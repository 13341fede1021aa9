"""What the NetSuite sandbox checks and computes on a transaction record (invoice or credit
memo): NetSuite's error shape, the item lines, SuiteTax's tax lines and the record's totals."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.sandboxes.base import Reply

_TYPE_URL = "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1"

# The tax codes of a SuiteTax account that invoices the example's customers (rates in percent).
TAX_CODES: dict[str, dict[str, Any]] = {
    "11": {"name": "US-NY Sales Tax", "rate": Decimal("8.875")},
    "12": {"name": "US-TX Sales Tax", "rate": Decimal("8.25")},
    "13": {"name": "US-CA Sales Tax", "rate": Decimal("7.25")},
    "14": {"name": "US-MA Sales Tax", "rate": Decimal("6.25")},
    "20": {"name": "UK Standard 20%", "rate": Decimal("20")},
    "30": {"name": "EU Reverse Charge", "rate": Decimal("0")},
    "90": {"name": "Retired 17.5%", "rate": Decimal("17.5"), "isInactive": True},
}


def ns_error(status: int, title: str, detail: str, code: str, path: str = "") -> Reply:
    """A reply in NetSuite's REST error shape."""
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    body = {"type": _TYPE_URL, "title": title, "status": status, "o:errorDetails": [item]}
    return Reply(status, body, content_type="application/vnd.oracle.resource+json; type=error")


def invalid_value(value: str, field: str, path: str) -> Reply:
    """NetSuite's answer to a reference it does not know (customer, item, tax code)."""
    return ns_error(
        400,
        "Bad Request",
        "Error while accessing a resource. You have entered an Invalid Field Value "
        f"{value} for the following field: {field}",
        "USER_ERROR",
        path,
    )


def item_lines(body: dict[str, Any], items: set[str]) -> list[dict[str, Any]] | Reply:
    """The `item` sublist lines a body states, each naming an item of the account."""
    lines = []
    for index, line in enumerate((body.get("item") or {}).get("items", [])):
        item = str((line.get("item") or {}).get("id", ""))
        if item not in items:
            return invalid_value(item, "item", f"item.items[{index}].item")
        quantity = Decimal(str(line.get("quantity", "1")))
        rate = Decimal(str(line.get("rate", "0")))
        amount = Decimal(str(line["amount"])) if "amount" in line else quantity * rate
        lines.append(
            {
                "item": item,
                "quantity": quantity,
                "rate": rate,
                "amount": amount,
                "description": line.get("description", ""),
                "taxDetailsReference": str(line.get("taxDetailsReference", "")),
            }
        )
    return lines


def stated_tax(
    body: dict[str, Any], lines: list[dict[str, Any]], tax_codes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]] | Reply:
    """The override's tax lines, checked as NetSuite checks them: each names an item line's
    `taxDetailsReference` and an active tax code."""
    references = {line["taxDetailsReference"] for line in lines if line["taxDetailsReference"]}
    taxes = []
    for index, tax in enumerate((body.get("taxDetails") or {}).get("items", [])):
        path = f"taxDetails.items[{index}]"
        reference = str(tax.get("taxDetailsReference", ""))
        if reference not in references:
            return ns_error(
                400,
                "Bad Request",
                f"Invalid taxDetailsReference {reference!r}: no item line has it.",
                "USER_ERROR",
                f"{path}.taxDetailsReference",
            )
        code = str((tax.get("taxCode") or {}).get("id", ""))
        known = tax_codes.get(code)
        if known is None or known.get("isInactive"):
            return invalid_value(code, "taxCode", f"{path}.taxCode")
        try:
            amount = Decimal(str(tax["taxAmount"]))
            basis = Decimal(str(tax.get("taxBasis", "0")))
        except (KeyError, ArithmeticError):
            return ns_error(400, "Bad Request", f"{path}: taxAmount is required.", "USER_ERROR", path)
        taxes.append(
            {
                "taxDetailsReference": reference,
                "taxCode": code,
                "taxBasis": basis,
                "taxRate": Decimal(str(tax.get("taxRate", known["rate"]))),
                "taxAmount": amount,
            }
        )
    return taxes


def engine_tax(
    lines: list[dict[str, Any]], tax_codes: dict[str, dict[str, Any]], default_tax_code: str | None
) -> list[dict[str, Any]]:
    """What the account's tax engine adds to a record that states no tax of its own: every line
    at the nexus default's rate, rounded per line."""
    if default_tax_code is None:
        return []
    rate = Decimal(str(tax_codes[default_tax_code]["rate"]))
    return [
        {
            "taxDetailsReference": line["taxDetailsReference"],
            "taxCode": default_tax_code,
            "taxBasis": line["amount"],
            "taxRate": rate,
            "taxAmount": (line["amount"] * rate / 100).quantize(Decimal("0.01"), ROUND_HALF_UP),
        }
        for line in lines
    ]


def total_up(record: dict[str, Any]) -> None:
    """A record's `subtotal`, `taxTotal` (its tax lines) and `total` from its lines."""
    record["subtotal"] = sum((line["amount"] for line in record["lines"]), Decimal(0))
    record["taxTotal"] = sum((tax["taxAmount"] for tax in record["taxDetails"]), Decimal(0))
    record["total"] = record["subtotal"] + record["taxTotal"]


def number(value: Any) -> Any:
    """`json.dumps(default=...)` for the Decimals of a record."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)
