"""The kit fails an adapter that breaks one behaviour, and passes the same adapter unbroken."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.ubl_files import UblFilesConfig, UblFilesSink
from connector.errors import (
    AuthenticationError,
    InputError,
    InputProblem,
    RejectedError,
    RetryableError,
    UncertainError,
)
from connector.model import InvoicePlan, RemoteRef
from connector.ports import AdapterContext, PushOutcome, SourceBatch
from connector.testing import (
    SINK_CHECKS,
    SOURCE_CHECKS,
    ConformanceFailure,
    InjectedFault,
    MissingFixture,
    Rig,
    SinkFixture,
    SkipCheck,
    SourceFixture,
    run_sink_check,
    run_source_check,
    sample_plan,
)
from tests.kit import test_kit_ubl_files
from tests.kit.toys import SECRET, Catalogue, Ledger, ToySink, ToySinkConfig, ToySource, ToySourceConfig

# -- toy sink fixtures ------------------------------------------------------------------------


@contextmanager
def ledger(rig: Rig[Any]) -> Iterator[Ledger]:
    yield Ledger()


def inject_into_ledger(rig: Rig[Ledger], fault: InjectedFault) -> None:
    if fault.when == "after":
        rig.env.lose_next_answer = True
        fault.fired += 1
    else:
        rig.env.network.faults.append(fault)


def sink_fixture(adapter: type[ToySink]) -> SinkFixture[Ledger]:
    return SinkFixture(
        adapter=adapter,
        start=ledger,
        build=lambda rig: adapter(ToySinkConfig(name="toy"), AdapterContext(), rig.env),
        count=lambda rig, plan: sum(1 for i in rig.env.invoices if i["number"] == plan.invoice_number),
        rejected_plan=lambda rig: sample_plan(99, customer_ref="NOBODY"),
        rejection_text="customer NOBODY does not exist",
        inject=inject_into_ledger,
        fail_item=lambda rig, plan: setattr(rig.env, "fail_next_item", plan.invoice_number),
        bad_credentials=lambda rig: adapter(
            ToySinkConfig(name="toy", api_key="wrong-key"), AdapterContext(), rig.env
        ),
        secrets=lambda rig: [SECRET],
    )


class FindsNothing(ToySink):
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        return {}


class FindsNoCreditNotes(ToySink):
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        return super().find([plan for plan in plans if not plan.is_credit_note])


class FailsTheWholeBatch(ToySink):
    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        outcomes = super().push_batch(plans)
        error = next((o.error for o in outcomes if o.error is not None), None)
        if error is None:
            return outcomes
        return [PushOutcome(o.idempotency_key, error=error) for o in outcomes]


class CallsALostAnswerRetryable(ToySink):
    def push(self, plan: InvoicePlan) -> RemoteRef:
        try:
            return super().push(plan)
        except UncertainError as exc:
            raise RetryableError(str(exc)) from None


class CallsARefusalRetryable(ToySink):
    def push(self, plan: InvoicePlan) -> RemoteRef:
        try:
            return super().push(plan)
        except RejectedError as exc:
            raise RetryableError(str(exc)) from None


class LogsItsKey(ToySink):
    def push(self, plan: InvoicePlan) -> RemoteRef:
        logging.getLogger("po_connector.toys").debug("POST /invoices with key %s", SECRET)
        return super().push(plan)


# -- toy source fixtures ----------------------------------------------------------------------


@contextmanager
def catalogue(rig: Rig[Any]) -> Iterator[Catalogue]:
    yield Catalogue()


def seed(rig: Rig[Catalogue], count: int) -> None:
    start = len(rig.env.pos)
    rig.env.pos.extend({"number": f"TOY-{start + i}", "quantity": "2"} for i in range(count))


def source_fixture(adapter: type[ToySource]) -> SourceFixture[Catalogue]:
    return SourceFixture(
        adapter=adapter,
        start=catalogue,
        build=lambda rig: adapter(ToySourceConfig(name="toy"), AdapterContext(tenant=rig.tenant), rig.env),
        seed=seed,
        seed_count=10,
        malformed=lambda rig: rig.env.pos.append({"number": "TOY-BAD", "quantity": "two"}),
        bad_credentials=lambda rig: adapter(
            ToySourceConfig(name="toy", api_key="wrong-key"), AdapterContext(tenant=rig.tenant), rig.env
        ),
        inject=lambda rig, fault: rig.env.network.faults.append(fault),
        secrets=lambda rig: [SECRET],
    )


class CursorFallsBack(ToySource):
    def next_position(self, position: int, read: int) -> int:
        return position + read if read == self.page_size else 0


class CursorSkipsAhead(ToySource):
    def next_position(self, position: int, read: int) -> int:
        self.position = getattr(self, "position", position) + read
        return len(self.catalogue.pos)

    def pull(self, context: Any) -> Iterator[SourceBatch]:
        # Pages by its own counter, so an unbroken run sees everything; the cursor it reports
        # claims the whole catalogue after the first page.
        self.position = int((context.cursor or {}).get("position", 0))
        while True:
            page = self.read_page(self.position)
            batch = SourceBatch(document="toy")
            for offset, raw in enumerate(page):
                self.add(batch, raw, self.position + offset)
            self.position += len(page)
            batch.cursor = {"position": len(self.catalogue.pos)}
            yield batch
            if len(page) < self.page_size:
                return


class PagesForever(ToySource):
    def next_position(self, position: int, read: int) -> int:
        return position


class RaisesOnABadRecord(ToySource):
    def add(self, batch: SourceBatch, raw: dict[str, Any], index: int) -> None:
        before = len(batch.rejections)
        super().add(batch, raw, index)
        if len(batch.rejections) > before:
            problem: InputProblem = batch.rejections.pop()
            raise InputError(problem)


# -- the unbroken toys pass -------------------------------------------------------------------

# Toys are not installed packages, so they have no entry point to be found under.
UNTESTABLE_ON_TOYS = {"registered_under_its_entry_point"}


def _run_or_skip(run: Any) -> None:
    """Run a check; a check that does not apply is a visible skip, never a silent pass."""
    try:
        run()
    except SkipCheck as skip:
        pytest.skip(skip.reason)


@pytest.mark.parametrize("name", sorted(set(SINK_CHECKS) - UNTESTABLE_ON_TOYS))
def test_the_unbroken_toy_sink_passes(name: str, tmp_path: Path) -> None:
    _run_or_skip(lambda: run_sink_check(sink_fixture(ToySink), name, tmp_path))


@pytest.mark.parametrize("name", sorted(set(SOURCE_CHECKS) - UNTESTABLE_ON_TOYS))
def test_the_unbroken_toy_source_passes(name: str, tmp_path: Path) -> None:
    _run_or_skip(lambda: run_source_check(source_fixture(ToySource), name, tmp_path))


def test_every_check_runs_on_the_unbroken_toys(tmp_path: Path) -> None:
    """The toys give every fixture piece, so no check can pass by being skipped."""
    skipped = []
    for name in sorted(set(SINK_CHECKS) - UNTESTABLE_ON_TOYS):
        try:
            run_sink_check(sink_fixture(ToySink), name, tmp_path / f"sink-{name}")
        except SkipCheck:
            skipped.append(f"sink {name}")
    for name in sorted(set(SOURCE_CHECKS) - UNTESTABLE_ON_TOYS):
        try:
            run_source_check(source_fixture(ToySource), name, tmp_path / f"source-{name}")
        except SkipCheck:
            skipped.append(f"source {name}")
    assert skipped == []


# -- each break is caught ---------------------------------------------------------------------


def test_a_sink_that_cannot_find_its_credit_notes_fails_the_credit_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="holds 2 credit notes"):
        run_sink_check(
            sink_fixture(FindsNoCreditNotes), "credit_note_of_a_pushed_invoice_is_created_once", tmp_path
        )


def test_a_sink_whose_find_never_finds_fails_same_plan_twice(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="holds 2 invoices"):
        run_sink_check(sink_fixture(FindsNothing), "same_plan_twice_yields_one_invoice", tmp_path)


class MissesItsOwnFiles(UblFilesSink):
    """A real sink broken: each instance names files differently, so no lookup finds them."""

    def path_of(self, plan: InvoicePlan) -> Path:
        if not hasattr(self, "_salt"):
            self._salt = uuid.uuid4().hex[:6]
        return self.directory / f"{plan.invoice_number}-{self._salt}.xml"


def test_a_real_sink_whose_lookup_misses_fails_same_plan_twice(tmp_path: Path) -> None:
    fixture = test_kit_ubl_files.TestUblFilesConformance.fixture
    broken = SinkFixture(
        adapter=MissesItsOwnFiles,
        start=fixture.start,
        build=_broken_ubl,
        plan=fixture.plan,
        count=lambda rig, plan: sum(
            1 for p in rig.env.glob("*.xml") if p.name.startswith(plan.invoice_number)
        ),
    )
    with pytest.raises(ConformanceFailure, match="holds 2 invoices"):
        run_sink_check(broken, "same_plan_twice_yields_one_invoice", tmp_path)


def _broken_ubl(rig: Rig[Path]) -> MissesItsOwnFiles:
    config = UblFilesConfig(name="files", type="ubl-files", directory=rig.env)
    return MissesItsOwnFiles(config, AdapterContext(base_dir=rig.path))


def test_a_batch_failing_every_item_for_one_bad_one_fails_the_batch_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="failed beside the bad one"):
        run_sink_check(
            sink_fixture(FailsTheWholeBatch), "batch_partial_failure_retries_only_the_failed_items", tmp_path
        )


def test_a_lost_answer_reported_as_retryable_fails_the_uncertain_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="not UncertainError"):
        run_sink_check(
            sink_fixture(CallsALostAnswerRetryable), "uncertain_outcome_is_resolved_by_lookup", tmp_path
        )


def test_a_refusal_reported_as_retryable_fails_the_rejected_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="not RejectedError"):
        run_sink_check(
            sink_fixture(CallsARefusalRetryable),
            "rejected_plan_is_a_rejected_error_with_the_providers_message",
            tmp_path,
        )


def test_a_sink_logging_its_key_fails_the_secrets_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="a secret"):
        run_sink_check(sink_fixture(LogsItsKey), "secrets_never_appear_in_logs_or_errors", tmp_path)


def test_a_cursor_falling_back_fails_the_cursor_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="moved backwards"):
        run_source_check(source_fixture(CursorFallsBack), "cursor_only_moves_forward", tmp_path)


def test_a_cursor_skipping_ahead_loses_records_after_an_interruption(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="lost 6 records"):
        run_source_check(source_fixture(CursorSkipsAhead), "interrupted_run_resumes_without_loss", tmp_path)


def test_paging_that_never_ends_fails_the_pull_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="paging never ends"):
        run_source_check(source_fixture(PagesForever), "pull_ends_and_yields_every_record", tmp_path)


def test_a_source_raising_on_a_bad_record_fails_the_malformed_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="stopped the run"):
        run_source_check(
            source_fixture(RaisesOnABadRecord), "malformed_record_is_reported_and_the_run_goes_on", tmp_path
        )


def test_a_missing_fixture_piece_fails_saying_what_to_provide(tmp_path: Path) -> None:
    bare: SourceFixture[Any] = SourceFixture(adapter=ToySource)
    with pytest.raises(MissingFixture, match=r"SourceFixture\.seed is not set for ToySource; provide seed="):
        run_source_check(bare, "pull_ends_and_yields_every_record", tmp_path)


class GivesUpOnTheFirstAnswer(ToySource):
    def read_page(self, position: int) -> list[dict[str, Any]]:
        self.catalogue.network.call(self.api_key)
        return self.catalogue.pos[position : position + self.page_size]


def test_a_source_that_does_not_retry_a_429_fails_the_rate_limit_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="gave up on the 429 answers with RetryableError"):
        run_source_check(
            source_fixture(GivesUpOnTheFirstAnswer), "rate_limit_with_retry_after_is_retried", tmp_path
        )


class RetriesForever(ToySource):
    def read_page(self, position: int) -> list[dict[str, Any]]:
        for _ in range(50):
            try:
                self.catalogue.network.call(self.api_key)
                break
            except RetryableError:
                continue
        return self.catalogue.pos[position : position + self.page_size]


def test_a_source_swallowing_a_persistent_error_fails_the_server_error_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match=r"not connector\.errors\.RetryableError"):
        run_source_check(
            source_fixture(RetriesForever),
            "persistent_server_error_is_retried_then_fails_retryable",
            tmp_path,
        )


class CallsARefusedKeyRetryable(ToySource):
    def read_page(self, position: int) -> list[dict[str, Any]]:
        try:
            return super().read_page(position)
        except AuthenticationError as exc:
            raise RetryableError(str(exc)) from None


def test_a_source_calling_a_refused_key_retryable_fails_the_credentials_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match=r"not connector\.errors\.AuthenticationError"):
        run_source_check(
            source_fixture(CallsARefusedKeyRetryable),
            "refused_credentials_are_an_authentication_error",
            tmp_path,
        )


class NamesItsKeyInErrors(ToySource):
    def read_page(self, position: int) -> list[dict[str, Any]]:
        try:
            return super().read_page(position)
        except RetryableError as exc:
            raise RetryableError(f"{exc} (key {self.api_key})") from None


def test_a_source_naming_its_key_in_an_error_fails_the_secrets_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="a secret"):
        run_source_check(
            source_fixture(NamesItsKeyInErrors), "secrets_never_appear_in_logs_errors_or_payloads", tmp_path
        )


class CallsARefusedKeyRejected(ToySink):
    def push(self, plan: InvoicePlan) -> RemoteRef:
        try:
            return super().push(plan)
        except AuthenticationError as exc:
            raise RejectedError(str(exc), status=401) from None


def test_a_sink_calling_a_refused_key_rejected_fails_the_credentials_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match=r"not connector\.errors\.AuthenticationError"):
        run_sink_check(
            sink_fixture(CallsARefusedKeyRejected),
            "refused_credentials_are_an_authentication_error",
            tmp_path,
        )


class GivesUpOnA429(ToySink):
    def push(self, plan: InvoicePlan) -> RemoteRef:
        self.ledger.network.call(self.api_key)
        return super().push(plan)


def test_a_sink_that_does_not_retry_a_429_fails_the_rate_limit_check(tmp_path: Path) -> None:
    with pytest.raises(ConformanceFailure, match="gave up on the 429 answer with RetryableError"):
        run_sink_check(sink_fixture(GivesUpOnA429), "rate_limited_create_is_retried", tmp_path)
