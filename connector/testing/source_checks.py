"""The behaviours every PO source and billing source must show, as plain check functions.

Each check takes the adapter's `SourceFixture` and a scratch folder, starts the fixture's
environment, and raises `ConformanceFailure` when the adapter misbehaves, `MissingFixture` when
the fixture lacks a piece the check needs, and `SkipCheck` when the check does not apply.
`SourceKit` turns them into pytest tests; they can also be called directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connector.errors import AuthenticationError, ConnectorError, RetryableError
from connector.model import BillingPeriod, PurchaseOrder
from connector.ports import AdapterKind, BillingSource, Capability, POSource, SourceRecord
from connector.registry import discover
from connector.testing.fixtures import (
    ConformanceFailure,
    InjectedFault,
    SkipCheck,
    SourceFixture,
    expect,
    expect_declarations,
    need,
    running,
)
from connector.testing.probe import probing
from connector.testing.recorder import Ledger, PullRun, fingerprint, key_of, pull

SourceCheck = Callable[[SourceFixture[Any], Path], None]
NO_SUCH_PO = "KIT-NO-SUCH-PO-000000"


def kind_of(fixture: SourceFixture[Any]) -> AdapterKind:
    return AdapterKind(fixture.adapter.kind)


def capabilities_of(fixture: SourceFixture[Any] | Any) -> frozenset[Capability]:
    adapter = fixture.adapter if hasattr(fixture, "adapter") else fixture
    return frozenset(Capability(c) for c in getattr(adapter, "capabilities", frozenset()))


def _build(fixture: SourceFixture[Any], rig: Any) -> Any:
    return need(fixture, "build")(rig)


def _seeded(fixture: SourceFixture[Any], rig: Any, count: int) -> None:
    need(fixture, "seed")(rig, count)


def _full(fixture: SourceFixture[Any], source: Any, ledger: Ledger | None = None) -> PullRun:
    # More batches than a generous multiple of the records seeded means the paging never ends.
    limit = max(100, 20 * fixture.seed_count)
    run = pull(source, kind_of(fixture), ledger if ledger is not None else Ledger(), max_batches=limit)
    expect(run.finished, "the pull stopped before its end")
    return run


def _keys(run: PullRun) -> set[str]:
    return {key_of(record) for record in run.records}


# -- declarations ---------------------------------------------------------------------------
def check_declares_its_port(fixture: SourceFixture[Any], path: Path) -> None:
    """The class says which port it implements, what it can do and how it is configured."""
    expect_declarations(fixture.adapter, (AdapterKind.SOURCE, AdapterKind.BILLING))


def check_built_adapter_implements_the_port(fixture: SourceFixture[Any], path: Path) -> None:
    """The built adapter has a name and the methods of its port."""
    with running(fixture, path) as rig:
        source = _build(fixture, rig)
        port = POSource if kind_of(fixture) is AdapterKind.SOURCE else BillingSource
        expect(isinstance(source, port), f"{type(source).__name__} does not implement {port.__name__}")
        expect(bool(getattr(source, "name", "")), "the adapter has no `name` (set self.name = config.name)")


def check_registered_under_its_entry_point(fixture: SourceFixture[Any] | Any, path: Path) -> None:
    """`po-connector adapters list` finds the adapter under its name, loaded and of its kind."""
    name = need(fixture, "entry_point")
    info = discover().get(name)
    expect(
        info is not None,
        f"no adapter {name!r} in the po_connector.adapters entry points: declare it in pyproject.toml "
        f"and install the package (pip install -e .)",
    )
    assert info is not None
    expect(info.error is None, f"adapter {name!r} fails to load: {info.error}")
    expect(
        info.factory is fixture.adapter,
        f"entry point {name!r} loads {info.factory!r}, not {fixture.adapter!r}",
    )


# -- paging and cursors ---------------------------------------------------------------------
def check_pull_ends_and_yields_every_record(fixture: SourceFixture[Any], path: Path) -> None:
    """Paging terminates and every seeded record arrives once, with no rejection."""
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        run = _full(fixture, _build(fixture, rig))
        expect(
            run.batches >= fixture.min_batches,
            f"{fixture.seed_count} records came in {run.batches} batch(es); seed more (or lower the "
            f"page size in build) so that paging is exercised over at least {fixture.min_batches}",
        )
        expect(
            len(_keys(run)) == fixture.seed_count,
            f"seeded {fixture.seed_count} records, the pull yielded {len(_keys(run))} distinct ones",
        )
        expect(run.rejections == [], f"valid records were rejected: {_describe(run)}")


def _order(fixture: SourceFixture[Any], cursor: Mapping[str, Any]) -> Any:
    if fixture.cursor_order is not None:
        return fixture.cursor_order(cursor)
    return tuple(cursor[key] for key in sorted(cursor))


def check_cursor_only_moves_forward(fixture: SourceFixture[Any], path: Path) -> None:
    """Within a run and across runs, no batch cursor is behind the one before it."""
    if Capability.INCREMENTAL not in capabilities_of(fixture):
        raise SkipCheck("no INCREMENTAL capability: the source keeps no cursor")
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        ledger = Ledger()
        cursors = _full(fixture, _build(fixture, rig), ledger).cursors
        expect(bool(cursors), "an INCREMENTAL source yielded no cursor at all")
        _seeded(fixture, rig, 3)
        cursors += _full(fixture, _build(fixture, rig), ledger).cursors
        for before, after in itertools.pairwise(cursors):
            try:
                backwards = _order(fixture, after) < _order(fixture, before)
            except TypeError:
                raise SkipCheck(
                    "cursors cannot be compared as they are; give SourceFixture.cursor_order"
                ) from None
            expect(not backwards, f"the cursor moved backwards from {before} to {after}")


def check_second_run_from_the_final_cursor_yields_nothing_new(
    fixture: SourceFixture[Any], path: Path
) -> None:
    """A run from where the last one ended brings no record that is new or changed."""
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        ledger = Ledger()
        _full(fixture, _build(fixture, rig), ledger)
        again = _full(fixture, _build(fixture, rig), ledger)
        expect(
            again.new == [],
            f"the second run brought {len(again.new)} records again as new: {sorted(set(again.new))[:3]}",
        )


def check_next_run_picks_up_records_added_since(fixture: SourceFixture[Any], path: Path) -> None:
    """Records added after a run arrive with the next run from its state."""
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        ledger = Ledger()
        _full(fixture, _build(fixture, rig), ledger)
        before = set(ledger.records)
        _seeded(fixture, rig, 3)
        _full(fixture, _build(fixture, rig), ledger)
        added = set(ledger.records) - before
        expect(
            len(added) == 3,
            f"3 records were added after the first run; the next run brought {len(added)} new keys",
        )


def check_interrupted_run_resumes_without_loss(fixture: SourceFixture[Any], path: Path) -> None:
    """A run stopped after its first committed batch, resumed, ends where an unbroken run does."""
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        broken = Ledger()
        first = pull(_build(fixture, rig), kind_of(fixture), broken, stop_after=1)
        _full(fixture, _build(fixture, rig), broken)
        whole = Ledger()
        _full(fixture, _build(fixture, rig), whole)
        missing = set(whole.records) - set(broken.records)
        expect(
            not missing,
            f"after an interruption at batch {first.batches} the resumed run lost {len(missing)} "
            f"records, e.g. {sorted(missing)[:3]}",
        )
        stale = [key for key, content in whole.records.items() if broken.records.get(key) != content]
        expect(not stale, f"records ended in another state than an unbroken run's: {stale[:3]}")


# -- records --------------------------------------------------------------------------------
def check_records_are_valid_canonical_models(fixture: SourceFixture[Any], path: Path) -> None:
    """Every record revalidates as its canonical model and carries the adapter's name and tenant."""
    with running(fixture, path) as rig:
        _seeded(fixture, rig, fixture.seed_count)
        source = _build(fixture, rig)
        run = _full(fixture, source)
        expect(bool(run.records), "the pull yielded no record to check")
        for record in run.records:
            _revalidates(record)
            owner = record.source if isinstance(record, PurchaseOrder) else _billing(record).billing_source
            expect(
                owner == source.name, f"record {key_of(record)} names source {owner!r}, not {source.name!r}"
            )
            tenant = getattr(record, "tenant", None)
            expect(tenant == rig.tenant, f"record {key_of(record)} has tenant {tenant!r}, not {rig.tenant!r}")


