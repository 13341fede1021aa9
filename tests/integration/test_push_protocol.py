"""The pusher's protocol against a scripted sink: uncertainty is never guessed away."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select, text

from connector.config import load_config
from connector.errors import AuthenticationError, ConfigError, RemoteError, RetryableError, UncertainError
from connector.model import InvoicePlan, RemoteRef
from connector.ports import Capability, PushOutcome
from connector.pushing import push_all
from connector.runtime import Connector
from state import outbox
from state.tables import invoice_outbox
from tests.support.cli import copy_example
from tests.support.factories import make_plan

NOW = datetime(2026, 11, 29, tzinfo=UTC)


class ScriptedSink:
    """An in-memory sink whose failures a test scripts; it counts every create it performs."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP})

    def __init__(self) -> None:
        self.name = "files"
        self.created: dict[str, int] = {}
        self.find_error: RemoteError | None = None
        self.push_errors: list[Exception] = []  # raised after the create happened
        self.lookups = 0

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        self.lookups += 1
        if self.find_error is not None:
            raise self.find_error
        return {
            p.idempotency_key: RemoteRef(remote_id=p.invoice_number, total=p.total)
            for p in plans
            if p.invoice_number in self.created
        }

    def push(self, plan: InvoicePlan) -> RemoteRef:
        self.created[plan.invoice_number] = self.created.get(plan.invoice_number, 0) + 1
        if self.push_errors:
            raise self.push_errors.pop(0)
        return RemoteRef(remote_id=plan.invoice_number, total=plan.total)


class ScriptedBatchSink(ScriptedSink):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP, Capability.BATCH_PUSH})

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        outcomes = []
        for plan in plans:
            self.created[plan.invoice_number] = self.created.get(plan.invoice_number, 0) + 1
            if self.push_errors:
                raise self.push_errors.pop(0)  # e.g. credentials refused mid-batch
            outcomes.append(PushOutcome(plan.idempotency_key, RemoteRef(remote_id=plan.invoice_number)))
        return outcomes


@pytest.fixture
def app(tmp_path: Path) -> Connector:
    config = copy_example(tmp_path)
    text_ = config.read_text(encoding="utf-8").replace("max_attempts = 8", "max_attempts = 2")
    text_ = text_.replace("retry_base_seconds = 60", "retry_base_seconds = 1")
    config.write_text(text_, encoding="utf-8")
    return Connector(load_config(config))


def use(app: Connector, sink: ScriptedSink) -> None:
    app.__dict__["sinks"] = {"files": sink}


def plan_rows(app: Connector, *plans: InvoicePlan) -> None:
    with app.engine.begin() as conn:
        for plan in plans:
            outbox.upsert_plan(conn, plan, NOW)


def row(app: Connector, plan: InvoicePlan) -> dict[str, object]:
    with app.connect() as conn:
        found = conn.execute(
            select(invoice_outbox).where(invoice_outbox.c.idempotency_key == plan.idempotency_key)
        ).one()
    return dict(found._mapping)


def due_now(app: Connector) -> None:
    with app.engine.begin() as conn:
        conn.execute(invoice_outbox.update().values(next_attempt_at=NOW))


def test_an_uncertain_row_out_of_attempts_never_goes_dead_and_is_not_resent_blindly(app: Connector) -> None:
    sink, plan = ScriptedSink(), make_plan()
    use(app, sink)
    plan_rows(app, plan)
    sink.push_errors = [UncertainError("timeout after send")]
    sink.find_error = RetryableError("lookup down")
    for _ in range(4):  # more runs than max_attempts, while the lookup keeps failing
        with app.run("push") as run:
            push_all(app, run)
        due_now(app)
    state = row(app, plan)
    assert state["state"] == "retry" and state["uncertain"]
    assert sink.created == {plan.invoice_number: 1}
    sink.find_error = None
    with app.run("push") as run:
        push_all(app, run)
    assert row(app, plan)["state"] == "pushed" and sink.created == {plan.invoice_number: 1}


