"""A sync reconciles only the customers whose inputs changed, and ends where a full one would.

Each step changes the stored inputs the way a pull or support would, runs `sync` (which
reconciles the changed customers only) and then a full `reconcile` of the same state: that one
must plan, withdraw and flag nothing, and leave every stored result as the sync wrote it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from connector import jobs
from connector.model import AckDecision, BillingLine, BillingPeriod, Money, POLine, PurchaseOrder
from connector.runtime import Connector
from connector.tax import LineTax, TaxCategory, TaxScheme
from state import acks, reconcile_checkpoints
from state.reconcile_checkpoints import ReconcileInputs
from state.tables import invoice_outbox, match_results, reconcile_input_changes
from tests.support.own_data import connector_without_data
from tests.support.own_data import store as store_at

NOW = datetime(2026, 11, 29, tzinfo=UTC)
SALES_TAX = LineTax(
    scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.875"), jurisdiction="US-NY"
)
BUYERS = {
    "CUST-ACME": "acme.example",
    "CUST-INITECH": "initech.example",
    "CUST-UMBRELLA": "umbrella.example",
    "CUST-WAYNE": "wayne.example",
    "CUST-GLOBEX": "globex.example",
}


@pytest.fixture
def app(tmp_path: Path) -> Connector:
    return connector_without_data(tmp_path)


def po(number: str, customer: str, quantity: str = "30", *, buyer: str | None = None) -> PurchaseOrder:
    return PurchaseOrder(
        source="inbox",
        external_id=number,
        po_number=number,
        buyer_id=buyer or BUYERS[customer],
        currency="USD",
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        lines=(
            POLine(
                line_no=1, sku="PLAN-PRO", quantity=Decimal(quantity), unit_price=Money.of("40.00", "USD")
            ),
        ),
    )


def period(customer: str, month: int, seats: str = "10", po_number: str | None = None) -> BillingPeriod:
    return BillingPeriod(
        billing_source="billing",
        subscription_id=f"SUB-{customer}",
        period_start=date(2026, month, 1),
        period_end=date(2026, month, 28),
        customer_ref=customer,
        po_number=po_number,
        currency="USD",
        lines=(
            BillingLine(
                sku="PLAN-PRO", quantity=Decimal(seats), unit_price=Money.of("40.00", "USD"), tax=SALES_TAX
            ),
        ),
    )


def store(app: Connector, *items: PurchaseOrder | BillingPeriod) -> None:
    store_at(app, NOW, *items)


def results_of(app: Connector) -> dict[str, tuple[Any, ...]]:
    c = match_results.c
    with app.connect() as conn:
        rows = conn.execute(
            select(
                c.subject_key, c.status, c.reasons_json, c.warnings_json, c.po_key, c.customer_ref, c.amount
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def outbox_of(app: Connector) -> dict[str, tuple[Any, ...]]:
    c = invoice_outbox.c
    with app.connect() as conn:
        rows = conn.execute(select(c.idempotency_key, c.state, c.plan_hash, c.amended_detail)).all()
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture(autouse=True)
def recorded_as_digested(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint recorded (after some customers, their digests taken again from their
    own rows) is what digesting every input in the same transaction gives."""
    record, digest_all = reconcile_checkpoints.record, reconcile_checkpoints.current_inputs

    def unresolved(canonical: str) -> str:
        raise AssertionError("a PO left unstamped by a reconciliation")

    def checked(conn: Connection, tenant: str, inputs: ReconcileInputs, *args: Any) -> None:
        assert digest_all(conn, tenant, inputs.settings, unresolved) == inputs
        record(conn, tenant, inputs, *args)

    monkeypatch.setattr(reconcile_checkpoints, "record", checked)


def synced(app: Connector) -> dict[str, Any]:
    """Sync, then check a full reconcile of what it left changes nothing."""
    summary = jobs.sync(app)
    # Initech's and Umbrella's invoices go dead (their master lacks an electronic address):
    # dead rows draw nothing, and reconciliation must treat them alike both ways.
    assert all("EN 16931" in error for error in summary["errors"]), summary["errors"]
    results, rows = results_of(app), outbox_of(app)
    full = jobs.reconcile(app)
    assert "customers_reconciled" not in full and "reconcile_unchanged" not in full
    assert (full["invoices_planned"], full["invoices_withdrawn"], full.get("amended_after_push", 0)) == (
        0,
        0,
        0,
    )
    assert results_of(app) == results
    assert outbox_of(app) == rows
    counted = ("matched", "mismatch", "ambiguous", "missing_po", "unused_po")
    assert {key: summary[key] for key in counted} == {key: full[key] for key in counted}
    return summary


