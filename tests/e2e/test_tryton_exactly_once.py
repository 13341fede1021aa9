"""Exactly-once invoice push through the CLI into a real Tryton server.

Each test runs `python -m connector` as a separate process on a copy of the bundled example
(4 matched billing periods: two for Acme in USD, two for Globex in EUR) with a `tryton` sink
pointed at a trytond of its own (a fresh copy of the session's template database), the password
coming from an environment variable. What Tryton holds afterwards is read over JSON-RPC.

Tryton numbers a customer invoice when it is posted and refuses to number one dated before an
invoice its sequence already numbered. The example's Globex annual invoice is dated 2026-07-01
but planned after Acme's October and November ones, so with the template's one sequence per
fiscal year it is refused (the last test shows that). The other tests give the books one
sequence per month, as Tryton allows, so every matched period can be posted.
"""

from __future__ import annotations

import collections
import tomllib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.tryton_rpc import TrytonRpc
from connector.http import RetryPolicy
from tests.support.cli import EXAMPLE_INVOICES, Result, copy_example, run_cli
from tests.support.sink_sandboxes import (
    EXAMPLE_MATCHED,
    EXAMPLE_POS,
    FAST_PUSH,
    SINK_NAME,
    dump_toml,
    example_config,
    outbox_counts,
    outbox_rows,
)
from tests.support.tryton import TrytonServer, running_tryton

pytestmark = pytest.mark.service

PASSWORD_ENV = "E2E_TRYTON_PASSWORD"
RUN_TIMEOUT = 90.0
HIDDEN = "CUST-GLOBEX"  # two of the example's four matched periods are Globex's
LATE_PO = "ACME-PO-1001"  # a September period of this PO arrives after October was invoiced
EXAMPLE_YEAR = 2026
SEQUENCE_FIELDS = (
    "out_invoice_sequence",
    "out_credit_note_sequence",
    "in_invoice_sequence",
    "in_credit_note_sequence",
)
# The taxed example's treatments, each mapped to a sale tax of the test books.
EXAMPLE_TAXES = {
    "SALES_TAX:US-NY": "NY sales tax 8.875%",
    "SALES_TAX:US-CA": "CA sales tax 7.25%",
    "AE": "Reverse charge",
    "S:20": "VAT 20%",
    "E": "Exempt",
}
TAXED_MATCHED = EXAMPLE_INVOICES  # the example as it ships: Wayne's two cycles and PO-less Hooli too
INVOICE_FIELDS = [
    "state",
    "untaxed_amount",
    "tax_amount",
    "number",
    "reference",
    "description",
    "party.code",
    "total_amount",
    "currency.code",
]


@pytest.fixture
def tryton() -> Iterator[TrytonServer]:
    with running_tryton() as server:
        yield server


@pytest.fixture
def rpc(tryton: TrytonServer) -> Iterator[TrytonRpc]:
    client = TrytonRpc(
        url=tryton.url,
        database=tryton.database,
        user=tryton.user,
        password=tryton.password_file.read_text(),
        name="check",
        retry=RetryPolicy(max_attempts=2, sleep=lambda seconds: None),
    )
    yield client
    client.logout()


def number_invoices_per_month(rpc: TrytonRpc, year: int = EXAMPLE_YEAR) -> None:
    """Give each period of `year` its own invoice sequence, ahead of the fiscal year's one."""
    (fiscal_year,) = rpc.search_read(
        "account.fiscalyear", [("start_date", "=", date(year, 1, 1))], ["company"]
    )
    (yearly,) = rpc.search_read(
        "account.fiscalyear.invoice_sequence",
        [("fiscalyear", "=", fiscal_year["id"])],
        ["out_invoice_sequence.sequence_type"],
    )
    sequence_type = yearly["out_invoice_sequence."]["sequence_type"]
    periods = rpc.search_read(
        "account.period", [("fiscalyear", "=", fiscal_year["id"]), ("type", "=", "standard")], ["name"]
    )
    company = fiscal_year["company"]
    sequences = rpc.model(
        "ir.sequence.strict",
        "create",
        [
            {"name": f"Invoices {p['name']}", "sequence_type": sequence_type, "company": company}
            for p in periods
        ],
        write=True,
    )
    rows = [
        {
            "company": company,
            "fiscalyear": fiscal_year["id"],
            "period": period["id"],
            "sequence": index,
            **dict.fromkeys(SEQUENCE_FIELDS, sequence),
        }
        for index, (period, sequence) in enumerate(zip(periods, sequences, strict=True), start=1)
    ]
    rpc.model("account.fiscalyear.invoice_sequence", "create", rows, write=True)
    rpc.model("account.fiscalyear.invoice_sequence", "write", [yearly["id"]], {"sequence": 100}, write=True)


