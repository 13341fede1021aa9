"""The push protocol against the in-memory outbox: every outcome and crash point, in milliseconds.

Each test drives `SinkPusher` as a run would, over `MemoryOutbox` (the SQL outbox's rules
without a database) and a scripted sink that counts its creates. A crash is a process that
stops at a crash point and records nothing more; the next run starts over the same rows after
the dead run's claims expired. The same protocol runs over SQLite and PostgreSQL in
tests/integration/test_push_protocol.py and tests/e2e/test_api_sinks_exactly_once.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

import pytest

from connector import sink_pusher
from connector.config import PushSettings
from connector.errors import (
    AuthenticationError,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.faults import AFTER_REMOTE_CREATE, BEFORE_REMOTE_CREATE
from connector.model import InvoicePlan, Money, RemoteRef, utcnow
from connector.ports import Capability, PushOutcome
from connector.pushing import SinkPusher
from connector.runtime import RunContext
from state.memory_outbox import MemoryOutbox
from state.outbox import DEAD, PUSHED, PUSHING, RETRY
from tests.support.factories import make_plan


class Crash(BaseException):
    """The process is gone (like SIGKILL: nothing after it runs to completion)."""


class Sink:
    """A sink that keeps what it was sent, answers lookups from it, and fails as scripted."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP})

    def __init__(self) -> None:
        self.name = "files"
        self.created: dict[str, int] = {}
        self.failures: list[Exception] = []  # raised by push, before (False) or after the create
        self.fail_after_create = False
        self.find_error: RemoteError | None = None
        self.reported_total: Money | None = None

    def count(self) -> int:
        return sum(self.created.values())

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        if self.find_error is not None:
            raise self.find_error
        return {
            plan.idempotency_key: RemoteRef(remote_id=plan.invoice_number, total=plan.total)
            for plan in plans
            if plan.invoice_number in self.created
        }

    def push(self, plan: InvoicePlan) -> RemoteRef:
        if self.failures and not self.fail_after_create:
            raise self.failures.pop(0)
        self.created[plan.invoice_number] = self.created.get(plan.invoice_number, 0) + 1
        if self.failures:
            raise self.failures.pop(0)
        return RemoteRef(remote_id=plan.invoice_number, total=self.reported_total or plan.total)


class BatchSink(Sink):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP, Capability.BATCH_PUSH})

    def __init__(self) -> None:
        super().__init__()
        self.drop_outcomes = 0  # the last N plans of a batch get no outcome back

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        outcomes = []
        for plan in plans:
            self.created[plan.invoice_number] = self.created.get(plan.invoice_number, 0) + 1
            outcomes.append(PushOutcome(plan.idempotency_key, RemoteRef(remote_id=plan.invoice_number)))
        return outcomes[: len(outcomes) - self.drop_outcomes]


class NoLookupSink(Sink):
    capabilities: ClassVar[frozenset[Capability]] = frozenset()


SETTINGS = PushSettings(max_attempts=3, retry_base_seconds=1, batch_size=10)


def outbox_with(count: int) -> MemoryOutbox:
    store = MemoryOutbox()
    for n in range(1, count + 1):
        store.plan(make_plan(n), utcnow() - timedelta(seconds=1))
    return store


def run(store: MemoryOutbox, sink: Sink, *, run_id: str = "run-1") -> RunContext:
    context = RunContext(run_id=run_id, command="push", started_at=utcnow())
    SinkPusher(context, "files", sink, tenant="default", settings=SETTINGS, store=store).drain()
    return context


def later(store: MemoryOutbox) -> None:
    """Time passes: every claim of a dead run expires and every retry is due."""
    now = utcnow()
    store.expire_claims(now)
    for row in store.rows.values():
        if row.state == RETRY:
            row.next_attempt_at = now - timedelta(seconds=1)


def crash_at(monkeypatch: pytest.MonkeyPatch, store: MemoryOutbox, point: str) -> None:
    def crash_point(name: str) -> None:
        if name == point:
            store.crash()
            raise Crash(name)

    monkeypatch.setattr(sink_pusher, "crash_point", crash_point)