def test_credentials_refused_mid_batch_leave_the_batch_uncertain(app: Connector) -> None:
    sink = ScriptedBatchSink()
    use(app, sink)
    first, second = make_plan(1), make_plan(2)
    plan_rows(app, first, second)

    def refuse_second(plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        sink.created[plans[0].invoice_number] = 1  # the first invoice is created...
        raise AuthenticationError("token revoked")  # ...then the credentials are refused

    sink.push_batch = refuse_second  # type: ignore[method-assign]
    with app.run("push") as run:
        push_all(app, run)
        assert run.counts["config_errors"] == 1
    assert row(app, first)["uncertain"] and row(app, second)["uncertain"]
    sink.find_error = RetryableError("lookup down")
    due_now(app)
    sink.push_batch = ScriptedBatchSink.push_batch.__get__(sink)  # type: ignore[method-assign]
    with app.run("push") as run:
        push_all(app, run)
    assert sink.created[first.invoice_number] == 1  # not sent again while unknown


class NotReadySink(ScriptedSink):
    """A sink whose credentials cannot be read: it says so before anything is claimed."""

    def check_ready(self) -> None:
        raise ConfigError("token file 'secrets/t.json' cannot be read: Is a directory")

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        raise AssertionError("a sink that is not ready must not be asked anything")


def pushing_rows(app: Connector) -> int:
    with app.connect() as conn:
        return len(conn.execute(select(invoice_outbox).where(invoice_outbox.c.state == "pushing")).all())


def test_a_sink_that_is_not_ready_fails_the_run_before_claiming_any_row(app: Connector) -> None:
    use(app, NotReadySink())
    plans = [make_plan(n) for n in range(1, 4)]
    plan_rows(app, *plans)
    with app.run("push") as run:
        push_all(app, run)
        assert run.counts["config_errors"] == 1
        assert run.counts["invoices_waiting"] == 3
    assert pushing_rows(app) == 0
    assert {row(app, p)["state"] for p in plans} == {"planned"}
    assert {row(app, p)["attempts"] for p in plans} == {0}


@pytest.mark.parametrize(
    "error",
    [ConfigError("the rotated refresh token cannot be saved"), KeyboardInterrupt(), ValueError("a bug")],
    ids=["config-error", "interrupt", "unexpected"],
)
def test_whatever_stops_a_batch_leaves_no_row_claimed(app: Connector, error: BaseException) -> None:
    sink = ScriptedSink()
    use(app, sink)
    first, second = make_plan(1), make_plan(2)
    plan_rows(app, first, second)
    sink.push_errors = [error]  # raised after the first create happened
    stops = pytest.raises(type(error)) if not isinstance(error, ConfigError) else _no_raise()
    with stops, app.run("push") as run:
        push_all(app, run)
    assert pushing_rows(app) == 0
    # The first create may have happened: it waits as uncertain and is looked up, not resent.
    assert row(app, first)["uncertain"]
    due_now(app)
    sink.push_errors = []
    with app.run("push") as run:
        push_all(app, run)
    assert row(app, first)["state"] == row(app, second)["state"] == "pushed"
    assert sink.created == {first.invoice_number: 1, second.invoice_number: 1}


@contextmanager
def _no_raise() -> Iterator[None]:
    yield


def test_rows_taken_over_by_another_run_are_not_sent(app: Connector) -> None:
    sink, plan = ScriptedSink(), make_plan()
    use(app, sink)
    plan_rows(app, plan)
    original = sink.find

    def stall_then_lose_claim(plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        answer = original(plans)
        with app.engine.begin() as conn:  # meanwhile another run reclaimed the row
            conn.execute(invoice_outbox.update().values(lease_owner="other-run"))
        return answer

    sink.find = stall_then_lose_claim  # type: ignore[method-assign]
    with app.run("push") as run:
        push_all(app, run)
    assert sink.created == {}


def test_a_run_that_lost_its_lease_stops_pushing(app: Connector) -> None:
    sink = ScriptedSink()
    use(app, sink)
    plan_rows(app, make_plan())
    with app.run("push") as run:
        run.lease_lost.set()
        push_all(app, run)
    assert sink.created == {}


def test_replay_resets_the_attempts_of_a_dead_row(app: Connector) -> None:
    plan = make_plan()
    plan_rows(app, plan)
    with app.engine.begin() as conn:
        conn.execute(invoice_outbox.update().values(state="dead", attempts=7))
        outbox.replay(conn, app.tenant, NOW, dead=True)
    assert row(app, plan)["attempts"] == 0 and row(app, plan)["state"] == "planned"


def test_a_reader_never_blocks_a_writer_on_sqlite(app: Connector) -> None:
    with app.connect() as reader:
        reader.execute(text("SELECT count(*) FROM invoice_outbox")).scalar_one()
        done = threading.Event()

        def write() -> None:
            with app.engine.begin() as conn:
                conn.execute(text("UPDATE invoice_outbox SET attempts = attempts"))
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert done.wait(5), "the writer waited for the reader's transaction"
        writer.join()


def test_failed_run_errors_are_stored_redacted(app: Connector) -> None:
    from connector.redact import GLOBAL_REDACTOR
    from state import runs

    GLOBAL_REDACTOR.add("sk_live_ABCDEF123456")
    with pytest.raises(RuntimeError), app.run("push"):
        raise RuntimeError("header Authorization: Bearer sk_live_ABCDEF123456 refused")
    with app.connect() as conn:
        stored = runs.list_runs(conn, app.tenant, 1)[0]["error"]
    assert "sk_live" not in stored


def test_a_total_the_sink_did_not_report_is_read_back_and_a_cent_of_difference_is_flagged(
    app: Connector,
) -> None:
    from decimal import Decimal

    from connector.model import Money

    class SilentTotals(ScriptedSink):
        def push(self, plan: InvoicePlan) -> RemoteRef:
            self.created[plan.invoice_number] = 1
            return RemoteRef(remote_id=plan.invoice_number)  # no total in the create's answer

        def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
            self.lookups += 1
            off_by_a_cent = {
                p.idempotency_key: RemoteRef(
                    remote_id=p.invoice_number,
                    total=Money(amount=p.total.amount + Decimal("0.01"), currency="USD"),
                )
                for p in plans
                if p.invoice_number in self.created
            }
            return off_by_a_cent

    sink, plan = SilentTotals(), make_plan()
    use(app, sink)
    plan_rows(app, plan)
    with app.run("push") as run:
        push_all(app, run)
        assert run.counts["total_mismatch"] == 1
    assert sink.lookups == 2  # the pre-flight lookup and one read-back for the batch
    stored = row(app, plan)
    assert stored["state"] == "pushed" and stored["total_mismatch"]