def setup_config(tryton: TrytonServer, workdir: Path, **push: Any) -> tuple[Path, dict[str, str]]:
    """The example's config with a `tryton` sink on this server; the environment for the CLI."""
    block = {
        "name": SINK_NAME,
        "type": "tryton",
        "url": tryton.url,
        "database": tryton.database,
        "user": tryton.user,
        "password_env": PASSWORD_ENV,
    }
    config = example_config(workdir, [block], push={**FAST_PUSH, **push})
    return config, {PASSWORD_ENV: tryton.password_file.read_text()}


def cli(config: Path, env: dict[str, str], *args: str, **extra_env: str) -> Result:
    return run_cli(*args, "--config", str(config), "--json", env={**env, **extra_env}, timeout=RUN_TIMEOUT)


def invoices(rpc: TrytonRpc) -> list[dict[str, Any]]:
    """Every customer invoice Tryton holds, drafts and duplicates included."""
    return rpc.search_read("account.invoice", [("type", "=", "out")], INVOICE_FIELDS)


def our_number(invoice: dict[str, Any]) -> str:
    return str(invoice["description"]).split()[0]


def assert_each_plan_posted_once(rpc: TrytonRpc, config: Path, count: int = EXAMPLE_MATCHED) -> None:
    """Tryton holds exactly one posted invoice per pushed outbox row, matching it field by field."""
    held = invoices(rpc)
    numbers = collections.Counter(our_number(invoice) for invoice in held)
    assert len(held) == count, held
    assert set(numbers.values()) == {1}, f"duplicated: {numbers}"

    pushed = [row for row in outbox_rows(config) if row["state"] == "pushed"]
    assert len(pushed) == count
    by_id = {str(invoice["id"]): invoice for invoice in held}
    for row in pushed:
        invoice = by_id[row["remote_id"]]
        assert invoice["state"] == "posted", invoice
        assert invoice["number"], invoice  # Tryton's own sequence number, given on posting
        assert our_number(invoice) == row["invoice_number"]
        assert invoice["reference"] == row["po_number"]
        assert invoice["party."]["code"] == row["customer_ref"]
        assert (invoice["total_amount"], invoice["currency."]["code"]) == (
            Decimal(row["amount"]),
            row["currency"],
        )
        assert row["remote_total"] is not None and Decimal(row["remote_total"]) == invoice["total_amount"]
        assert row["total_mismatch"] is False


@pytest.fixture
def books(rpc: TrytonRpc) -> TrytonRpc:
    """The server's books, numbering invoices per month; a client on them."""
    number_invoices_per_month(rpc)
    return rpc


def test_crash_after_the_first_create_is_recovered_by_lookup_with_one_posted_invoice_per_period(
    tryton: TrytonServer, books: TrytonRpc, tmp_path: Path
) -> None:
    assert invoices(books) == []
    # One plan per claim, so the crash comes right after the first invoice reached Tryton.
    config, env = setup_config(tryton, tmp_path, batch_size=1)

    crashed = cli(config, env, "sync", PO_CONNECTOR_CRASH_AT="after-remote-create")
    assert crashed.code == 137, crashed.stderr
    (first,) = invoices(books)  # Tryton has it; the outbox row still says pushing
    assert first["state"] == "posted"

    recovered = cli(config, env, "sync")
    assert recovered.code == 0, recovered.stderr
    summary = recovered.json()
    assert summary["invoices_existing"] == 1
    assert summary["invoices_pushed"] == EXAMPLE_MATCHED - 1
    assert outbox_counts(config) == {"pushed": EXAMPLE_MATCHED}
    assert_each_plan_posted_once(books, config)

    held = invoices(books)
    assert first["id"] in {invoice["id"] for invoice in held}
    assert {invoice["currency."]["code"] for invoice in held} == {"USD", "EUR"}
    for invoice in held:
        assert invoice["reference"] in EXAMPLE_POS[invoice["party."]["code"]]
        assert f"PO {invoice['reference']} " in invoice["description"]


def test_a_second_clean_sync_pushes_nothing_and_creates_no_invoice(
    tryton: TrytonServer, books: TrytonRpc, tmp_path: Path
) -> None:
    config, env = setup_config(tryton, tmp_path)
    first = cli(config, env, "sync")
    assert first.code == 0, first.stderr
    assert first.json()["invoices_pushed"] == EXAMPLE_MATCHED
    before = invoices(books)

    again = cli(config, env, "sync")
    assert again.code == 0, again.stderr
    assert again.json()["invoices_pushed"] == 0
    assert again.json()["invoices_failed"] == 0
    assert invoices(books) == before
    assert_each_plan_posted_once(books, config)


