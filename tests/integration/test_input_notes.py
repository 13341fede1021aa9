"""Triggers note a tenant whenever its reconcile inputs are written, and only then.

What a sync with nothing new relies on to skip digesting every input: a write of what
reconciliation reads always leaves a note (whoever writes it), a push or a send never does, and
a reconciliation clears exactly the notes it accounted for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import Connection, Engine, delete, insert, select, update

from connector.errors import RemoteError
from connector.model import AckDecision, BillingPeriod, RemoteRef
from state import billing_store, ingest, input_notes, outbox
from state.db import make_engine, upgrade
from state.tables import (
    billing_records,
    invoice_outbox,
    metadata,
    po_acknowledgements,
    po_records,
    reconcile_checkpoints,
    reconcile_input_changes,
)
from tests.support.factories import make_plan, make_po
from tests.support.state_engines import DATABASES, migrated_engine
from tests.unit.test_reconcile import make_period as period_of

WATCHED_TABLES = ("po_records", "billing_records", "invoice_outbox", "po_acknowledgements")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def make_period(subscription_id: str = "SUB-1", quantity: str = "2") -> BillingPeriod:
    return period_of("CUST-ACME", [("PLAN-PRO", quantity, "100.00")], subscription=subscription_id)


VERSIONS = Path(__file__).parents[2] / "state" / "migrations" / "versions"


def _migration(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def noted(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row.tenant for row in conn.execute(select(reconcile_input_changes.c.tenant))]


def forget_notes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(reconcile_input_changes))


ACK = {
    "tenant": "default",
    "po_key": "default/inbox/PO-1",
    "revision": 1,
    "source": "inbox",
    "po_number": "PO-1",
    "decision": AckDecision.ACCEPT.value,
    "state": "planned",
    "created_at": NOW,
    "updated_at": NOW,
}


@pytest.fixture
def books(engine: Engine) -> Engine:
    """One PO, one billing period, one planned invoice and one acknowledgement; no note."""
    with engine.begin() as conn:
        ingest.store_po(conn, make_po(), "{}", "test", NOW, None)
        billing_store.store_billing_period(conn, make_period(), NOW)
        outbox.upsert_plan(conn, make_plan(), NOW)
        conn.execute(insert(po_acknowledgements).values(**ACK))
    assert noted(engine) == ["default"]
    forget_notes(engine)
    return engine


def _give_up(conn: Connection) -> None:
    (claimed,) = outbox.claim_due(
        conn, tenant="default", sink="files", owner="run-1", now=NOW, lease_seconds=60, limit=5
    )
    outbox.mark_failed(conn, claimed.idempotency_key, "run-1", RemoteError("refused"), NOW, dead=True)
    assert conn.execute(select(invoice_outbox.c.state)).scalar_one() == "dead"


def _set_outbox(**values: object) -> Callable[[Connection], object]:
    return lambda conn: conn.execute(update(invoice_outbox).values(**values))


WRITES: dict[str, Callable[[Connection], object]] = {
    "a new PO": lambda conn: ingest.store_po(conn, make_po("PO-2"), "{}", "test", NOW, None),
    "a revised PO": lambda conn: ingest.store_po(conn, make_po(quantity="24"), "{}", "test", NOW, None),
    "a PO gone": lambda conn: conn.execute(delete(po_records)),
    "a PO's stamp": lambda conn: conn.execute(update(po_records).values(reconciled_customer="CUST-ACME")),
    "a new billing period": lambda conn: billing_store.store_billing_period(
        conn, make_period(subscription_id="SUB-2"), NOW
    ),
    "a changed billing period": lambda conn: billing_store.store_billing_period(
        conn, make_period(quantity="3"), NOW
    ),
    "a billing period gone": lambda conn: conn.execute(delete(billing_records)),
    "a new plan": lambda conn: outbox.upsert_plan(conn, make_plan(2), NOW),
    "a changed plan": lambda conn: outbox.upsert_plan(conn, make_plan(quantity="3"), NOW),
    "an invoice gone dead": lambda conn: _give_up(conn),
    "a withdrawn plan": _set_outbox(state="withdrawn"),
    "an invoice flagged amended": _set_outbox(amended_after_push=True, amended_detail="quantity"),
    "a credit note's link": _set_outbox(credited_by="k" * 64, reissue=True),
    "a rejection": lambda conn: conn.execute(
        update(po_acknowledgements).values(decision=AckDecision.REJECT.value)
    ),
    "a new revision's acknowledgement": lambda conn: conn.execute(
        insert(po_acknowledgements).values(**{**ACK, "revision": 2})
    ),
}


@pytest.mark.parametrize("write", WRITES, ids=list(WRITES))
def test_writing_what_reconciliation_reads_notes_the_tenant(books: Engine, write: str) -> None:
    with books.begin() as conn:
        WRITES[write](conn)
    assert noted(books) == ["default"]


def test_pushing_sending_and_seeing_again_note_nothing(books: Engine) -> None:
    later = NOW + timedelta(hours=1)
    with books.begin() as conn:
        (claimed,) = outbox.claim_due(
            conn, tenant="default", sink="files", owner="run-1", now=later, lease_seconds=60, limit=5
        )
        outbox.mark_failed(
            conn, claimed.idempotency_key, "run-1", RemoteError("timeout"), later, dead=False, uncertain=True
        )
        conn.execute(update(invoice_outbox).values(next_attempt_at=later))
        (claimed,) = outbox.claim_due(
            conn, tenant="default", sink="files", owner="run-2", now=later, lease_seconds=60, limit=5
        )
        assert outbox.mark_pushed(conn, claimed.idempotency_key, "run-2", RemoteRef(remote_id="INV-1"), later)
        conn.execute(update(invoice_outbox).values(flag_acked_at=later, flag_ack_note="seen"))
        conn.execute(
            update(po_acknowledgements).values(state="sent", attempts=1, sent_at=later, updated_at=later)
        )
        # The same PO and billing period pulled again: seen, not changed.
        assert ingest.store_po(conn, make_po(), "{}", "test", later, None).outcome == "unchanged"
        assert billing_store.store_billing_period(conn, make_period(), later) == "unchanged"
    assert noted(books) == []


def test_a_dead_invoice_noted_once_more_when_found_uncertain(books: Engine) -> None:
    with books.begin() as conn:
        _give_up(conn)
    forget_notes(books)
    with books.begin() as conn:  # reconciliation reads a dead row's uncertainty: it still holds its period
        conn.execute(update(invoice_outbox).values(uncertain=True))
    assert noted(books) == ["default"]


def test_notes_are_per_tenant(books: Engine) -> None:
    with books.begin() as conn:
        ingest.store_po(conn, make_po().model_copy(update={"tenant": "other"}), "{}", "test", NOW, None)
    assert noted(books) == ["other"]


def test_a_reconciliation_clears_the_notes_before_it_and_its_own(books: Engine) -> None:
    with books.begin() as conn:
        ingest.store_po(conn, make_po("PO-2"), "{}", "test", NOW, None)
    with books.begin() as conn:
        since = input_notes.horizon(conn)
        assert input_notes.written_since_checkpoint(conn, "default")
        outbox.upsert_plan(conn, make_plan(2), NOW)  # its own write
        input_notes.clear(conn, "default", since)
        assert not input_notes.written_since_checkpoint(conn, "default")
    assert noted(books) == []


def test_a_writer_still_open_when_a_reconciliation_began_keeps_its_note(books: Engine) -> None:
    if books.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no writer is open while a reconciliation runs")
    with books.connect() as writer, books.begin() as reconciliation:
        writer.begin()
        ingest.store_po(writer, make_po("PO-2"), "{}", "test", NOW, None)
        since = input_notes.horizon(reconciliation)
        writer.commit()  # committed after the reconciliation began: maybe not in what it read
        outbox.upsert_plan(reconciliation, make_plan(2), NOW)
        input_notes.clear(reconciliation, "default", since)
    assert noted(books) == ["default"]
    with books.begin() as conn:
        input_notes.clear(conn, "default", input_notes.horizon(conn))
    assert noted(books) == []


def test_every_column_is_watched_or_ignored() -> None:
    """Each migration since 0013 says of the columns it adds to these tables which side they are on."""
    watched: dict[str, set[str]] = {}
    ignored: dict[str, set[str]] = {}
    for path in sorted(VERSIONS.glob("0*.py")):
        migration = _migration(path)
        for sides, given in (
            (watched, getattr(migration, "WATCHED", {})),
            (ignored, getattr(migration, "IGNORED", {})),
        ):
            for table, columns in given.items():
                sides.setdefault(table, set()).update(columns)
    assert set(watched) == set(ignored) == set(WATCHED_TABLES)
    for table in watched:
        assert not watched[table] & ignored[table], table
        assert watched[table] | ignored[table] == {c.name for c in metadata.tables[table].columns}, table


def test_every_watched_table_keeps_its_triggers_at_head(engine: Engine) -> None:
    query = (
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"
        if engine.dialect.name == "sqlite"
        else "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE NOT t.tgisinternal"
    )
    with engine.connect() as conn:
        triggers = {(table, name) for table, name in conn.exec_driver_sql(query)}
    kinds = ("inserted", "deleted", "moved") if engine.dialect.name == "sqlite" else ("written", "moved")
    expected = {(table, f"{table}_note_{kind}") for table in WATCHED_TABLES for kind in kinds}
    assert triggers == expected


def test_upgrading_notes_every_tenant_with_a_checkpoint(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine, "0012")
    with engine.begin() as conn:
        conn.execute(
            insert(reconcile_checkpoints).values(
                tenant="default", inputs_digest="d", settings_digest="s", owners_digest="o", computed_at=NOW
            )
        )
    upgrade(engine)
    assert noted(engine) == ["default"]