def batches_recorded(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The customers of each batch reconciled from now on, in order."""
    from connector.reconcile import service

    batches: list[set[str]] = []
    reconcile_scopes = service._reconcile_scopes

    def counted(*args: Any) -> None:
        batches.append(set(args[4]))
        reconcile_scopes(*args)

    monkeypatch.setattr(service, "_reconcile_scopes", counted)
    return batches


def reasons(app: Connector) -> list[str]:
    return [reason["detail"] for row in results_of(app).values() for reason in json.loads(row[1])]


def test_each_change_reconciles_only_its_customers_and_ends_as_a_full_reconcile(app: Connector) -> None:
    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers])
    store(app, *[period(ref, month) for ref in customers for month in (1, 2)])
    first = synced(app)
    assert "customers_reconciled" not in first and first["matched"] == 2 * len(customers)
    assert first["invoices_pushed"] == 6 and first["dead"] == 4

    # A billing change of one customer: that customer alone.
    store(app, period("CUST-ACME", 2, seats="12"))
    assert synced(app)["customers_reconciled"] == 1

    # A PO revised after its invoices went out: its customer alone, and the invoices flagged.
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="60"))
    revised = synced(app)
    assert revised["customers_reconciled"] == 1 and revised["amended_after_push"] >= 1

    # A period naming a PO nobody has, then that PO arriving for another customer: the period's
    # result names its owner, though only the owner's POs changed.
    store(app, period("CUST-WAYNE", 3, po_number="PO-ELSEWHERE"))
    assert synced(app)["customers_reconciled"] == 1
    assert any("not among the POs of CUST-WAYNE" in r and "belongs" not in r for r in reasons(app))
    store(app, po("PO-ELSEWHERE", "CUST-UMBRELLA"))
    assert synced(app)["customers_reconciled"] == 2
    assert any("it belongs to CUST-UMBRELLA" in r for r in reasons(app))

    # A PO of no known customer: the '' scope, reported unused with its unknown buyer. A new PO
    # number may be the one a period could not find: Wayne's is looked at again too.
    store(app, po("PO-STRAY", "CUST-ACME", buyer="stray.example"))
    assert synced(app)["customers_reconciled"] == 2
    assert any("stray.example" in r for r in reasons(app))

    # A PO rejected by support: its customer alone.
    with app.engine.begin() as conn:
        [row] = acks.latest(conn, app.tenant, "PO-UMBRELLA-1")
        assert acks.decide(conn, row, AckDecision.REJECT, "not ours", NOW, can_acknowledge=False)
    assert synced(app)["customers_reconciled"] == 1


def test_a_po_moved_to_another_customer_after_invoicing_ties_the_two_together(app: Connector) -> None:
    synced_book(app)

    # Acme's invoiced PO now names Globex's buyer: both customers reconcile.
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="31", buyer="globex.example"))
    moved = synced(app)
    assert moved["customers_reconciled"] == 2 and moved["amended_after_push"] == 1

    # Acme's sent invoice still draws on the PO, now Globex's: a change to Globex's billing
    # reconciles Acme too, as the PO's balance is shared.
    store(app, period("CUST-GLOBEX", 2, seats="5"))
    assert synced(app)["customers_reconciled"] == 2
    # Nothing else changed: nothing reconciles.
    assert synced(app)["reconcile_unchanged"] == 1


def test_a_sync_after_one_that_wrote_nothing_it_reads_digests_nothing(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from state import reconcile_checkpoints

    store(app, po("PO-ACME-1", "CUST-ACME"), period("CUST-ACME", 1), period("CUST-ACME", 2))
    store(app, po("PO-WAYNE-1", "CUST-WAYNE"), period("CUST-WAYNE", 1))
    store(app, po("PO-GLOBEX-1", "CUST-GLOBEX"), period("CUST-GLOBEX", 1))
    first = synced(app)
    assert first["invoices_pushed"] == 4
    digest = reconcile_checkpoints.current_inputs

    def refused(*args: Any) -> None:
        raise AssertionError("the inputs were digested")

    # The push after the reconciliation wrote nothing reconciliation reads.
    monkeypatch.setattr(reconcile_checkpoints, "current_inputs", refused)
    again = jobs.sync(app)
    assert again["reconcile_unchanged"] == 1 and again["matched"] == first["matched"]

    # A note whose write left the digests as they were (as after an upgrade): digested once.
    monkeypatch.setattr(reconcile_checkpoints, "current_inputs", digest)
    with app.engine.begin() as conn:
        conn.execute(insert(reconcile_input_changes).values(tenant=app.tenant, txid=0))
    assert jobs.sync(app)["reconcile_unchanged"] == 1
    monkeypatch.setattr(reconcile_checkpoints, "current_inputs", refused)
    assert jobs.sync(app)["reconcile_unchanged"] == 1

    monkeypatch.setattr(reconcile_checkpoints, "current_inputs", digest)
    store(app, period("CUST-ACME", 2, seats="12"))
    assert synced(app)["customers_reconciled"] == 1


def synced_book(app: Connector) -> list[str]:
    """Each customer's PO and one month's period, synced; the customers."""
    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers])
    store(app, *[period(ref, 1) for ref in customers])
    synced(app)
    return customers


def full_digests_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per digest of every input taken from now on."""
    digest_all = reconcile_checkpoints.current_inputs
    calls: list[str] = []

    def counted(*args: Any) -> ReconcileInputs:
        calls.append("every input")
        return digest_all(*args)

    monkeypatch.setattr(reconcile_checkpoints, "current_inputs", counted)
    return calls


def test_after_some_customers_only_theirs_are_digested_again(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_book(app)
    calls = full_digests_counted(monkeypatch)
    store(app, period("CUST-ACME", 1, seats="12"))
    assert jobs.sync(app)["customers_reconciled"] == 1
    assert calls == ["every input"]  # to find what changed; after, Acme's rows alone


def test_the_digest_holds_the_scopes_of_moved_pos_only(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.reconcile.service import _scope_resolver

    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers])
    store(app, *[period(ref, month) for ref in customers for month in (1, 2)])
    synced(app)
    keyed: list[str] = []
    real = reconcile_checkpoints.po_key

    def counted(*parts: str) -> str:
        keyed.append(parts[2])
        return real(*parts)

    monkeypatch.setattr(reconcile_checkpoints, "po_key", counted)

    def digest() -> ReconcileInputs:
        with app.connect() as conn:
            return reconcile_checkpoints.current_inputs(conn, app.tenant, "settings", _scope_resolver(app))

    # Ten outbox rows find their POs' scopes a slice at a time: no map of every PO is made.
    assert digest().scopes.keys() == set(customers) and keyed == []
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="31", buyer="globex.example"))
    moved = digest()
    assert keyed == ["PO-ACME-1"]
    assert moved.scopes["CUST-ACME"] == moved.scopes["CUST-GLOBEX"]  # its sent invoices tie the two