def _billing(record: BaseModel) -> BillingPeriod:
    assert isinstance(record, BillingPeriod)
    return record


def _revalidates(record: BaseModel) -> None:
    try:
        again = type(record).model_validate_json(record.model_dump_json())
    except ValueError as exc:
        raise ConformanceFailure(
            f"record {key_of(record)} does not revalidate from its JSON: {exc}"
        ) from None
    expect(
        fingerprint(again) == fingerprint(record),
        f"record {key_of(record)} changes when revalidated from its JSON",
    )


def check_malformed_record_is_reported_and_the_run_goes_on(fixture: SourceFixture[Any], path: Path) -> None:
    """A bad record becomes an InputProblem naming where it is and why; the good ones arrive."""
    with running(fixture, path) as rig:
        malformed = need(fixture, "malformed")
        _seeded(fixture, rig, fixture.seed_count)
        malformed(rig)
        source = _build(fixture, rig)
        try:
            run = _full(fixture, source)
        except ConnectorError as exc:
            raise ConformanceFailure(
                f"a malformed record stopped the run: {type(exc).__name__}: {exc}"
            ) from None
        expect(
            len(_keys(run)) == fixture.seed_count,
            f"with one malformed record among {fixture.seed_count}, {len(_keys(run))} good ones arrived",
        )
        expect(bool(run.rejections), "the malformed record was not reported as an InputProblem")
        for problem in run.rejections:
            expect(problem.source == source.name, f"the problem names source {problem.source!r}")
            expect(
                bool(problem.document or problem.location),
                f"the problem does not say where the record is: {problem.describe()}",
            )
            expect(bool(problem.reason), f"the problem does not say why: {problem.describe()}")


