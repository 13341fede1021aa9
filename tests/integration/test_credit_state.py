"""Credit notes in the state store on SQLite and PostgreSQL: planned once, balance and period freed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from connector.model import InvoicePlan, RemoteRef
from connector.planning import plan_credit_note
from state import credits, outbox, outbox_queries
from state.tables import invoice_outbox
from tests.support.factories import make_plan
from tests.support.state_engines import DATABASES, migrated_engine

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def _planner(invoice: InvoicePlan, remote_id: str) -> InvoicePlan:
    return plan_credit_note(invoice, reason="seats cancelled", issue_date=NOW.date(), remote_id=remote_id)


def _sent(engine: Engine, plan: InvoicePlan) -> None:
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
        [item] = outbox.claim_due(
            conn, tenant="default", sink=plan.sink, owner="run-1", now=NOW, lease_seconds=60, limit=10
        )
        ref = RemoteRef(remote_id="remote-7", invoice_number=plan.invoice_number, total=plan.total)
        assert outbox.mark_pushed(conn, item.idempotency_key, "run-1", ref, NOW)


def test_a_credit_is_planned_once_and_gives_the_po_draw_back(engine: Engine) -> None:
    plan = make_plan(1)
    _sent(engine, plan)
    with engine.begin() as conn:
        assert [c.po_key for c in outbox_queries.consumption(conn, "default")] == [plan.po_key]
        first = credits.credit_invoice(
            conn, "default", plan.invoice_number, plan_credit=_planner, reissue=False, now=NOW
        )
        again = credits.credit_invoice(
            conn, "default", plan.invoice_number, plan_credit=_planner, reissue=False, now=NOW
        )
        assert [item.newly_planned for item in first] == [True] and [
            item.newly_planned for item in again
        ] == [False]
        assert first[0].credit_number == again[0].credit_number
        rows = conn.execute(select(invoice_outbox.c.document_type, invoice_outbox.c.state)).all()
        assert sorted(map(tuple, rows)) == [("credit_note", "planned"), ("invoice", "pushed")]
        assert outbox_queries.consumption(conn, "default") == []
        # not reissued: the period stays held by the credited invoice
        assert [row["invoice_number"] for row in outbox_queries.sent_rows(conn, "default")] == [
            plan.invoice_number
        ]
        assert credits.reissues(conn, "default") == {}
        [claimed] = outbox.claim_due(
            conn, tenant="default", sink=plan.sink, owner="r2", now=NOW, lease_seconds=60, limit=10
        )
        assert claimed.plan.is_credit_note and claimed.plan.credits is not None
        assert claimed.plan.credits.remote_id == "remote-7"
        # a credit note is never withdrawn as unmatched
        assert outbox.withdraw_unjustified(conn, "default", set(), NOW, "gone") == []


def test_a_reissue_frees_the_period_and_numbers_the_next_invoice(engine: Engine) -> None:
    plan = make_plan(2)
    _sent(engine, plan)
    with engine.begin() as conn:
        credits.credit_invoice(
            conn, "default", plan.invoice_number, plan_credit=_planner, reissue=True, now=NOW
        )
        assert outbox_queries.sent_rows(conn, "default") == []
        found = credits.reissues(conn, "default")
        assert {key: (r.issue, r.issued_on) for key, r in found.items()} == {
            plan.billing_key: (1, date(2026, 12, 7))
        }


def test_an_invoice_not_known_to_be_sent_is_not_credited(engine: Engine) -> None:
    plan = make_plan(3)
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
        with pytest.raises(credits.CreditRefused, match="not known to be in every sink"):
            credits.credit_invoice(
                conn, "default", plan.invoice_number, plan_credit=_planner, reissue=False, now=NOW
            )
        with pytest.raises(credits.CreditRefused, match="no invoice"):
            credits.credit_invoice(conn, "default", "INV-NOPE", plan_credit=_planner, reissue=False, now=NOW)
