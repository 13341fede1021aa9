"""The state store on real SQLite and PostgreSQL: migrations, PO revisions, outbox protocol, leases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from connector.errors import InputProblem, RejectedError
from connector.model import AckDecision, BillingPeriod, Money, POStatus, RemoteRef
from state import billing_store, ingest, outbox, outbox_queries, quarantine_store, runs
from state.db import current_revision, ensure_schema, head_revision, make_engine
from state.tables import invoice_outbox, po_records, po_revisions
from tests.support.factories import make_plan, make_po
from tests.support.state_engines import DATABASES, migrated_engine, query_plans

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def test_schema_is_migrated_to_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_sqlite_runs_in_wal_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_unchanged_po_costs_no_revision_and_a_change_records_line_diff(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ingest.store_po(conn, make_po(), "raw", "doc", NOW, None).outcome == "new"
        assert ingest.store_po(conn, make_po(), "raw", "doc", NOW, None).outcome == "unchanged"
        later = datetime(2026, 2, 1, tzinfo=UTC)
        write = ingest.store_po(conn, make_po(quantity="24", updated=later), "raw2", "doc2", NOW, None)
        assert (write.outcome, write.revision) == ("revised", 2)
        history = ingest.po_revision_history(conn, "default", "PO-1")
        assert [h["revision"] for h in history] == [1, 2]
        assert history[1]["changes"] == [
            {"kind": "supplier", "line_no": 1, "change": "modified", "fields": {"quantity": ["12", "24"]}}
        ]
        assert history[1]["kind"] == "supplier"
        assert len(conn.execute(select(po_revisions)).all()) == 2


def _later(day: int) -> datetime:
    return datetime(2026, 2, day, tzinfo=UTC)


def test_an_internal_only_change_keeps_the_revision_and_is_not_a_change(engine: Engine) -> None:
    po = make_po(revision=2).model_copy(update={"source_version": "2", "approver": "ann"})
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
        internal = po.model_copy(
            update={"approver": "bob", "extrinsics": {"CostCenter": "42"}, "source_updated_at": _later(1)}
        )
        write = ingest.store_po(conn, internal, "raw2", "doc", NOW, None)
        assert (write.outcome, write.revision, write.changed) == ("internal", 2, False)
        assert [c["field"] for c in write.changes] == ["approver", "extrinsics"]
        assert {c["kind"] for c in write.changes} == {"internal"}
        stored = ingest.load_pos(conn, "default")[0]
        assert (stored.revision, stored.source_version, stored.approver) == (2, "2", "bob")
        history = ingest.po_revision_history(conn, "default", "PO-1")
        assert [(h["revision"], h["source_version"], h["kind"]) for h in history] == [
            (2, "2", "supplier"),
            (2, "2", "internal"),
        ]


def test_a_close_keeps_the_revision_and_names_the_status_change(engine: Engine) -> None:
    po = make_po()
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
        closed = po.model_copy(
            update={"status": POStatus.CLOSED, "source_status": "closed", "source_updated_at": _later(1)}
        )
        write = ingest.store_po(conn, closed, "raw2", "doc", NOW, None)
        assert (write.outcome, write.revision, write.changed) == ("status", 1, True)
        history = ingest.po_revision_history(conn, "default", "PO-1")
        assert history[-1]["kind"] == "status"
        assert history[-1]["changes"] == [
            {"kind": "status", "field": "source_status", "from": "", "to": "closed"},
            {"kind": "status", "field": "status", "from": "open", "to": "closed"},
        ]
        assert ingest.load_pos(conn, "default")[0].status is POStatus.CLOSED


def test_every_recorded_change_lists_what_changed(engine: Engine) -> None:
    po = make_po()
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
        # A header-only change (the term) is a supplier-visible revision with a non-empty list.
        longer = po.model_copy(update={"term_end": date(2027, 6, 30), "source_updated_at": _later(1)})
        write = ingest.store_po(conn, longer, "raw2", "doc", NOW, None)
        assert (write.outcome, write.revision) == ("revised", 2)
        assert write.changes == (
            {"kind": "supplier", "field": "term_end", "from": "2026-12-31", "to": "2027-06-30"},
        )
        for entry in ingest.po_revision_history(conn, "default", "PO-1"):
            assert entry["changes"], entry


def test_the_buyers_version_is_kept_beside_our_revision(engine: Engine) -> None:
    with engine.begin() as conn:
        first = make_po(revision=2).model_copy(update={"source_version": "2"})
        ingest.store_po(conn, first, "raw", "doc", NOW, None)
        # The buyer's next version changes a price: our next revision, and its version label.
        second = make_po(revision=3, price="90.00", updated=_later(1)).model_copy(
            update={"source_version": "3"}
        )
        write = ingest.store_po(conn, second, "raw2", "doc", NOW, None)
        assert (write.outcome, write.revision) == ("revised", 3)
        # The same content again with only a new version label is no change, but the label is kept.
        relabelled = second.model_copy(update={"source_version": "4", "source_updated_at": _later(2)})
        assert ingest.store_po(conn, relabelled, "raw3", "doc", NOW, None).outcome == "unchanged"
        row = conn.execute(select(po_records.c.revision, po_records.c.source_version)).one()
        assert (row.revision, row.source_version) == (3, "4")
        assert ingest.load_pos(conn, "default")[0].source_version == "4"


def test_an_older_message_does_not_overwrite_a_newer_revision(engine: Engine) -> None:
    with engine.begin() as conn:
        ingest.store_po(
            conn, make_po(quantity="24", updated=datetime(2026, 3, 1, tzinfo=UTC)), "r", "d", NOW, None
        )
        stale = ingest.store_po(
            conn, make_po(quantity="10", updated=datetime(2026, 1, 1, tzinfo=UTC)), "r", "d", NOW, None
        )
        assert stale.outcome == "stale"
        assert ingest.load_pos(conn, "default")[0].lines[0].quantity == 24


def test_processed_inputs_are_found_among_many_keys_in_chunks(engine: Engine) -> None:
    now = datetime.now(UTC)
    keys = [f"message-{n}|read" for n in range(1_203)]  # more than two chunks of one IN list
    with engine.begin() as conn:
        for key in keys[::3]:
            assert ingest.mark_processed(conn, "t1", "inbox", key, "doc", now, None)
        ingest.mark_processed(conn, "t2", "inbox", keys[1], "doc", now, None)  # another tenant's
        ingest.mark_processed(conn, "t1", "other", keys[2], "doc", now, None)  # another source's
    with engine.connect() as conn:
        assert ingest.processed_among(conn, "t1", "inbox", [*keys, keys[0]]) == set(keys[::3])
        assert ingest.processed_among(conn, "t1", "inbox", []) == set()


def test_same_quarantine_problem_is_stored_once(engine: Engine) -> None:
    problem = InputProblem("billing", "billing.csv", "row 3", "quantity", "x", "not a number")
    with engine.begin() as conn:
        assert quarantine_store.quarantine_problems(conn, "default", "billing", [problem], NOW, None) == 1
        assert quarantine_store.quarantine_problems(conn, "default", "billing", [problem], NOW, None) == 0
        assert quarantine_store.count_quarantine(conn, "default") == {"billing": 1}


def test_plan_is_stored_once_per_idempotency_key(engine: Engine) -> None:
    plan = make_plan()
    with engine.begin() as conn:
        assert outbox.upsert_plan(conn, plan, NOW) == "planned"
        assert outbox.upsert_plan(conn, plan, NOW) == "unchanged"
        assert len(conn.execute(select(invoice_outbox)).all()) == 1


def _outbox_before_replanning(conn) -> None:  # type: ignore[no-untyped-def]
    """Plans 1-4 stored: 3 then pushed, 4 then withdrawn."""
    for n in (1, 2, 3, 4):
        outbox.upsert_plan(conn, make_plan(n), NOW)
    for item in outbox.claim_due(
        conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
    ):
        if item.plan.po_number == "PO-3":
            outbox.mark_pushed(conn, item.idempotency_key, "r1", RemoteRef(remote_id="x"), NOW)
    outbox.release(conn, [make_plan(n).idempotency_key for n in (1, 2, 4)], "r1", NOW)
    outbox.withdraw_unjustified(
        conn, "default", {make_plan(n).idempotency_key for n in (1, 2, 3)}, NOW, "gone"
    )


def test_plans_stored_together_end_as_stored_one_by_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import state.key_chunks

    monkeypatch.setattr(state.key_chunks, "KEYS_PER_QUERY", 2)  # stored rows read in several chunks
    plans = [
        make_plan(5),  # new
        make_plan(1),  # unchanged
        make_plan(2, quantity="3"),  # changed, never sent: updated
        make_plan(3, quantity="3"),  # changed after it was pushed: amended
        make_plan(4),  # withdrawn, matched again: planned
        make_plan(6),  # new ...
        make_plan(6, quantity="5"),  # ... and changed in the same call: updated
        make_plan(7),  # new, planned after the others
    ]
    columns = [c for c in invoice_outbox.c if c.name != "id"]
    stored = {}
    for how in ("one by one", "together"):
        with engine.begin() as conn:
            conn.execute(invoice_outbox.delete())
            _outbox_before_replanning(conn)
            if how == "one by one":
                outcomes = [outbox.upsert_plan(conn, plan, NOW) for plan in plans]
            else:
                outcomes = outbox.upsert_plans(conn, plans, NOW)
            rows = conn.execute(select(*columns).order_by(invoice_outbox.c.id)).all()
            stored[how] = (outcomes, [tuple(row) for row in rows])
    assert stored["together"] == stored["one by one"]
    outcomes, rows = stored["together"]
    assert outcomes == [
        *("planned", "unchanged", "updated", "amended"),
        *("planned", "planned", "updated", "planned"),
    ]
    assert [row[columns.index(invoice_outbox.c.po_number)] for row in rows][-3:] == ["PO-5", "PO-6", "PO-7"]


def test_changed_plan_after_push_is_flagged_not_recreated(engine: Engine) -> None:
    plan = make_plan()
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        outbox.mark_pushed(conn, item.idempotency_key, "r1", RemoteRef(remote_id="x", total=plan.total), NOW)
        revised = plan.model_copy(update={"po_revision": 2})
        assert outbox.upsert_plan(conn, revised, NOW) == "amended"
        row = conn.execute(select(invoice_outbox)).one()
        assert row.state == "pushed" and row.amended_after_push and row.po_revision == 1


def test_changed_plan_not_yet_sent_is_updated_in_place(engine: Engine) -> None:
    plan = make_plan()
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
        assert outbox.upsert_plan(conn, make_plan(quantity="3"), NOW) == "updated"
        assert conn.execute(select(invoice_outbox.c.amount)).scalar_one() == Money.of("300.00", "USD").amount


def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(engine: Engine) -> None:
    with engine.begin() as conn:
        outbox.upsert_plan(conn, make_plan(), NOW)
        first = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        assert len(first) == 1 and not first[0].uncertain
        assert (
            outbox.claim_due(
                conn, tenant="default", sink="files", owner="r2", now=NOW, lease_seconds=60, limit=10
            )
            == []
        )
        later = NOW + timedelta(seconds=61)
        [again] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r2", now=later, lease_seconds=60, limit=10
        )
        assert again.uncertain  # r1 may have sent it before dying: look it up first
        assert again.attempts == 2


def test_rows_of_a_reaped_run_are_claimable_at_once(engine: Engine) -> None:
    with engine.begin() as conn:
        outbox.upsert_plan(conn, make_plan(), NOW)
        outbox.claim_due(
            conn, tenant="default", sink="files", owner="dead-run", now=NOW, lease_seconds=600, limit=10
        )
        assert outbox.expire_leases_of(conn, ["dead-run"], NOW) == 1
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r2", now=NOW, lease_seconds=60, limit=10
        )
        assert item.uncertain


def test_rejected_row_goes_dead_with_provider_message_and_replay_brings_it_back(engine: Engine) -> None:
    with engine.begin() as conn:
        outbox.upsert_plan(conn, make_plan(), NOW)
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        error = RejectedError("Customer CUST-ACME unknown", status=400, correlation_id="tid-123")
        outbox.mark_failed(conn, item.idempotency_key, "r1", error, NOW, dead=True)
        [dead] = outbox_queries.list_rows(conn, "default", state="dead")
        assert dead["last_error"] == "Customer CUST-ACME unknown" and dead["correlation_id"] == "tid-123"
        assert outbox.replay(conn, "default", NOW, dead=True) == [item.idempotency_key]
        assert outbox_queries.list_rows(conn, "default", state="planned")


def test_replay_and_withdrawal_of_more_rows_than_one_statement_takes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import state.key_chunks

    monkeypatch.setattr(state.key_chunks, "KEYS_PER_QUERY", 2)  # 7 rows: four statements
    plans = [make_plan(n) for n in range(1, 8)]
    with engine.begin() as conn:
        for plan in plans:
            outbox.upsert_plan(conn, plan, NOW)
        items = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        for item in items:
            outbox.mark_failed(conn, item.idempotency_key, "r1", RejectedError("no"), NOW, dead=True)
        assert len(outbox.replay(conn, "default", NOW, dead=True)) == 7
        assert len(outbox_queries.list_rows(conn, "default", state="planned")) == 7
        gone = outbox.withdraw_unjustified(conn, "default", {plans[0].idempotency_key}, NOW, "gone")
        assert len(gone) == 6
        assert len(outbox_queries.list_rows(conn, "default", state="withdrawn")) == 6


def test_remote_total_differing_by_a_cent_is_flagged(engine: Engine) -> None:
    plan = make_plan()
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        wrong = Money(amount=plan.total.amount - Money.of("0.01", "USD").amount, currency="USD")
        outbox.mark_pushed(conn, item.idempotency_key, "r1", RemoteRef(remote_id="x", total=wrong), NOW)
        [flagged] = outbox_queries.list_rows(conn, "default", flagged=True)
        assert flagged["total_mismatch"]


def test_lease_is_exclusive_until_it_expires(engine: Engine) -> None:
    with engine.begin() as conn:
        assert runs.acquire_lease(conn, "sync:default", "run-a", NOW, 60)[0]
        acquired, holder, _ = runs.acquire_lease(conn, "sync:default", "run-b", NOW, 60)
        assert not acquired and holder is not None and holder.owner == "run-a"
        acquired, _, reaped = runs.acquire_lease(
            conn, "sync:default", "run-b", NOW + timedelta(seconds=61), 60
        )
        assert acquired and reaped == "run-a"


def test_lease_of_a_dead_local_process_is_taken_over_at_once(engine: Engine) -> None:
    with engine.begin() as conn:
        runs.acquire_lease(conn, "sync:default", "run-a", NOW, 600)
        conn.execute(runs.leases.update().values(pid=2**22 + 12345, host=runs.this_host()))  # no such process
        acquired, _, reaped = runs.acquire_lease(conn, "sync:default", "run-b", NOW, 600)
        assert acquired and reaped == "run-a"


def test_cursor_round_trips(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ingest.get_cursor(conn, "default", "coupa") is None
        ingest.set_cursor(conn, "default", "coupa", {"updated_at": "2026-11-01T00:00:00+00:00"}, NOW)
        ingest.set_cursor(conn, "default", "coupa", {"updated_at": "2026-11-02T00:00:00+00:00"}, NOW)
        assert ingest.get_cursor(conn, "default", "coupa") == {"updated_at": "2026-11-02T00:00:00+00:00"}


def test_billing_periods_are_stored_in_batches_with_each_outcome(engine: Engine) -> None:
    from state.tables import billing_records
    from tests.unit.test_reconcile import make_period

    def period(subscription: str, quantity: str) -> BillingPeriod:
        return make_period("CUST-ACME", [("PLAN-PRO", quantity, "40")], subscription=subscription)

    first = [period(f"SUB-{n}", "1") for n in range(1200)]  # more than one IN list's worth
    t1 = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:
        assert set(billing_store.store_billing_periods(conn, first, t1)) == {"new"}
    second = [period("SUB-0", "2"), period("SUB-1", "1"), period("SUB-NEW", "1"), period("SUB-NEW", "3")]
    t2 = t1 + timedelta(days=1)
    with engine.begin() as conn:
        outcomes = billing_store.store_billing_periods(conn, second, t2)
    assert outcomes == ["changed", "unchanged", "new", "changed"]
    with engine.connect() as conn:
        rows = {row.billing_key.split("/")[2]: row for row in conn.execute(select(billing_records)).all()}
        stored = {p.subscription_id: p for p in billing_store.load_billing_periods(conn, "default")}
    assert len(rows) == 1201
    assert stored["SUB-0"].lines[0].quantity == 2 and stored["SUB-NEW"].lines[0].quantity == 3
    assert rows["SUB-1"].last_seen_at == t2 and rows["SUB-2"].last_seen_at == t1
    assert rows["SUB-0"].first_seen_at == t1 and rows["SUB-NEW"].first_seen_at == t2


def test_revisions_read_without_alembic_agree_with_alembic(engine: Engine, tmp_path: Path) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from state.db import alembic_config, known_revisions

    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    assert known_revisions() == {script.revision for script in scripts.walk_revisions()}
    with engine.connect() as conn:
        assert current_revision(engine) == MigrationContext.configure(conn).get_current_revision()
    assert current_revision(make_engine(f"sqlite:///{tmp_path / 'empty.db'}")) is None


def _acme(canonical: str) -> str:
    return "CUST-ACME"


def test_the_reconcile_inputs_digest_moves_with_what_reconciliation_reads_only(engine: Engine) -> None:
    from state import acks, reconcile_checkpoints
    from tests.unit.test_reconcile import make_period

    def digest() -> str:
        with engine.connect() as conn:
            return reconcile_checkpoints.inputs_digest(conn, "default", "settings-1", _acme)

    empty = digest()
    with engine.connect() as conn:
        assert reconcile_checkpoints.inputs_digest(conn, "default", "settings-2", _acme) != empty
    po = make_po()
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
    with_po = digest()
    assert with_po != empty
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW + timedelta(hours=1), None)  # seen again, same
    assert digest() == with_po
    period = make_period("CUST-ACME", [("PLAN-PRO", "1", "40")], subscription="SUB-1")
    with engine.begin() as conn:
        billing_store.store_billing_periods(conn, [period], NOW)
    with_billing = digest()
    with engine.begin() as conn:
        billing_store.store_billing_periods(conn, [period], NOW + timedelta(hours=1))  # last_seen only
    assert digest() == with_billing
    with engine.begin() as conn:
        billing_store.store_billing_periods(
            conn, [make_period("CUST-ACME", [("PLAN-PRO", "2", "40")], subscription="SUB-1")], NOW
        )
    assert digest() != with_billing

    plan = make_plan()
    with engine.begin() as conn:
        outbox.upsert_plan(conn, plan, NOW)
    planned = digest()
    with engine.begin() as conn:  # pushing it: for reconciliation it draws and holds as before
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
    assert digest() == planned
    with engine.begin() as conn:
        outbox.mark_pushed(conn, item.idempotency_key, "r1", RemoteRef(remote_id="x", total=plan.total), NOW)
    assert digest() == planned
    other = make_plan(2, quantity="3")
    with engine.begin() as conn:
        outbox.upsert_plan(conn, other, NOW)
    two = digest()
    with engine.begin() as conn:  # gone dead, it draws nothing: reconcile again
        [item] = outbox.claim_due(
            conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=10
        )
        outbox.mark_failed(conn, item.idempotency_key, "r1", RejectedError("no", status=400), NOW, dead=True)
    assert digest() != two

    dead = digest()
    rejection = acks.Revision(po.key, 1, po.source, po.po_number, AckDecision.REJECT, "not ours", True)
    with engine.begin() as conn:
        assert acks.record_revisions(conn, "default", [rejection], NOW) == 1
    rejected = digest()
    assert rejected != dead

    # Stamped as the customer it resolves to, the PO's scopes (and its outbox rows', read by
    # key a slice at a time) are what they were while it was resolved from its content.
    with engine.begin() as conn:
        [(record_id, _, content)] = reconcile_checkpoints.pos_to_resolve(conn, "default", 0, 10, every=True)
        stamp = reconcile_checkpoints.PoStamp(record_id, "CUST-ACME", po.po_number, content)
        reconcile_checkpoints.stamp(conn, [stamp])
    with engine.connect() as conn:
        assert reconcile_checkpoints.inputs_digest(conn, "default", "settings-1", _refused) == rejected


def _refused(canonical: str) -> str:
    raise AssertionError("a stamped PO resolved again")


def test_an_outbox_row_finds_its_po_whatever_the_source_name_holds(engine: Engine) -> None:
    from state import reconcile_checkpoints

    # A source named with a '/', and one whose name is the first part of it.
    po = make_po("PO-9", source="mail/eu")
    decoy = make_po("eu/PO-9", source="mail")  # its key is "default/mail/eu/PO-9" as well
    plan = make_plan(9).model_copy(update={"po_key": po.key})
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
        outbox.upsert_plan(conn, plan, NOW)
        rows = reconcile_checkpoints.pos_to_resolve(conn, "default", 0, 10, every=True)
        reconcile_checkpoints.stamp(
            conn, [reconcile_checkpoints.PoStamp(rows[0][0], "CUST-GLOBEX", "PO-9", rows[0][2])]
        )
    with engine.connect() as conn:
        inputs = reconcile_checkpoints.current_inputs(conn, "default", "settings", _refused)
    # The Acme invoice draws on a PO now Globex's: one group of two.
    assert inputs.scopes["CUST-ACME"] == inputs.scopes["CUST-GLOBEX"]
    with engine.begin() as conn:
        ingest.store_po(conn, decoy, "raw", "doc", NOW, None)
        rows = reconcile_checkpoints.pos_to_resolve(conn, "default", rows[0][0], 10, every=True)
        reconcile_checkpoints.stamp(
            conn, [reconcile_checkpoints.PoStamp(rows[0][0], "CUST-WAYNE", "PO-9", rows[0][2])]
        )
    with engine.connect() as conn:
        inputs = reconcile_checkpoints.current_inputs(conn, "default", "settings", _refused)
    # Two POs of one key: the later one is the key's, as a map by key would have it.
    assert inputs.scopes["CUST-ACME"] == inputs.scopes["CUST-WAYNE"] != inputs.scopes["CUST-GLOBEX"]


def test_only_results_with_warnings_are_read_for_the_renewal_view(engine: Engine) -> None:
    from connector.model import MatchResult, MatchStatus, Reason
    from state import results

    near = Reason(code="term_ending", detail="PO-2 ends 2026-12-31")
    with engine.begin() as conn:
        results.replace_results(
            conn,
            "default",
            [
                MatchResult(status=MatchStatus.MATCHED, billing_key="b1", po_number="PO-1"),
                MatchResult(status=MatchStatus.MATCHED, billing_key="b2", po_number="PO-2", warnings=(near,)),
                MatchResult(status=MatchStatus.MISMATCH, billing_key="b3"),
            ],
            {},
            NOW,
            None,
        )
        warned = list(results.warned(conn, "default"))
    assert [(po, warnings) for po, _, warnings in warned] == [("PO-2", [near.model_dump()])]


def test_a_claim_reads_the_due_rows_in_order_from_the_claim_index_without_sorting(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.begin() as conn:
        for n in (3, 1, 2):
            outbox.upsert_plan(conn, make_plan(n), NOW - timedelta(seconds=1))
    claimed: list[str] = []

    def claim() -> None:
        with engine.begin() as conn:
            items = outbox.claim_due(
                conn, tenant="default", sink="files", owner="r1", now=NOW, lease_seconds=60, limit=2
            )
        claimed.extend(item.plan.po_number for item in items)

    (steps,) = query_plans(engine, claim, "SELECT", "ORDER BY")
    assert claimed == ["PO-3", "PO-1"]  # same issue date: planning order
    # A claim costs the rows it takes, not a sort of every due row: a large first push claims
    # hundreds of times from a table of all its invoices.
    assert "ix_invoice_outbox_claim" in steps and "TEMP B-TREE" not in steps, steps


def test_the_outbox_is_counted_from_an_index_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.begin() as conn:
        for n in (1, 2):
            outbox.upsert_plan(conn, make_plan(n), NOW)

    def count() -> None:
        with engine.connect() as conn:
            assert outbox_queries.count_by_state(conn, "default") == {"files": {"planned": 2}}

    (steps,) = query_plans(engine, count, "count(*)", "GROUP BY")
    # Every run counts the outbox: reading each row of a large one would cost a book's worth.
    assert "COVERING INDEX ix_invoice_outbox_state" in steps and "TEMP B-TREE" not in steps, steps


def test_the_results_are_counted_from_an_index_alone(tmp_path: Path) -> None:
    from connector.model import MatchResult, MatchStatus
    from state import results

    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)
    with engine.begin() as conn:
        results.replace_results(
            conn,
            "default",
            [MatchResult(status=MatchStatus.MISSING_PO, billing_key="default/b/1")],
            {},
            NOW,
            None,
        )

    def count() -> None:
        with engine.connect() as conn:
            assert results.count_by_status(conn, "default") == {"missing_po": 1}

    (steps,) = query_plans(engine, count, "count(*)", "GROUP BY")
    assert "COVERING INDEX ix_match_results_status" in steps and "TEMP B-TREE" not in steps, steps
