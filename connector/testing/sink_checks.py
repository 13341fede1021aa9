"""The behaviours every invoice sink must show, as plain check functions.

The kit delivers a plan the way the core's pusher does: `find` first (for LOOKUP sinks), and
`push` only when nothing was found. Each check raises `ConformanceFailure` when the sink
misbehaves, `MissingFixture` when the fixture lacks a piece, `SkipCheck` when it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from connector.errors import AuthenticationError, RejectedError, RemoteError, UncertainError
from connector.model import InvoicePlan, RemoteRef
from connector.planning import plan_credit_note
from connector.ports import (
    AdapterKind,
    BatchInvoiceSink,
    Capability,
    InvoiceSink,
    PushOutcome,
)
from connector.testing.fixtures import (
    ConformanceFailure,
    InjectedFault,
    Rig,
    SinkFixture,
    SkipCheck,
    expect,
    expect_declarations,
    need,
    running,
)
from connector.testing.probe import probing
from connector.testing.samples import sample_plan
from connector.testing.source_checks import capabilities_of, check_registered_under_its_entry_point

SinkCheck = Callable[[SinkFixture[Any], Path], None]


def _plan(fixture: SinkFixture[Any], rig: Rig[Any], n: int) -> InvoicePlan:
    if fixture.plan is not None:
        return fixture.plan(rig, n)
    return sample_plan(n, tenant=rig.tenant)


def _build(fixture: SinkFixture[Any], rig: Rig[Any]) -> Any:
    return need(fixture, "build")(rig)


def _count(fixture: SinkFixture[Any], rig: Rig[Any], plan: InvoicePlan) -> int:
    return int(need(fixture, "count")(rig, plan))


def deliver(sink: Any, plan: InvoicePlan) -> RemoteRef:
    """Deliver a plan as the core does: look it up first where the sink can, push when absent."""
    if Capability.LOOKUP in capabilities_of(type(sink)):
        found = sink.find([plan])
        expect(isinstance(found, dict), f"find() returned a {type(found).__name__}, not a dict")
        if plan.idempotency_key in found:
            ref = found[plan.idempotency_key]
            expect(isinstance(ref, RemoteRef), f"find() maps to a {type(ref).__name__}, not a RemoteRef")
            return ref  # type: ignore[no-any-return]
    ref = sink.push(plan)
    expect(isinstance(ref, RemoteRef), f"push() returned a {type(ref).__name__}, not a RemoteRef")
    return ref  # type: ignore[no-any-return]


def _one_invoice(fixture: SinkFixture[Any], rig: Rig[Any], plan: InvoicePlan, what: str) -> None:
    count = _count(fixture, rig, plan)
    expect(count == 1, f"{what}: the remote holds {count} invoices numbered {plan.invoice_number}, not 1")


def _total_matches(ref: RemoteRef, plan: InvoicePlan) -> None:
    expect(
        ref.total is None or ref.total == plan.total,
        f"the sink reports total {ref.total} for invoice {plan.invoice_number}, planned {plan.total}",
    )


# -- declarations ---------------------------------------------------------------------------
def check_declares_its_port(fixture: SinkFixture[Any], path: Path) -> None:
    """The class says it is a sink, what it can do and how it is configured."""
    expect_declarations(fixture.adapter, (AdapterKind.SINK,))


def check_built_adapter_implements_the_port(fixture: SinkFixture[Any], path: Path) -> None:
    """The built sink has a name, find and push, and push_batch when it declares BATCH_PUSH."""
    with running(fixture, path) as rig:
        sink = _build(fixture, rig)
        expect(isinstance(sink, InvoiceSink), f"{type(sink).__name__} does not implement InvoiceSink")
        expect(bool(getattr(sink, "name", "")), "the sink has no `name` (set self.name = config.name)")
        if Capability.BATCH_PUSH in capabilities_of(fixture):
            expect(
                isinstance(sink, BatchInvoiceSink),
                f"{type(sink).__name__} declares BATCH_PUSH but has no push_batch",
            )


# -- exactly once ---------------------------------------------------------------------------
def check_find_reports_nothing_for_a_plan_never_pushed(fixture: SinkFixture[Any], path: Path) -> None:
    """A lookup finds no invoice for plans that were never delivered."""
    if Capability.LOOKUP not in capabilities_of(fixture):
        raise SkipCheck("no LOOKUP capability")
    with running(fixture, path) as rig:
        sink = _build(fixture, rig)
        sink.push(_plan(fixture, rig, 1))
        found = sink.find([_plan(fixture, rig, 2), _plan(fixture, rig, 3)])
        expect(found == {}, f"find() reported invoices for plans never pushed: {sorted(found)[:2]}")


def check_same_plan_twice_yields_one_invoice(fixture: SinkFixture[Any], path: Path) -> None:
    """Delivering a plan twice, the second time from a new sink instance, creates one invoice."""
    with running(fixture, path) as rig:
        plan = _plan(fixture, rig, 1)
        first = deliver(_build(fixture, rig), plan)
        second = deliver(_build(fixture, rig), plan)
        _one_invoice(fixture, rig, plan, "after delivering the same plan twice")
        expect(
            second.remote_id == first.remote_id,
            f"the two deliveries name different remote invoices: {first.remote_id} and {second.remote_id}",
        )
        _total_matches(first, plan)
        _total_matches(second, plan)


def check_credit_note_of_a_pushed_invoice_is_created_once(fixture: SinkFixture[Any], path: Path) -> None:
    """A credit note for a pushed invoice, delivered twice, is one credit with the invoice's total;
    a lookup of both finds both (fixture `count` counts documents of either kind by number)."""
    if Capability.CREDIT_NOTES not in capabilities_of(fixture):
        raise SkipCheck("no CREDIT_NOTES capability")
    with running(fixture, path) as rig:
        invoice = _plan(fixture, rig, 1)
        ref = deliver(_build(fixture, rig), invoice)
        credit = plan_credit_note(
            invoice, reason="conformance", issue_date=invoice.issue_date, remote_id=ref.remote_id
        )
        first = deliver(_build(fixture, rig), credit)
        second = deliver(_build(fixture, rig), credit)
        count = _count(fixture, rig, credit)
        expect(count == 1, f"the remote holds {count} credit notes numbered {credit.invoice_number}, not 1")
        expect(
            second.remote_id == first.remote_id,
            f"the two deliveries name different credit notes: {first.remote_id} and {second.remote_id}",
        )
        _total_matches(first, credit)
        _one_invoice(fixture, rig, invoice, "after crediting it")
        if Capability.LOOKUP in capabilities_of(fixture):
            found = _build(fixture, rig).find([invoice, credit])
            expect(
                set(found) == {invoice.idempotency_key, credit.idempotency_key},
                f"find() of an invoice and its credit note found {len(found)} of 2",
            )


def check_uncertain_outcome_is_resolved_by_lookup(fixture: SinkFixture[Any], path: Path) -> None:
    """A create whose answer is lost raises UncertainError; lookup-then-push ends with one invoice."""
    with running(fixture, path) as rig:
        inject = need(fixture, "inject")
        sink = _build(fixture, rig)
        plan = _plan(fixture, rig, 1)
        fault = InjectedFault(status=500, when="after", times=1)
        inject(rig, fault)
        try:
            sink.push(plan)
        except UncertainError:
            pass
        except RemoteError as exc:
            raise ConformanceFailure(
                f"a 500 after the write raised {type(exc).__name__}, not UncertainError: the core "
                f"would {'resend blindly' if not isinstance(exc, RejectedError) else 'give up'}"
            ) from None
        else:
            raise ConformanceFailure("a 500 after the write was reported as a success")
        expect(fault.fired == 1, f"the fault fired {fault.fired} times, not once: check the inject hook")
        ref = deliver(_build(fixture, rig), plan)
        _one_invoice(fixture, rig, plan, "after resolving the uncertain create")
        _total_matches(ref, plan)


def check_rate_limited_create_is_retried(fixture: SinkFixture[Any], path: Path) -> None:
    """429 with Retry-After on a create is waited out and the invoice is created once."""
    with running(fixture, path) as rig:
        inject = need(fixture, "inject")
        sink = _build(fixture, rig)
        plan = _plan(fixture, rig, 1)
        fault = InjectedFault(status=429, headers={"Retry-After": "0"}, times=1)
        inject(rig, fault)
        try:
            sink.push(plan)
        except RemoteError as exc:
            raise ConformanceFailure(
                f"the create gave up on the 429 answer with {type(exc).__name__} ({exc}) instead of waiting"
            ) from exc
        expect(fault.fired == 1, f"the 429 fired {fault.fired} times, not once: check the inject hook")
        _one_invoice(fixture, rig, plan, "after a 429 on the create")


def check_rejected_plan_is_a_rejected_error_with_the_providers_message(
    fixture: SinkFixture[Any], path: Path
) -> None:
    """A plan the remote refuses raises RejectedError carrying the provider's message."""
    with running(fixture, path) as rig:
        rejected = need(fixture, "rejected_plan")(rig)
        sink = _build(fixture, rig)
        try:
            sink.push(rejected)
        except RejectedError as exc:
            expect(
                fixture.rejection_text in str(exc),
                f"the RejectedError does not carry the provider's message {fixture.rejection_text!r}: {exc}",
            )
        except Exception as exc:
            raise ConformanceFailure(
                f"a refused plan raised {type(exc).__name__} ({exc}), not RejectedError"
            ) from None
        else:
            raise ConformanceFailure("a plan the remote refuses was reported as created")
        count = _count(fixture, rig, rejected)
        expect(count == 0, f"a refused plan left {count} invoices behind")