def test_every_planned_invoice_is_created_once_and_recorded() -> None:
    store, sink = outbox_with(3), Sink()
    context = run(store, sink)
    assert sink.created == {plan.invoice_number: 1 for plan in (r.plan for r in store.rows.values())}
    assert set(store.states().values()) == {PUSHED}
    assert context.counts["invoices_pushed"] == 3
    run(store, sink, run_id="run-2")  # nothing is due any more
    assert sink.count() == 3


@pytest.mark.parametrize("point", [BEFORE_REMOTE_CREATE, AFTER_REMOTE_CREATE])
def test_a_crash_at_either_side_of_the_create_ends_with_one_invoice(
    monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    store, sink = outbox_with(1), Sink()
    crash_at(monkeypatch, store, point)
    with pytest.raises(Crash):
        run(store, sink)
    [row] = store.rows.values()
    assert row.state == PUSHING  # as the dead run left it
    monkeypatch.setattr(sink_pusher, "crash_point", lambda name: None)
    store.restart()
    run(store, sink, run_id="run-2")  # the claim has not expired: nothing happens yet
    assert row.state == PUSHING
    later(store)
    context = run(store, sink, run_id="run-3")
    assert sink.count() == 1 and row.state == PUSHED
    found = context.counts.get("invoices_existing", 0)
    assert found == (1 if point == AFTER_REMOTE_CREATE else 0)


def test_a_rejected_invoice_goes_dead_with_the_error_and_is_never_resent() -> None:
    store, sink = outbox_with(2), Sink()
    sink.failures = [RejectedError("customer CUST-ACME unknown", status=400)]
    context = run(store, sink)
    assert sorted(store.states().values()) == [DEAD, PUSHED]
    dead = next(row for row in store.rows.values() if row.state == DEAD)
    assert "customer CUST-ACME unknown" in (dead.last_error or "")
    assert context.counts["dead"] == 1 and context.errors
    later(store)
    run(store, sink, run_id="run-2")
    assert sink.count() == 1


def test_a_retryable_failure_waits_and_a_later_run_sends_it_once() -> None:
    store, sink = outbox_with(1), Sink()
    sink.failures = [RetryableError("503 service unavailable", status=503)]
    context = run(store, sink)
    [row] = store.rows.values()
    assert row.state == RETRY and not row.uncertain and context.counts["invoices_failed"] == 1
    later(store)
    run(store, sink, run_id="run-2")
    assert row.state == PUSHED and sink.count() == 1


def test_a_timeout_after_the_create_is_looked_up_not_sent_again() -> None:
    store, sink = outbox_with(1), Sink()
    sink.fail_after_create = True
    sink.failures = [UncertainError("read timed out")]
    run(store, sink)
    [row] = store.rows.values()
    # looked up again in the same run (an uncertain row is retried at once), found, recorded
    assert row.state == PUSHED and sink.count() == 1


def test_an_uncertain_row_is_not_sent_while_the_lookup_fails() -> None:
    store, sink = outbox_with(1), Sink()
    sink.fail_after_create = True
    sink.failures = [UncertainError("read timed out")]
    sink.find_error = RetryableError("lookup 503", status=503)
    run(store, sink)
    [row] = store.rows.values()
    assert row.state == RETRY and row.uncertain and sink.count() == 1
    for n in range(2, 2 + SETTINGS.max_attempts + 2):  # out of attempts, still never dead or resent
        later(store)
        run(store, sink, run_id=f"run-{n}")
    assert row.state == RETRY and row.uncertain and sink.count() == 1
    sink.find_error = None
    later(store)
    run(store, sink, run_id="run-last")
    assert row.state == PUSHED and sink.count() == 1


def test_a_sink_without_lookup_never_resends_an_uncertain_row(monkeypatch: pytest.MonkeyPatch) -> None:
    store, sink = outbox_with(1), NoLookupSink()
    crash_at(monkeypatch, store, AFTER_REMOTE_CREATE)
    with pytest.raises(Crash):
        run(store, sink)
    monkeypatch.setattr(sink_pusher, "crash_point", lambda name: None)
    store.restart()
    later(store)
    run(store, sink, run_id="run-2")
    [row] = store.rows.values()
    assert row.state == RETRY and row.uncertain and sink.count() == 1
    assert "a person must check" in (row.last_error or "")


def test_a_batch_answer_missing_an_outcome_leaves_that_row_uncertain() -> None:
    store, sink = outbox_with(3), BatchSink()
    sink.drop_outcomes = 1
    run(store, sink)
    states = sorted(store.states().values())
    assert states == [PUSHED, PUSHED, PUSHED]  # the missing one was looked up in the same run
    assert sink.count() == 3


def test_credentials_refused_mid_batch_leave_the_rest_uncertain_and_claimed_by_no_one() -> None:
    store, sink = outbox_with(3), Sink()
    calls = {"n": 0}
    original = sink.push

    def push(plan: InvoicePlan) -> RemoteRef:
        calls["n"] += 1
        if calls["n"] == 2:
            raise AuthenticationError("401: token revoked")
        return original(plan)

    sink.push = push  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError):
        run(store, sink)
    rows = list(store.rows.values())
    assert rows[0].state == PUSHED
    assert all(row.state == RETRY and row.uncertain and row.lease_owner is None for row in rows[1:])


