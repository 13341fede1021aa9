"""The taxed example through every API sink: each invoice once, holding the plan's net, tax and gross.

The bundled example as it ships (US sales tax by state stated by the billing export, a German
customer under reverse charge from the customer master, a UK customer at 20% VAT) is run
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

TAXED_MATCHED = EXAMPLE_MATCHED + 1  # with tax, the UK customer's PO is matched too
RUN_TIMEOUT = 60.0


@pytest.mark.parametrize("kind", sorted(HARNESSES))
def test_the_taxed_example_reaches_each_sink_once_with_the_plans_gross(kind: str, tmp_path: Path) -> None:
    with sink_setup(kind, tmp_path, push={"batch_size": 1}, taxed=True) as setup:

        def sync(**env: str) -> dict[str, int]:
            result = run_cli(
                "sync", "--config", str(setup.config), "--json", env={**setup.env, **env}, timeout=RUN_TIMEOUT
            )
            assert result.code == (137 if env else 0), result.stderr
            return {} if env else dict(result.json())

        sync(PO_CONNECTOR_CRASH_AT="after-remote-create")
        first = sync()
        assert first["invoices_existing"] == 1 and first["invoices_pushed"] == TAXED_MATCHED - 1, first
        assert sync()["invoices_pushed"] == 0

        numbers = setup.harness.numbers()
        assert len(numbers) == TAXED_MATCHED and set(numbers.values()) == {1}, numbers
        stored = {invoice.number: invoice for invoice in setup.harness.stored()}
        rows = [row for row in outbox_rows(setup.config) if row["state"] == "pushed"]
        assert len(rows) == TAXED_MATCHED
        for row in rows:
            gross = Decimal(row["gross_amount"])
            assert gross == Decimal(row["amount"]) + Decimal(row["tax_amount"]), row
            assert stored[row["invoice_number"]].total == gross, (row, stored[row["invoice_number"]])
            assert row["total_mismatch"] is False, row
            if row.get("remote_tax") is not None:
                assert Decimal(row["remote_tax"]) == Decimal(row["tax_amount"]), row
        assert sum(Decimal(row["tax_amount"]) for row in rows) > 0
        assert {row["currency"] for row in rows} == {"USD", "EUR", "GBP"}