def check_batch_partial_failure_retries_only_the_failed_items(fixture: SinkFixture[Any], path: Path) -> None:
    """One failed item fails alone; sending the failed items again creates no duplicate."""
    if Capability.BATCH_PUSH not in capabilities_of(fixture):
        raise SkipCheck("no BATCH_PUSH capability")
    with running(fixture, path) as rig:
        sink = _build(fixture, rig)
        plans = [_plan(fixture, rig, n) for n in (1, 2, 3)]
        transient = fixture.fail_item is not None
        if fixture.fail_item is not None:
            fixture.fail_item(rig, plans[1])
        else:
            plans[1] = need(fixture, "rejected_plan")(rig)
        outcomes = sink.push_batch(plans)
        _outcomes_match(outcomes, plans)
        for index in (0, 2):
            expect(
                outcomes[index].ref is not None and outcomes[index].error is None,
                f"item {index + 1} failed beside the bad one: {outcomes[index].error}",
            )
        failed = outcomes[1]
        expect(
            failed.ref is None and isinstance(failed.error, RemoteError),
            "the item meant to fail came back without a RemoteError",
        )
        retry = [plans[1]]
        if isinstance(failed.error, UncertainError) and Capability.LOOKUP in capabilities_of(fixture):
            retry = [p for p in retry if p.idempotency_key not in sink.find(retry)]
        again = sink.push_batch(retry) if retry else []
        _outcomes_match(again, retry)
        for plan in (plans[0], plans[2]):
            _one_invoice(fixture, rig, plan, "after the batch and the retry of its failed item")
        if transient:
            _one_invoice(fixture, rig, plans[1], "after retrying the transiently failed item")
        else:
            expect(
                all(isinstance(o.error, RejectedError) for o in again),
                "the refused item did not fail again as RejectedError",
            )


