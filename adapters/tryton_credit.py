"""A credit note in Tryton: an `out` invoice whose lines negate the credited invoice's lines,
each linked to the line it credits.

Tryton credits an invoice with its `account.invoice.credit` wizard (`Invoice.credit`, which is
not an RPC method of its own): `Invoice._credit` copies the header (party, address, accounts,
journal, currency, payment term, description, comment) and each line with its quantity negated,
its unit price, product, account and taxes, `origin` = the credited line and `taxes_date` = that
line's tax date, so the taxes are those of the invoice's date. The wizard takes nothing but the
date and "with refund" (post the credit note and cancel the invoice against it), so the draft it
makes carries the credited invoice's description, our invoice number, until a second call
gives it ours: a crash in between leaves a credit note that no lookup by our number finds, and
the retry credits the invoice twice. The sink therefore makes the same record with one raw
`create` that already carries our number, the lines linked as the wizard links them, which
Tryton shows as the credit note's origin and answers in `origin_invoices`.

The credited invoice is the one the outbox recorded (`credits.remote_id`), else the one found
by its number; it must be ours (its description starts with the credited number), an `out`
invoice, posted or paid, in the plan's currency, with the plan's lines (product, quantity,
unit price) in order. Anything else refuses the credit note before it is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from adapters.tryton_rpc import TrytonRpc
from connector.errors import RejectedError
from connector.model import InvoicePlan

INVOICE = "account.invoice"
INVOICE_LINE = "account.invoice.line"
_CREDITABLE = frozenset({"posted", "paid"})


def our_number(description: Any) -> str:
    """Our invoice number: the first word of a Tryton invoice's description."""
    words = str(description or "").split()
    return words[0] if words else ""


@dataclass(frozen=True)
class CreditedLine:
    """The line of the credited invoice a credit note line negates, and its tax date."""

    id: int
    tax_date: date | None

    @property
    def origin(self) -> str:
        """The credit note line's `origin` (a Reference field: "model,id")."""
        return f"{INVOICE_LINE},{self.id}"


class TrytonCredits:
    """Reads the invoice a credit note credits in one Tryton database and links to its lines."""

    def __init__(self, name: str, rpc: TrytonRpc) -> None:
        self.name = name
        self.rpc = rpc

    def credited_lines(self, plan: InvoicePlan, invoice_id: int) -> dict[int, CreditedLine]:
        """For each plan line (by line number), the line of invoice `invoice_id` it credits."""
        assert plan.credits is not None
        credited = plan.credits.invoice_number
        where = f"{self.name}: credit note {plan.invoice_number} of invoice {credited}"
        rows = self.rpc.search_read(
            INVOICE,
            [("id", "=", invoice_id)],
            ["type", "state", "description", "currency.code", "invoice_date", "accounting_date"],
        )
        if not rows or rows[0].get("type") != "out" or our_number(rows[0].get("description")) != credited:
            raise RejectedError(
                f"{where}: Tryton invoice {invoice_id} is not that invoice",
                provider_code="credited_invoice_not_found",
            )
        (invoice,) = rows
        if invoice["state"] not in _CREDITABLE:
            raise RejectedError(
                f"{where}: the invoice is {invoice['state']} in Tryton; only a posted invoice is credited",
                provider_code="credited_invoice_not_posted",
            )
        currency = (invoice.get("currency.") or {}).get("code")
        if currency != plan.currency:
            raise RejectedError(
                f"{where}: the invoice is in {currency} in Tryton, the credit note in {plan.currency}",
                provider_code="credit_differs",
            )
        lines = self.rpc.search_read(
            INVOICE_LINE,
            [("invoice", "=", invoice_id), ("type", "=", "line")],
            ["product.code", "quantity", "unit_price", "taxes_date"],
        )
        held = [
            ((row.get("product.") or {}).get("code"), Decimal(row["quantity"]), Decimal(row["unit_price"]))
            for row in lines
        ]
        wanted = [(line.sku, line.quantity, line.unit_price.amount) for line in plan.lines]
        if held != wanted:
            raise RejectedError(
                f"{where}: the invoice's lines in Tryton {_describe(held)} are not the credit "
                f"note's {_describe(wanted)}",
                provider_code="credit_differs",
            )
        invoice_tax_date = invoice.get("accounting_date") or invoice.get("invoice_date")
        return {
            line.line_no: CreditedLine(int(row["id"]), row.get("taxes_date") or invoice_tax_date)
            for line, row in zip(plan.lines, lines, strict=True)
        }


def _describe(lines: list[tuple[Any, Decimal, Decimal]]) -> str:
    return "[" + ", ".join(f"{sku} x {qty.normalize():f} at {price:f}" for sku, qty, price in lines) + "]"
