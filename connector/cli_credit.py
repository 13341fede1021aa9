"""`po-connector credit INVOICE --reason ...`: a credit note for a sent invoice, optionally reissued."""

from __future__ import annotations

from typing import Any

import click

from connector.cli_base import Options, cli, human_summary, pass_options, run_job


def _human_credit(data: dict[str, Any]) -> str:
    lines = [
        f"{item['invoice']} in {item['sink']}: credit note {item['credit_note']}"
        for item in data["credit_notes"]
    ]
    if data["reissue"]:
        lines.append("the period is invoiced again under a new number (see `report`)")
    return "\n".join([*lines, human_summary({k: v for k, v in data.items() if k != "credit_notes"})])


@cli.command()
@click.argument("invoice")
@click.option("--reason", required=True, help="Why it is credited (on the credit note and in the report).")
@click.option(
    "--reissue", is_flag=True, help="Invoice the period again, as it now reconciles, under a new number."
)
@pass_options
def credit(options: Options, invoice: str, reason: str, reissue: bool) -> None:
    """Credit a sent invoice (number or idempotency key) in every sink that holds it.

    The credit note (UBL CreditNote 381, QuickBooks CreditMemo, Xero ACCRECCREDIT, ...) carries
    the invoice's lines and tax and names it; its PO gets the amount back. Crediting again plans
    nothing new. Exit 2 when the invoice is unknown, not yet sent everywhere, or a sink cannot
    take credit notes.
    """
    from connector.crediting import credit as credit_job

    run_job(options, lambda app: credit_job(app, invoice, reason=reason, reissue=reissue), _human_credit)