# -- errors ---------------------------------------------------------------------------------
def check_refused_credentials_are_an_authentication_error(fixture: SourceFixture[Any], path: Path) -> None:
    """Credentials the remote refuses stop the pull with AuthenticationError (a config error)."""
    with running(fixture, path) as rig:
        bad = need(fixture, "bad_credentials")
        _seeded(fixture, rig, 3)
        error = _raised(lambda: _full(fixture, bad(rig)))
        expect(
            isinstance(error, AuthenticationError),
            f"refused credentials raised {_name(error)}, not connector.errors.AuthenticationError",
        )


def check_rate_limit_with_retry_after_is_retried(fixture: SourceFixture[Any], path: Path) -> None:
    """429 with Retry-After is waited out and the pull completes."""
    with running(fixture, path) as rig:
        inject = need(fixture, "inject")
        _seeded(fixture, rig, fixture.seed_count)
        source = _build(fixture, rig)
        fault = InjectedFault(status=429, headers={"Retry-After": "0"}, times=2)
        inject(rig, fault)
        runs: list[PullRun] = []
        error = _raised(lambda: runs.append(_full(fixture, source)))
        expect(error is None, f"the pull gave up on the 429 answers with {_name(error)} instead of waiting")
        run = runs[0]
        expect(fault.fired == 2, f"the 429 fault fired {fault.fired} times, not 2: check the inject hook")
        expect(len(_keys(run)) == fixture.seed_count, "records were lost around the 429 answers")


