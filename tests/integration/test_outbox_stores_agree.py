"""The in-memory outbox follows the SQL outbox's rules: the same steps leave the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connector.errors import RetryableError
from connector.model import RemoteRef
from state import outbox
from state.db import ensure_schema, make_engine
from state.memory_outbox import MemoryOutbox
from state.outbox_store import OutboxStore, SqlOutboxStore
from state.tables import invoice_outbox
from tests.support.factories import make_plan

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PLANS = [make_plan(n) for n in (1, 2, 3)]


def steps(store: OutboxStore) -> list[Any]:
    """Claims, a take-over of a dead run's claim, each outcome; what each step answered."""
    seen: list[Any] = []
    first = store.claim_due(tenant="default", sink="files", owner="a", now=NOW, lease_seconds=60, limit=2)
    seen.append([(i.plan.invoice_number, i.attempts, i.uncertain) for i in first])
    seen.append(sorted(store.still_held([i.idempotency_key for i in first], "a", NOW)))
    seen.append(store.mark_pushed(first[0].idempotency_key, "a", RemoteRef(remote_id="r1"), NOW))
    # run a dies holding the second row; b takes it over once the claim ran out
    later = NOW + timedelta(seconds=61)
    second = store.claim_due(tenant="default", sink="files", owner="b", now=later, lease_seconds=60, limit=5)
    seen.append(sorted((i.plan.invoice_number, i.attempts, i.uncertain) for i in second))
    store.mark_failed(second[0].idempotency_key, "a", RetryableError("late"), later, dead=False)  # not a's
    store.mark_failed(
        second[0].idempotency_key, "b", RetryableError("503"), later, dead=False, uncertain=True
    )
    store.release([i.idempotency_key for i in second[1:]], "b", later, sent=True)
    seen.append(store.count_by_state("default"))
    return seen


def test_the_memory_outbox_and_the_sql_outbox_answer_alike(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.begin() as conn:
        for plan in PLANS:
            outbox.upsert_plan(conn, plan, NOW - timedelta(seconds=1))
    memory = MemoryOutbox()
    for plan in PLANS:
        memory.plan(plan, NOW - timedelta(seconds=1))
    assert steps(SqlOutboxStore(lambda: engine)) == steps(memory)
    with engine.connect() as conn:
        sql_rows = {
            row.invoice_number: (row.state, bool(row.uncertain), row.lease_owner)
            for row in conn.execute(select(invoice_outbox))
        }
    memory_rows = {
        row.plan.invoice_number: (row.state, row.uncertain, row.lease_owner) for row in memory.rows.values()
    }
    assert sql_rows == memory_rows


def test_both_outboxes_claim_by_issue_date_then_in_planning_order(tmp_path: Path) -> None:
    """An ERP numbering invoices from a sequence refuses one dated before an invoice it
    numbered: whatever order plans were made in, the earliest issue date goes first."""
    from datetime import date

    dated = [
        make_plan(n).model_copy(update={"issue_date": day})
        for n, day in ((1, date(2026, 11, 1)), (2, date(2026, 10, 1)), (3, date(2026, 11, 1)))
    ]
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.begin() as conn:
        for plan in dated:
            outbox.upsert_plan(conn, plan, NOW)
    memory = MemoryOutbox()
    for plan in dated:
        memory.plan(plan, NOW)
    for store in (SqlOutboxStore(lambda: engine), memory):
        claimed = store.claim_due(
            tenant="default", sink="files", owner="a", now=NOW, lease_seconds=60, limit=5
        )
        assert [item.plan.po_number for item in claimed] == ["PO-2", "PO-1", "PO-3"]