def test_invoices_without_a_po_are_digested_as_their_customers_alone(app: Connector) -> None:
    # Hooli issues no POs (po_required = false): its invoices carry no PO key. (Each checkpoint
    # is checked against a full digest by `recorded_as_digested`.)
    store(app, po("PO-ACME-1", "CUST-ACME"), period("CUST-ACME", 1), period("CUST-HOOLI", 1))
    first = jobs.sync(app)
    assert first["matched"] == 2 and first["invoices_pushed"] == 2
    with app.connect() as conn:
        assert "" in conn.execute(select(invoice_outbox.c.po_key)).scalars().all()
    store(app, period("CUST-HOOLI", 2))
    assert jobs.sync(app)["customers_reconciled"] == 1
    assert jobs.sync(app)["reconcile_unchanged"] == 1


def test_past_one_list_of_customers_the_checkpoint_digests_every_one(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_book(app)
    monkeypatch.setattr(reconcile_checkpoints, "MAX_SCOPES", 1)
    calls = full_digests_counted(monkeypatch)
    # A PO moved after invoicing ties two customers: two scopes, past the (lowered) limit.
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="31", buyer="globex.example"))
    assert jobs.sync(app)["customers_reconciled"] == 2
    assert calls == ["every input", "every input"]  # to find what changed, and after


def test_most_of_the_book_changed_reconciles_in_full(app: Connector) -> None:
    customers = synced_book(app)
    store(app, *[period(ref, 1, seats="11") for ref in customers[:3]])
    assert "customers_reconciled" not in synced(app)