def check_persistent_server_error_is_retried_then_fails_retryable(
    fixture: SourceFixture[Any], path: Path
) -> None:
    """A 5xx on every read is retried, then the pull fails with RetryableError."""
    with running(fixture, path) as rig:
        inject = need(fixture, "inject")
        _seeded(fixture, rig, 3)
        source = _build(fixture, rig)
        fault = InjectedFault(status=503, times=200)
        inject(rig, fault)
        error = _raised(lambda: _full(fixture, source))
        expect(
            isinstance(error, RetryableError),
            f"a persistent 503 raised {_name(error)}, not connector.errors.RetryableError",
        )
        expect(fault.fired >= 2, f"the 503 was answered {fault.fired} time(s): it was not retried")


def check_secrets_never_appear_in_logs_errors_or_payloads(fixture: SourceFixture[Any], path: Path) -> None:
    """No secret value reaches a log record, an exception text or a stored raw payload."""
    with running(fixture, path) as rig:
        secrets = need(fixture, "secrets")
        _seeded(fixture, rig, fixture.seed_count)
        with probing() as probe:
            run = _full(fixture, _build(fixture, rig))
            probe.texts.extend(run.raws)
            if callable(fixture.bad_credentials):
                bad = fixture.bad_credentials
                probe.attempt(lambda: _full(fixture, bad(rig)))
            if callable(fixture.inject):
                fault = InjectedFault(status=500, times=200)
                fixture.inject(rig, fault)
                probe.attempt(lambda: _full(fixture, _build(fixture, rig)))
        probe.assert_clean(secrets(rig), type(fixture).__name__)


def check_fetch_returns_the_po_with_that_number(fixture: SourceFixture[Any], path: Path) -> None:
    """fetch(po_number) returns that PO (resync) and nothing for an unknown number."""
    if Capability.FETCH_ONE not in capabilities_of(fixture):
        raise SkipCheck("no FETCH_ONE capability")
    with running(fixture, path) as rig:
        _seeded(fixture, rig, 3)
        source = _build(fixture, rig)
        run = _full(fixture, source)
        expect(bool(run.records), "the pull yielded no record to fetch again")
        wanted = run.records[-1]
        assert isinstance(wanted, PurchaseOrder)
        found = source.fetch(wanted.po_number)
        expect(bool(found), f"fetch({wanted.po_number!r}) found nothing")
        for record in found:
            expect(isinstance(record, SourceRecord), f"fetch returned a {type(record).__name__}")
            expect(
                record.po.po_number == wanted.po_number,
                f"fetch({wanted.po_number!r}) returned PO {record.po.po_number!r}",
            )
        expect(source.fetch(NO_SUCH_PO) == [], "fetch of an unknown PO number returned records")


def _raised(action: Callable[[], Any]) -> BaseException | None:
    try:
        action()
    except Exception as exc:  # the caller inspects whatever was raised
        return exc
    return None


def _name(error: BaseException | None) -> str:
    return "nothing" if error is None else f"{type(error).__name__} ({error})"


def _describe(run: PullRun) -> str:
    return "; ".join(problem.describe() for problem in run.rejections[:3])


SOURCE_CHECKS: dict[str, SourceCheck] = {
    check.__name__.removeprefix("check_"): check
    for check in (
        check_declares_its_port,
        check_built_adapter_implements_the_port,
        check_registered_under_its_entry_point,
        check_pull_ends_and_yields_every_record,
        check_cursor_only_moves_forward,
        check_second_run_from_the_final_cursor_yields_nothing_new,
        check_next_run_picks_up_records_added_since,
        check_interrupted_run_resumes_without_loss,
        check_records_are_valid_canonical_models,
        check_malformed_record_is_reported_and_the_run_goes_on,
        check_refused_credentials_are_an_authentication_error,
        check_rate_limit_with_retry_after_is_retried,
        check_persistent_server_error_is_retried_then_fails_retryable,
        check_secrets_never_appear_in_logs_errors_or_payloads,
        check_fetch_returns_the_po_with_that_number,
    )
}


def run_source_check(fixture: SourceFixture[Any], name: str, path: Path) -> None:
    """Run one named check against the fixture (raises as the check does)."""
    SOURCE_CHECKS[name](fixture, path)
