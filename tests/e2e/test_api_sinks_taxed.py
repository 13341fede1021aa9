"""The taxed example through every API sink: each invoice once, holding the plan's net, tax and gross.

The bundled example as it ships (US sales tax by state stated by the billing export, a German
customer under reverse charge from the customer master, a UK customer at 20% VAT on a blanket
PO, a customer that issues no POs) is run
through `python -m connector` against each sink's loopback sandbox, set up as a company that
would add tax of its own where an invoice states none (QuickBooks automated sales tax, Xero's
account default rate, NetSuite's SuiteTax engine). A crash right after the first remote create
comes first, so the exactly-once recovery is exercised on taxed invoices too.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.sink_sandboxes import EXAMPLE_MATCHED, HARNESSES, outbox_rows, sink_setup

TAXED_MATCHED = EXAMPLE_MATCHED + 3  # with tax: the UK customer's two cycles, the no-PO customer
NO_PO_CUSTOMER = "CUST-HOOLI"  # po_required = false: a cXML buyer has no order to take it against
RUN_TIMEOUT = 60.0


@pytest.mark.parametrize("kind", sorted(HARNESSES))
def test_the_taxed_example_reaches_each_sink_once_with_the_plans_gross(kind: str, tmp_path: Path) -> None:
    refused = 1 if kind == "cxml-invoice" else 0
    with sink_setup(kind, tmp_path, push={"batch_size": 1}, taxed=True) as setup:

        def sync(code: int, **env: str) -> dict[str, int]:
            result = run_cli(
                "sync", "--config", str(setup.config), "--json", env={**setup.env, **env}, timeout=RUN_TIMEOUT
            )
            assert result.code == code, result.stderr
            return dict(result.json()) if code != 137 else {}

        sync(137, PO_CONNECTOR_CRASH_AT="after-remote-create")
        first = sync(1 if refused else 0)
        assert first["invoices_existing"] == 1, first
        assert first["invoices_pushed"] == TAXED_MATCHED - 1 - refused, first
        assert sync(0)["invoices_pushed"] == 0

        numbers = setup.harness.numbers()
        assert len(numbers) == TAXED_MATCHED - refused and set(numbers.values()) == {1}, numbers
        stored = {invoice.number: invoice for invoice in setup.harness.stored()}
        rows = outbox_rows(setup.config)
        dead = [row for row in rows if row["state"] == "dead"]
        assert [(row["customer_ref"], row["po_number"]) for row in dead] == [(NO_PO_CUSTOMER, "")] * refused
        pushed = [row for row in rows if row["state"] == "pushed"]
        assert len(pushed) == TAXED_MATCHED - refused
        for row in pushed:
            gross = Decimal(row["gross_amount"])
            assert gross == Decimal(row["amount"]) + Decimal(row["tax_amount"]), row
            assert stored[row["invoice_number"]].total == gross, (row, stored[row["invoice_number"]])
            assert row["total_mismatch"] is False, row
            if row.get("remote_tax") is not None:
                assert Decimal(row["remote_tax"]) == Decimal(row["tax_amount"]), row
        assert sum(Decimal(row["tax_amount"]) for row in pushed) > 0
        assert {row["currency"] for row in pushed} == {"USD", "EUR", "GBP"}
        assert any(row["po_number"] == "" for row in pushed) != bool(refused)