@pytest.mark.parametrize("bound", ["CUSTOMERS_PER_BATCH", "INPUT_ROWS_PER_BATCH"])
def test_a_full_reconcile_in_batches_of_customers_ends_as_one_in_a_single_batch(
    app: Connector, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    from connector.reconcile import service

    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers])
    store(app, *[period(ref, month) for ref in customers for month in (1, 2)])
    # A period naming another customer's PO, and a PO of no known customer.
    store(app, period("CUST-WAYNE", 3, po_number="PO-ACME-1"), po("PO-STRAY", "CUST-ACME", buyer="x.example"))
    synced(app)
    # Acme's invoiced PO moves to Globex: the two are tied and must share a batch.
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="31", buyer="globex.example"))
    store(app, period("CUST-GLOBEX", 3, seats="5"))

    batches = batches_recorded(monkeypatch)
    monkeypatch.setattr(service, bound, 1)
    batched = jobs.reconcile(app)
    assert batched["exit_code"] == 0
    # One batch per customer, but Acme and Globex (tied by the moved PO) share one.
    assert len(batches) == len(customers) and {"CUST-ACME", "CUST-GLOBEX"} in batches
    assert any("it belongs to CUST-GLOBEX" in r for r in reasons(app))
    results, rows = results_of(app), outbox_of(app)
    monkeypatch.setattr(service, bound, 100_000)
    batches.clear()
    whole = jobs.reconcile(app)
    assert len(batches) == 1
    assert (whole["invoices_planned"], whole["invoices_withdrawn"], whole.get("amended_after_push", 0)) == (
        0,
        0,
        0,
    )
    assert results_of(app) == results and outbox_of(app) == rows


def test_the_changed_customers_reconcile_in_batches_too(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.reconcile import service

    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers], po("PO-WAYNE-2", "CUST-WAYNE"))
    store(app, *[period(ref, 1) for ref in customers])
    synced(app)  # PO-WAYNE-2 is unused
    batches = batches_recorded(monkeypatch)
    monkeypatch.setattr(service, "CUSTOMERS_PER_BATCH", 1)
    # Two customers changed apart: a batch each (and `synced` checks they end as a full reconcile).
    store(app, period("CUST-WAYNE", 1, seats="11"), period("CUST-UMBRELLA", 1, seats="12"))
    assert synced(app)["customers_reconciled"] == 2
    assert batches[:2] == [{"CUST-UMBRELLA"}, {"CUST-WAYNE"}]
    # Two customers' POs revised: each batch reads its own customer's POs only.
    batches.clear()
    store(app, po("PO-WAYNE-2", "CUST-WAYNE", quantity="32"), po("PO-UMBRELLA-1", "CUST-UMBRELLA", "33"))
    assert synced(app)["customers_reconciled"] == 2
    assert batches[:2] == [{"CUST-UMBRELLA"}, {"CUST-WAYNE"}]
    # Two customers tied by a moved PO: one batch, whatever the bound.
    batches.clear()
    store(app, po("PO-ACME-1", "CUST-ACME", quantity="31", buyer="globex.example"))
    assert synced(app)["customers_reconciled"] == 2
    assert batches[0] == {"CUST-ACME", "CUST-GLOBEX"}


def test_plans_stored_a_few_at_a_time_end_as_stored_at_once(
    app: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.reconcile import service

    monkeypatch.setattr(service, "PLANS_PER_WRITE", 3)  # 10 plans: three writes of 3 and one of 1
    customers = sorted(BUYERS)
    store(app, *[po(f"PO-{ref[5:]}-1", ref) for ref in customers])
    store(app, *[period(ref, month) for ref in customers for month in (1, 2)])
    first = synced(app)
    assert (first["invoices_planned"], first["invoices_pushed"], first["dead"]) == (10, 6, 4)


def test_a_batch_reads_its_customers_rows_by_index_not_every_row(app: Connector) -> None:
    from sqlalchemy import event

    synced_book(app)
    store(app, period("CUST-WAYNE", 1, seats="11"), po("PO-WAYNE-1", "CUST-WAYNE", quantity="32"))
    statements: dict[str, Any] = {}

    @event.listens_for(app.engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not executemany and ("customer_ref IN" in statement or "reconciled_customer IN" in statement):
            statements.setdefault(statement, parameters)
        if not executemany and "reconciled_hash IS NULL OR" in statement:
            statements.setdefault(statement, parameters)

    assert jobs.sync(app)["customers_reconciled"] == 1
    event.remove(app.engine, "before_cursor_execute", keep)
    # The POs, periods, results and invoices of the batch, and the POs to resolve: every read
    # is a search on a customer (or moved-PO) index, however large the book around it.
    assert len(statements) >= 6
    with app.connect() as conn:
        for statement, parameters in statements.items():
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            steps = " / ".join(row[-1] for row in plan)
            assert "customer" in steps or "ix_po_records_moved" in steps, f"{statement}\n{steps}"
            assert not steps.startswith("SCAN"), steps
