"""The tryton sink as the integration tests drive it: sinks on a test server, plans of their
own PO numbers, and what Tryton holds afterwards, read back over RPC."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any

from adapters.tryton_sink import TrytonSink, TrytonSinkConfig
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money
from connector.ports import AdapterContext
from connector.tax import LineTax
from tests.support.factories import make_plan
from tests.support.tryton import TrytonServer

FAST = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
_numbers = itertools.count(101)


def sink_for(server: TrytonServer, **extra: Any) -> TrytonSink:
    """A sink named "erp" on the server, with these config keys."""
    config = TrytonSinkConfig(name="erp", **server.config(**extra))
    return TrytonSink(config, AdapterContext(), retry=FAST)


def plan_for(**changes: Any) -> InvoicePlan:
    """A plan of its own PO number (the module shares one database), issued today."""
    plan = make_plan(next(_numbers), sink="erp")
    return plan.model_copy(update={"issue_date": date.today(), **changes})


def invoices_of(sink: TrytonSink, po_number: str) -> list[dict[str, Any]]:
    """The invoices (and credit notes) of a PO, lowest id first."""
    return sink.rpc.search_read(
        "account.invoice",
        [("reference", "=", po_number)],
        ["state", "number", "description", "total_amount", "party.code", "payment_term.name", "invoice_date"],
    )


def deliver(sink: TrytonSink, plan: InvoicePlan) -> str:
    """What the core does for one outbox row: look up first, push only when absent."""
    found = sink.find([plan])
    if plan.idempotency_key in found:
        return found[plan.idempotency_key].remote_id
    return sink.push(plan).remote_id


def sink_like(sink: TrytonSink) -> TrytonSink:
    """A fresh sink (new process, new login) for the same database."""
    return TrytonSink(sink.config, AdapterContext(), retry=FAST)


def taxed_plan(*lines: tuple[str, str, str, LineTax]) -> InvoicePlan:
    """A plan of (sku, quantity, unit price, tax) lines."""
    base = plan_for()
    template = base.lines[0]
    taxed = tuple(
        template.model_copy(
            update={
                "line_no": number,
                "po_line_no": number,
                "sku": sku,
                "quantity": Decimal(quantity),
                "unit_price": Money.of(price, base.currency),
                "tax": tax,
            }
        )
        for number, (sku, quantity, price, tax) in enumerate(lines, start=1)
    )
    return InvoicePlan.model_validate({**base.model_dump(), "lines": taxed})


def amounts(sink: TrytonSink, invoice_id: str) -> tuple[str, Decimal, Decimal, Decimal]:
    """An invoice's state, untaxed amount, tax and total, as Tryton computes them."""
    (row,) = sink.rpc.model(
        "account.invoice",
        "read",
        [int(invoice_id)],
        ["state", "untaxed_amount", "tax_amount", "total_amount"],
    )
    return row["state"], row["untaxed_amount"], row["tax_amount"], row["total_amount"]


def invoice_taxes(sink: TrytonSink, invoice_id: str) -> dict[int, dict[str, Any]]:
    """An invoice's tax lines by Tryton tax id."""
    rows = sink.rpc.search_read(
        "account.invoice.tax",
        [("invoice", "=", int(invoice_id))],
        ["tax", "base", "amount", "manual", "legal_notice"],
    )
    return {row["tax"]: row for row in rows}