def test_a_customer_tryton_does_not_know_goes_dead_with_the_reason_and_the_rest_is_posted(
    tryton: TrytonServer, books: TrytonRpc, tmp_path: Path
) -> None:
    (globex,) = books.search_read("party.party", [("code", "=", HIDDEN)], ["code"])
    # Archived, the party is out of every search (its code is read-only once set).
    books.model("party.party", "write", [globex["id"]], {"active": False}, write=True)
    config, env = setup_config(tryton, tmp_path)

    first = cli(config, env, "sync")
    assert first.code == 1, first.stderr
    summary = first.json()
    assert summary["dead"] == 2
    assert summary["invoices_pushed"] == EXAMPLE_MATCHED - 2

    status = cli(config, env, "status")
    assert status.code == 0, status.stderr
    dead = status.json()["dead_letters"]
    assert sorted(letter["po_number"] for letter in dead) == sorted(EXAMPLE_POS[HIDDEN])
    for letter in dead:
        assert letter["sink"] == SINK_NAME
        assert f"Tryton has no party whose code is {HIDDEN!r}" in letter["error"], letter
    assert_each_plan_posted_once(books, config, EXAMPLE_MATCHED - 2)
    assert {invoice["party."]["code"] for invoice in invoices(books)} == {"CUST-ACME"}

    books.model("party.party", "write", [globex["id"]], {"active": True}, write=True)
    replay = cli(config, env, "replay", "--dead")
    assert replay.code == 0, replay.stderr
    assert replay.json()["replayed"] == 2
    assert replay.json()["invoices_pushed"] == 2
    assert outbox_counts(config) == {"pushed": EXAMPLE_MATCHED}
    assert_each_plan_posted_once(books, config)


def test_with_yearly_numbering_a_run_posts_in_invoice_date_order_and_a_late_backdated_one_goes_dead(
    tryton: TrytonServer, rpc: TrytonRpc, tmp_path: Path
) -> None:
    # Tryton's default: one sequence for the whole year. The core plans (so pushes) a run's
    # invoices in invoice-date order, so July's annual invoice is numbered before October's.
    config, env = setup_config(tryton, tmp_path)
    first = cli(config, env, "sync")
    assert first.code == 0, first.stderr
    assert_each_plan_posted_once(rpc, config)

    # A September period that arrives after October's invoice was numbered cannot be numbered.
    billing = config.parent / "examples" / "billing.csv"
    with billing.open("a", encoding="utf-8") as file:
        file.write(
            "CUST-ACME,Acme Corp,SUB-ACME-PRO,2026-09-01,2026-09-30,PLAN-PRO,Pro plan seats,50,40.00,USD,"
            f"{LATE_PO},2026-09-01\n"
        )
    late = cli(config, env, "sync")
    assert late.code == 1, late.stderr
    assert late.json()["dead"] == 1
    status = cli(config, env, "status")
    (letter,) = status.json()["dead_letters"]
    assert letter["po_number"] == LATE_PO
    assert "Tryton refused" in letter["error"] and "you must set an invoice date after" in letter["error"]
    drafts = [i for i in invoices(rpc) if i["state"] == "draft"]
    assert drafts == []  # the refused draft is gone
    assert_each_plan_posted_once(rpc, config)


def test_the_taxed_example_is_posted_once_each_with_the_plans_net_tax_and_gross(
    tryton: TrytonServer, books: TrytonRpc, tmp_path: Path
) -> None:
    config = copy_example(tmp_path)  # with its tax columns, reverse charge and UK case
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    (tmp_path / "out").mkdir(exist_ok=True)
    block = {
        "name": SINK_NAME,
        "type": "tryton",
        "url": tryton.url,
        "database": tryton.database,
        "user": tryton.user,
        "password_env": PASSWORD_ENV,
        "taxes": EXAMPLE_TAXES,
    }
    data["sinks"] = [block]
    data.setdefault("push", {}).update({**FAST_PUSH, "batch_size": 1})
    data.setdefault("log", {})["format"] = "json"
    config.write_text(dump_toml(data), encoding="utf-8")
    env = {PASSWORD_ENV: tryton.password_file.read_text()}

    crashed = cli(config, env, "sync", PO_CONNECTOR_CRASH_AT="after-remote-create")
    assert crashed.code == 137, crashed.stderr
    first = cli(config, env, "sync")
    assert first.code == 0, first.stderr
    assert first.json()["invoices_pushed"] + first.json()["invoices_existing"] == TAXED_MATCHED
    again = cli(config, env, "sync")
    assert again.code == 0 and again.json()["invoices_pushed"] == 0, again.stderr

    held = invoices(books)
    assert len(held) == TAXED_MATCHED
    assert set(collections.Counter(our_number(invoice) for invoice in held).values()) == {1}
    by_id = {str(invoice["id"]): invoice for invoice in held}
    rows = [row for row in outbox_rows(config) if row["state"] == "pushed"]
    assert len(rows) == TAXED_MATCHED
    for row in rows:
        invoice = by_id[row["remote_id"]]
        assert invoice["state"] == "posted", invoice
        assert (invoice["untaxed_amount"], invoice["tax_amount"], invoice["total_amount"]) == (
            Decimal(row["amount"]),
            Decimal(row["tax_amount"]),
            Decimal(row["gross_amount"]),
        ), row
        assert Decimal(row["remote_tax"]) == invoice["tax_amount"]
        assert row["total_mismatch"] is False
    assert {invoice["currency."]["code"] for invoice in held} == {"USD", "EUR", "GBP"}
    assert sum((invoice["tax_amount"] for invoice in held), Decimal(0)) > 0