def _outcomes_match(outcomes: Sequence[PushOutcome], plans: Sequence[InvoicePlan]) -> None:
    expect(
        [o.idempotency_key for o in outcomes] == [p.idempotency_key for p in plans],
        "push_batch must return one PushOutcome per plan, in the plans' order",
    )


# -- credentials and secrets ----------------------------------------------------------------
def check_refused_credentials_are_an_authentication_error(fixture: SinkFixture[Any], path: Path) -> None:
    """Credentials the remote refuses raise AuthenticationError and create nothing."""
    with running(fixture, path) as rig:
        bad = need(fixture, "bad_credentials")
        plan = _plan(fixture, rig, 1)
        error: BaseException | None = None
        try:
            deliver(bad(rig), plan)
        except Exception as exc:  # inspected below
            error = exc
        expect(
            isinstance(error, AuthenticationError),
            f"refused credentials raised {'nothing' if error is None else type(error).__name__}"
            f"{'' if error is None else f' ({error})'}, not connector.errors.AuthenticationError",
        )
        count = _count(fixture, rig, plan)
        expect(count == 0, f"refused credentials still created {count} invoices")


def check_secrets_never_appear_in_logs_or_errors(fixture: SinkFixture[Any], path: Path) -> None:
    """No secret value reaches a log record or an exception text, on success or failure."""
    with running(fixture, path) as rig:
        secrets = need(fixture, "secrets")
        with probing() as probe:
            sink = _build(fixture, rig)
            probe.attempt(lambda: deliver(sink, _plan(fixture, rig, 1)))
            if callable(fixture.rejected_plan):
                rejected = fixture.rejected_plan(rig)
                probe.attempt(lambda: sink.push(rejected))
            if callable(fixture.inject):
                fixture.inject(rig, InjectedFault(status=500, when="after", times=1))
                probe.attempt(lambda: sink.push(_plan(fixture, rig, 2)))
            if callable(fixture.bad_credentials):
                bad = fixture.bad_credentials
                probe.attempt(lambda: deliver(bad(rig), _plan(fixture, rig, 3)))
        probe.assert_clean(secrets(rig), type(fixture).__name__)


SINK_CHECKS: dict[str, SinkCheck] = {
    check.__name__.removeprefix("check_"): check
    for check in (
        check_declares_its_port,
        check_built_adapter_implements_the_port,
        check_registered_under_its_entry_point,
        check_find_reports_nothing_for_a_plan_never_pushed,
        check_same_plan_twice_yields_one_invoice,
        check_credit_note_of_a_pushed_invoice_is_created_once,
        check_uncertain_outcome_is_resolved_by_lookup,
        check_rate_limited_create_is_retried,
        check_rejected_plan_is_a_rejected_error_with_the_providers_message,
        check_batch_partial_failure_retries_only_the_failed_items,
        check_refused_credentials_are_an_authentication_error,
        check_secrets_never_appear_in_logs_or_errors,
    )
}


def run_sink_check(fixture: SinkFixture[Any], name: str, path: Path) -> None:
    """Run one named check against the fixture (raises as the check does)."""
    SINK_CHECKS[name](fixture, path)
