"""The metrics file: built from a real SQLite state, written atomically, parsed as Prometheus does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from connector.errors import InputProblem, RejectedError
from connector.metrics import TenantMetrics, write_textfile
from connector.model import MatchResult, MatchStatus
from state import outbox, quarantine_store, results, runs
from state.db import open_state
from tests.support.factories import make_plan

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1, hours=1)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_state(f"sqlite:///{tmp_path / 'state.db'}")


def record_run(
    engine: Engine,
    command: str,
    started: datetime,
    *,
    exit_code: int,
    seconds: int = 60,
    api: dict[str, dict[str, int]] | None = None,
) -> None:
    with engine.begin() as conn:
        run_id = runs.start_run(conn, "default", command, started)
        runs.finish_run(
            conn,
            run_id,
            status="ok" if exit_code == 0 else "failed",
            exit_code=exit_code,
            counts={"api": api} if api else {},
            now=started + timedelta(seconds=seconds),
        )


def parse(path: Path) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset({"tenant": "default", **values}.items())


def fill_state(engine: Engine) -> None:
    """Two syncs (the later failed), a push; three results; an outbox on `books`; one quarantined row."""
    record_run(engine, "sync", T0, exit_code=0, api={"books": {"calls": 7, "throttled": 2}})
    record_run(engine, "push", T0 + timedelta(hours=1), exit_code=0, seconds=5)
    record_run(engine, "sync", T0 + timedelta(days=1), exit_code=1, seconds=30)
    with engine.begin() as conn:
        results.replace_results(
            conn,
            "default",
            [
                MatchResult(status=MatchStatus.MATCHED, billing_key="b1"),
                MatchResult(status=MatchStatus.MATCHED, billing_key="b2"),
                MatchResult(status=MatchStatus.MISMATCH, billing_key="b3"),
            ],
            {},
            T0,
            None,
        )
        # The oldest row goes dead: it no longer waits, so it does not age the outbox.
        dead = make_plan(3, sink="books")
        outbox.upsert_plan(conn, dead, NOW - timedelta(days=3))
        claimed = outbox.claim_due(
            conn, tenant="default", sink="books", owner="r", now=NOW, lease_seconds=60, limit=1
        )
        assert [item.idempotency_key for item in claimed] == [dead.idempotency_key]
        outbox.mark_failed(conn, dead.idempotency_key, "r", RejectedError("no such customer"), NOW, dead=True)
        outbox.upsert_plan(conn, make_plan(1, sink="books"), NOW - timedelta(hours=2))
        outbox.upsert_plan(conn, make_plan(2, sink="books"), NOW - timedelta(minutes=30))
        problem = InputProblem("inbox", "po.eml", "row 4", "Quantity", "ten", "not a number")
        quarantine_store.quarantine_problems(conn, "default", "inbox", [problem], NOW, None)


def test_metrics_are_read_from_the_state_and_written_in_prometheus_text_format(
    engine: Engine, tmp_path: Path
) -> None:
    fill_state(engine)
    path = tmp_path / "po-connector.prom"
    with engine.connect() as conn:
        write_textfile(path, conn, "default", sinks=["files", "books"], sources=["inbox", "billing"], now=NOW)
    samples = parse(path)
    sync, push = labels(command="sync"), labels(command="push")

    started = (T0 + timedelta(days=1)).timestamp()
    assert samples[("po_connector_last_run_start_timestamp_seconds", sync)] == started
    assert samples[("po_connector_last_run_exit_code", sync)] == 1
    # The failed sync keeps the earlier success, read back from the runs table.
    assert (
        samples[("po_connector_last_success_timestamp_seconds", sync)]
        == (T0 + timedelta(seconds=60)).timestamp()
    )
    assert samples[("po_connector_last_run_exit_code", push)] == 0
    assert (
        samples[("po_connector_last_success_timestamp_seconds", push)]
        == (T0 + timedelta(hours=1, seconds=5)).timestamp()
    )
    # API counts are those of the command's last run: the failed sync made none.
    assert ("po_connector_last_run_api_requests", labels(command="sync", sink="books")) not in samples

    assert samples[("po_connector_reconcile_results", labels(status="matched"))] == 2
    assert samples[("po_connector_reconcile_results", labels(status="mismatch"))] == 1
    assert samples[("po_connector_reconcile_results", labels(status="ambiguous"))] == 0

    assert samples[("po_connector_outbox_rows", labels(sink="books", state="planned"))] == 2
    assert samples[("po_connector_outbox_rows", labels(sink="books", state="dead"))] == 1
    assert samples[("po_connector_outbox_rows", labels(sink="books", state="pushed"))] == 0
    assert samples[("po_connector_outbox_rows", labels(sink="files", state="planned"))] == 0
    assert samples[("po_connector_outbox_oldest_unsent_age_seconds", labels(sink="books"))] == 7200
    assert samples[("po_connector_outbox_oldest_unsent_age_seconds", labels(sink="files"))] == 0
    assert (
        samples[("po_connector_outbox_oldest_unsent_timestamp_seconds", labels(sink="books"))]
        == (NOW - timedelta(hours=2)).timestamp()
    )
    assert ("po_connector_outbox_oldest_unsent_timestamp_seconds", labels(sink="files")) not in samples
    assert samples[("po_connector_dead_letters", labels(sink="books"))] == 1
    assert samples[("po_connector_dead_letters", labels(sink="files"))] == 0

    assert samples[("po_connector_quarantined_inputs", labels(source="inbox"))] == 1
    assert samples[("po_connector_quarantined_inputs", labels(source="billing"))] == 0
    assert not list(tmp_path.glob("po-connector.prom.*")), "the temporary file is renamed into place"


def test_api_counts_come_from_the_last_run_of_each_command(engine: Engine, tmp_path: Path) -> None:
    record_run(engine, "sync", T0, exit_code=0, api={"books": {"calls": 7, "throttled": 2}})
    path = tmp_path / "m.prom"
    with engine.connect() as conn:
        write_textfile(path, conn, "default", now=NOW)
    samples = parse(path)
    books = labels(command="sync", sink="books")
    assert samples[("po_connector_last_run_api_requests", books)] == 7
    assert samples[("po_connector_last_run_api_throttled", books)] == 2


def test_a_command_that_never_succeeded_shows_a_zero_success_time(engine: Engine, tmp_path: Path) -> None:
    record_run(engine, "sync", T0, exit_code=1)
    path = tmp_path / "m.prom"
    with engine.connect() as conn:
        write_textfile(path, conn, "default", now=NOW)
    samples = parse(path)
    assert samples[("po_connector_last_success_timestamp_seconds", labels(command="sync"))] == 0
    assert samples[("po_connector_last_run_exit_code", labels(command="sync"))] == 1


def test_every_metric_is_described_even_on_an_empty_state(engine: Engine) -> None:
    with engine.connect() as conn:
        registry = TenantMetrics("default").read(conn, now=NOW).registry
    names = {family.name for family in registry.collect()}
    assert names == {
        "po_connector_last_run_start_timestamp_seconds",
        "po_connector_last_run_exit_code",
        "po_connector_last_success_timestamp_seconds",
        "po_connector_last_run_api_requests",
        "po_connector_last_run_api_throttled",
        "po_connector_reconcile_results",
        "po_connector_outbox_rows",
        "po_connector_outbox_oldest_unsent_age_seconds",
        "po_connector_outbox_oldest_unsent_timestamp_seconds",
        "po_connector_dead_letters",
        "po_connector_quarantined_inputs",
        "po_connector_po_acknowledgements",
        "po_connector_messages",
    }
    wanted = ("po_connector_po_acknowledgements", "po_connector_messages")
    samples = {
        (sample.name, sample.labels["state"])
        for family in registry.collect()
        for sample in family.samples
        if sample.name in wanted
    }
    # what a person must look at is reported as 0 rather than absent
    assert {
        ("po_connector_po_acknowledgements", "waiting"),
        ("po_connector_messages", "uncertain"),
    } <= samples