def test_rows_another_run_took_over_are_not_sent() -> None:
    store, sink = outbox_with(2), Sink()
    original = store.still_held

    def taken_over(keys: Sequence[str], owner: str, now: object) -> set[str]:
        for key in keys:  # another run reclaimed them while this one stalled
            store.rows[key].lease_owner = "run-other"
        return original(keys, owner, now)  # type: ignore[arg-type]

    store.still_held = taken_over  # type: ignore[method-assign]
    run(store, sink)
    assert sink.count() == 0


def test_a_run_keeps_count_only_of_the_rows_still_in_doubt() -> None:
    store, sink = outbox_with(25), Sink()
    sink.failures = [RejectedError("no such customer", status=400), RetryableError("503", status=503)]
    context = RunContext(run_id="run-1", command="push", started_at=utcnow())
    pusher = SinkPusher(context, "files", sink, tenant="default", settings=SETTINGS, store=store)
    pusher.drain()
    assert sink.count() == 23 and sorted(store.states().values()).count(PUSHED) == 23
    # The pushed and the dead are forgotten; the one waiting for a retry is still counted.
    assert list(pusher.claims.values()) == [1] and list(pusher.claims) == list(pusher.waiting)


def test_a_run_that_lost_its_lease_claims_nothing() -> None:
    store, sink = outbox_with(2), Sink()
    context = RunContext(run_id="run-1", command="push", started_at=utcnow())
    context.lease_lost.set()
    SinkPusher(context, "files", sink, tenant="default", settings=SETTINGS, store=store).drain()
    assert sink.count() == 0 and set(store.states().values()) == {"planned"}


def test_a_daily_limit_parks_the_sink_for_the_rest_of_the_run() -> None:
    store, sink = outbox_with(3), Sink()
    sink.failures = [RetryableError("daily limit reached", park=True, retry_after=3600, status=429)]
    run(store, sink)
    assert sink.count() == 0
    rows = list(store.rows.values())
    assert rows[0].state == RETRY and rows[0].next_attempt_at is not None
    assert rows[0].next_attempt_at > utcnow() + timedelta(minutes=50)
    # the rest of the batch was handed back unsent: due again, certain, nothing created
    assert all(row.state == RETRY and not row.uncertain and row.lease_owner is None for row in rows[1:])


def test_a_certain_row_out_of_attempts_goes_dead() -> None:
    store, sink = outbox_with(1), Sink()
    sink.failures = [RetryableError("503", status=503) for _ in range(SETTINGS.max_attempts)]
    for n in range(SETTINGS.max_attempts):
        later(store)
        run(store, sink, run_id=f"run-{n}")
    [row] = store.rows.values()
    assert row.state == DEAD and sink.count() == 0


def test_a_total_the_sink_holds_differently_is_flagged() -> None:
    store, sink = outbox_with(1), Sink()
    sink.reported_total = Money.of("200.01", "USD")
    context = run(store, sink)
    [row] = store.rows.values()
    assert row.state == PUSHED and row.total_mismatch
    assert context.counts["total_mismatch"] == 1
