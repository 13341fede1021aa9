"""Exactly-once invoice push through the CLI against every API sink's loopback sandbox.

Each test runs `python -m connector` as a separate process on a copy of the bundled example
(4 matched billing periods) with one API sink pointed at a sandbox running in this process:
a crash between the remote create and the outbox record, 30% injected faults on the sink's
write endpoints, and a plan the provider rejects until it is fixed and replayed.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandboxes.base import Fault
from tests.support.cli import Result, run_cli
from tests.support.sink_sandboxes import (
    EXAMPLE_MATCHED,
    EXAMPLE_POS,
    HARNESSES,
    SINK_NAME,
    QuickBooksHarness,
    SinkSetup,
    StoredInvoice,
    example_config,
    outbox_counts,
    sink_setup,
)

KINDS = sorted(HARNESSES)
BATCH_KINDS = ["quickbooks", "xero"]
RUN_TIMEOUT = 60.0
MAX_RUNS = 8
HIDDEN = "CUST-GLOBEX"  # two of the example's four matched periods are Globex's
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def cli(setup: SinkSetup, *args: str, **env: str) -> Result:
    return run_cli(
        *args, "--config", str(setup.config), "--json", env={**setup.env, **env}, timeout=RUN_TIMEOUT
    )


def sync(setup: SinkSetup, **env: str) -> Result:
    return cli(setup, "sync", **env)


def status(setup: SinkSetup) -> dict[str, Any]:
    result = cli(setup, "status")
    assert result.code == 0, result.stderr
    report: dict[str, Any] = result.json()
    return report


def invoice_set(invoices: list[StoredInvoice]) -> list[tuple[str, str, str]]:
    return sorted((i.number, str(i.total), str(i.currency)) for i in invoices)


def assert_each_invoice_once(setup: SinkSetup, count: int = EXAMPLE_MATCHED) -> None:
    numbers = setup.harness.numbers()
    assert len(numbers) == count, numbers
    assert set(numbers.values()) == {1}, f"duplicated: {numbers}"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_crash_after_remote_create_is_recovered_by_lookup_without_a_second_create(
    kind: str, tmp_path: Path
) -> None:
    # One plan per claim, so the crash comes right after the first invoice reached the sink.
    with sink_setup(kind, tmp_path, push={"batch_size": 1}) as setup:
        crashed = sync(setup, PO_CONNECTOR_CRASH_AT="after-remote-create")
        assert crashed.code == 137, crashed.stderr
        assert len(setup.harness.stored()) == 1  # remote has it; the outbox row still says pushing
        writes = setup.harness.writes()

        recovered = sync(setup)
        assert recovered.code == 0, recovered.stderr
        summary = recovered.json()
        assert summary["invoices_existing"] == 1
        assert summary["invoices_pushed"] == EXAMPLE_MATCHED - 1
        assert setup.harness.writes() == writes + EXAMPLE_MATCHED - 1  # the found one is not re-sent
        assert_each_invoice_once(setup)
        assert outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}


@pytest.mark.parametrize("batch_kind", BATCH_KINDS)
def test_crash_after_a_batch_create_finds_every_invoice_of_the_batch(batch_kind: str, tmp_path: Path) -> None:
    with sink_setup(batch_kind, tmp_path) as setup:
        assert sync(setup, PO_CONNECTOR_CRASH_AT="after-remote-create").code == 137
        assert len(setup.harness.stored()) == EXAMPLE_MATCHED  # one batch call created all four
        writes = setup.harness.writes()

        recovered = sync(setup)
        assert recovered.code == 0, recovered.stderr
        assert recovered.json()["invoices_existing"] == EXAMPLE_MATCHED
        assert recovered.json()["invoices_pushed"] == 0
        assert setup.harness.writes() == writes
        assert_each_invoice_once(setup)


@pytest.mark.slow
def test_thirty_percent_faults_on_writes_end_with_exactly_the_invoices_of_a_clean_run(
    kind: str, tmp_path: Path
) -> None:
    with sink_setup(kind, tmp_path / "clean") as clean:
        assert sync(clean).code == 0
        expected = invoice_set(clean.harness.stored())
        clean_writes = clean.harness.writes()
    assert len(expected) == EXAMPLE_MATCHED

    with sink_setup(kind, tmp_path / "faulty", push={"batch_size": 2}) as setup:
        setup.harness.inject_faults(0.3)
        codes = []
        for _ in range(MAX_RUNS):
            result = sync(setup)
            assert result.code in (0, 1), result.stderr
            codes.append(result.code)
            if result.code == 0 and outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}:
                break
            time.sleep(1.1)  # retries across runs fall due within a second (FAST_PUSH)
        else:
            pytest.fail(f"not done after {MAX_RUNS} runs (exit codes {codes}): {outbox_counts(setup.config)}")

        assert setup.harness.writes() > clean_writes  # faults did force re-sends
        assert_each_invoice_once(setup)
        assert invoice_set(setup.harness.stored()) == expected
        report = status(setup)
        assert report["sinks"][0]["outbox"] == {"pushed": EXAMPLE_MATCHED}
        assert report["dead_letters"] == []
        assert [flag for flag in report["flagged"] if flag["total_mismatch"]] == []


def test_plan_rejected_by_the_provider_goes_dead_with_its_message_and_is_pushed_on_replay(
    kind: str, tmp_path: Path
) -> None:
    with sink_setup(kind, tmp_path, hidden_customers=[HIDDEN]) as setup:
        first = sync(setup)
        assert first.code == 1, first.stderr
        summary = first.json()
        assert summary["dead"] == 2
        assert summary["invoices_pushed"] == EXAMPLE_MATCHED - 2

        dead = status(setup)["dead_letters"]
        assert sorted(letter["po_number"] for letter in dead) == sorted(EXAMPLE_POS[HIDDEN])
        for letter in dead:
            assert letter["sink"] == SINK_NAME
            assert setup.harness.rejection_text in letter["error"], letter
            if isinstance(setup.harness, QuickBooksHarness):
                assert letter["correlation_id"] in setup.harness.qbo.tids
            elif setup.harness.correlates:
                assert UUID.match(letter["correlation_id"] or ""), letter
        dead_numbers = {letter["invoice_number"] for letter in dead}
        assert not dead_numbers & set(setup.harness.numbers())
        assert_each_invoice_once(setup, EXAMPLE_MATCHED - 2)

        setup.harness.reveal_customer(HIDDEN)
        replay = cli(setup, "replay", "--dead")
        assert replay.code == 0, replay.stderr
        assert replay.json()["replayed"] == 2
        assert replay.json()["invoices_pushed"] == 2
        assert_each_invoice_once(setup)
        assert dead_numbers <= set(setup.harness.numbers())
        assert outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}


def test_a_token_url_in_the_config_file_is_not_refused_as_an_inline_secret(tmp_path: Path) -> None:
    block = {
        "name": SINK_NAME,
        "type": "quickbooks",
        "realm_id": "9130350000000001",
        "client_id": "qbo-client-id",
        "client_secret_env": "E2E_QBO_CLIENT_SECRET",
        "refresh_token_file": "secrets/qbo-token.json",
        "token_url": "https://oauth.sandbox.example/oauth2/v1/tokens/bearer",
    }
    config = example_config(tmp_path, [block], with_example=False)
    result = run_cli("status", "--config", str(config), "--json", timeout=RUN_TIMEOUT)
    assert result.code == 0, result.stderr


def test_a_write_resolved_by_lookup_in_the_same_run_is_not_reported_as_failed(tmp_path: Path) -> None:
    with sink_setup("quickbooks", tmp_path) as setup:
        # The batch create happens but its answer is lost: the run looks it up and records it.
        setup.harness.sandbox.faults.queue(
            Fault(kind="status", status=503, when="after"), setup.harness.is_write
        )
        result = sync(setup)
        assert outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}
        assert_each_invoice_once(setup)
        summary = result.json()
        assert summary["invoices_existing"] == EXAMPLE_MATCHED
        assert summary["invoices_failed"] == 0, summary
        assert result.code == 0


def test_an_unreadable_token_file_fails_with_exit_2_before_any_row_is_claimed(tmp_path: Path) -> None:
    with sink_setup("quickbooks", tmp_path) as setup:
        token_file = tmp_path / "secrets" / "qbo-token.json"
        token_file.mkdir(parents=True)  # unreadable as a file, whoever runs the test
        result = sync(setup)
        assert result.code == 2, result.stderr
        assert "qbo-token.json" in result.stderr and "cannot be read" in result.stderr
        assert outbox_counts(setup.config) == {"planned": EXAMPLE_MATCHED}
        assert not setup.harness.numbers()
        # The run is recorded with the code the process exited with (what metrics report).
        listed = json.loads(cli(setup, "runs", "list").stdout)
        assert (listed[0]["status"], listed[0]["exit_code"]) == ("failed", 2), listed[0]

        token_file.rmdir()
        again = sync(setup)
        assert again.code == 0, again.stderr
        assert outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}
        assert_each_invoice_once(setup)


@pytest.mark.parametrize("concurrent_kind", ["netsuite", "cxml-invoice"])
def test_crash_with_creates_in_flight_finds_every_one_that_reached_the_sink(
    concurrent_kind: str, tmp_path: Path
) -> None:
    # The whole example in one claim, up to four creates in flight: the crash after the first
    # recorded outcome leaves others created remotely but not recorded; each is found, not re-sent.
    with sink_setup(concurrent_kind, tmp_path, push={"concurrency": 4}) as setup:
        assert sync(setup, PO_CONNECTOR_CRASH_AT="after-remote-create").code == 137
        # A create that left before the kill still lands in the sink a moment later.
        time.sleep(1.0)
        reached = len(setup.harness.stored())
        assert 1 <= reached <= EXAMPLE_MATCHED
        writes = setup.harness.writes()

        recovered = sync(setup)
        assert recovered.code == 0, recovered.stderr
        assert recovered.json()["invoices_existing"] == reached
        assert recovered.json()["invoices_pushed"] == EXAMPLE_MATCHED - reached
        if concurrent_kind == "netsuite":  # its lookup asks NetSuite: nothing found is re-sent
            assert setup.harness.writes() == writes + EXAMPLE_MATCHED - reached
        # The cXML sink's lookup is its archive, which a create in flight may not have reached:
        # such an invoice is posted again and the buyer's duplicate-number answer resolves it.
        assert_each_invoice_once(setup)
        assert outbox_counts(setup.config) == {"pushed": EXAMPLE_MATCHED}
