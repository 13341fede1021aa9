"""What an adapter's conformance test tells the kit: how to start, build, seed, break and count.

The kit can guess nothing about a provider, so a fixture names each piece as a small function
taking a `Rig` (the test's scratch folder, environment variables and the running environment
`start` produced). A piece left as `None` is missing: the tests that need it fail and say what to
provide. A piece set to `not_applicable("why")` does not exist for this adapter (a folder has no
credentials): the tests that need it are skipped with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from connector.model import InvoicePlan
from connector.ports import AdapterConfig, AdapterKind, Capability

E = TypeVar("E")
T = TypeVar("T")


class ConformanceFailure(AssertionError):
    """An adapter broke a behaviour of its port; the message says which and what was seen."""


class MissingFixture(AssertionError):
    """The fixture lacks a piece a test needs; the message says exactly what to provide."""


@dataclass(frozen=True)
class NotApplicable:
    """A fixture piece that does not exist for this adapter, and why."""

    reason: str


def not_applicable(reason: str) -> NotApplicable:
    """Mark a fixture piece as not existing for this adapter; its tests are skipped with `reason`."""
    return NotApplicable(reason)


class SkipCheck(Exception):
    """A check does not apply to this adapter (capability or fixture says so)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Piece = Callable[..., Any] | NotApplicable | None


@dataclass
class InjectedFault:
    """A failure the kit asks the fixture's `inject` hook to queue in its sandbox.

    Its attributes (`kind`, `status`, `when`, `headers`, `delay`) are those of a sandbox `Fault`,
    so a hook can queue it as is; wrap the hook's request predicate with `counting(...)` so the
    kit can tell how many times the fault really fired.
    """

    status: int = 500
    when: Literal["before", "after"] = "before"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    kind: str = "status"
    delay: float = 0.0
    fired: int = 0

    def counting(self, matches: Callable[[Any], bool]) -> Callable[[Any], bool]:
        """`matches`, counting each request it selects for this fault."""

        def predicate(request: Any) -> bool:
            if matches(request):
                self.fired += 1
                return True
            return False

        return predicate


class Rig(Generic[E]):
    """One test's world: a scratch folder, environment variables it may set, and the environment.

    `env` is what the fixture's `start` yielded (a running sandbox, a folder, ...). Variables set
    with `setenv` are restored when the test ends.
    """

    def __init__(self, path: Path, tenant: str = "default") -> None:
        self.path = path
        self.tenant = tenant
        self._env: E | None = None
        self._started = False
        self._saved: dict[str, str | None] = {}

    @property
    def env(self) -> E:
        if not self._started:
            raise RuntimeError("the rig's environment is not started yet")
        return self._env  # type: ignore[return-value]  # E may itself be None

    def set_env(self, value: E) -> None:
        self._env = value
        self._started = True

    def setenv(self, name: str, value: str) -> None:
        """Set an environment variable for the rest of the test."""
        if name not in self._saved:
            self._saved[name] = os.environ.get(name)
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


Start = Callable[[Rig[Any]], AbstractContextManager[Any]]


@dataclass(frozen=True)
class SourceFixture(Generic[E]):
    """How to test one PO source or billing source.

    - `adapter`: the adapter class; `entry_point`: its name in `po_connector.adapters`.
    - `start(rig)`: a context manager that starts what the adapter talks to (a sandbox, a
      folder) and yields it as `rig.env`; optional.
    - `build(rig)`: the adapter, configured against `rig.env` with fast retries.
    - `seed(rig, count)`: add `count` valid records, each with its own key, to `rig.env`.
    - `seed_count`: how many records the paging tests seed; enough for `min_batches` batches.
    - `malformed(rig)`: add one record the adapter must refuse (a bad amount, a missing field).
    - `bad_credentials(rig)`: the adapter built with credentials the remote refuses.
    - `inject(rig, fault)`: queue `fault` on the adapter's read requests in the sandbox.
    - `secrets(rig)`: secret values that must never appear in logs, errors or raw payloads.
    - `cursor_order(cursor)`: a sortable value of a cursor; by default its values in key order.
    - `known_deviations`: check name -> why this adapter knowingly differs; the check must fail
      (reported as xfail) and a check that starts passing fails, so the entry gets removed.
    """

    adapter: type[Any]
    entry_point: str | None = None
    start: Start | None = None
    build: Callable[[Rig[E]], Any] | None = None
    seed: Callable[[Rig[E], int], None] | None = None
    seed_count: int = 25
    min_batches: int = 2
    malformed: Callable[[Rig[E]], None] | NotApplicable | None = None
    bad_credentials: Callable[[Rig[E]], Any] | NotApplicable | None = None
    inject: Callable[[Rig[E], InjectedFault], None] | NotApplicable | None = None
    secrets: Callable[[Rig[E]], Sequence[str]] | NotApplicable | None = None
    cursor_order: Callable[[Mapping[str, Any]], Any] | None = None
    known_deviations: Mapping[str, str] = field(default_factory=dict)
    tenant: str = "default"


@dataclass(frozen=True)
class SinkFixture(Generic[E]):
    """How to test one invoice sink.

    - `adapter`, `entry_point`, `start`, `build`, `bad_credentials`, `secrets`,
      `known_deviations`: as for sources.
    - `plan(rig, n)`: the n-th valid plan the remote accepts (its customer and items exist);
      by default `connector.testing.samples.sample_plan(n)`.
    - `count(rig, plan)`: how many invoices the remote holds under the plan's invoice number.
    - `rejected_plan(rig)`: a plan the remote refuses for good (an unknown customer).
    - `rejection_text`: a piece of the provider's message that the RejectedError must carry.
    - `inject(rig, fault)`: queue `fault` on the requests that create invoices.
    - `fail_item(rig, plan)`: make this plan's item of the next batch fail transiently
      (BATCH_PUSH sinks); without it the batch test uses `rejected_plan`.
    """

    adapter: type[Any]
    entry_point: str | None = None
    start: Start | None = None
    build: Callable[[Rig[E]], Any] | None = None
    plan: Callable[[Rig[E], int], InvoicePlan] | None = None
    count: Callable[[Rig[E], InvoicePlan], int] | None = None
    rejected_plan: Callable[[Rig[E]], InvoicePlan] | NotApplicable | None = None
    rejection_text: str = ""
    inject: Callable[[Rig[E], InjectedFault], None] | NotApplicable | None = None
    fail_item: Callable[[Rig[E], InvoicePlan], None] | None = None
    bad_credentials: Callable[[Rig[E]], Any] | NotApplicable | None = None
    secrets: Callable[[Rig[E]], Sequence[str]] | NotApplicable | None = None
    known_deviations: Mapping[str, str] = field(default_factory=dict)
    tenant: str = "default"


# What each piece is, for the message of a test that needs a missing one.
WANTED: dict[str, str] = {
    "build": "build=lambda rig: YourAdapter(YourAdapter.Config(name=..., ...), AdapterContext()) "
    "configured against rig.env (the sandbox `start` yielded) with fast retries",
    "seed": "seed=lambda rig, count: ... that adds `count` valid records, each with its own key, "
    "to the system rig.env stands for",
    "malformed": "malformed=lambda rig: ... that adds one record the adapter must refuse "
    "(or not_applicable('why'))",
    "bad_credentials": "bad_credentials=lambda rig: the adapter built with credentials the remote "
    "refuses (or not_applicable('why'), e.g. a folder has none)",
    "inject": "inject=lambda rig, fault: rig.env.faults.queue(fault, matches=fault.counting(<the "
    "requests to fail>), times=fault.times) (or not_applicable('why'), e.g. no network)",
    "secrets": "secrets=lambda rig: [every secret value the adapter holds] (or not_applicable('why'))",
    "count": "count=lambda rig, plan: how many invoices the remote holds numbered plan.invoice_number",
    "rejected_plan": "rejected_plan=lambda rig: a plan the remote refuses for good, e.g. an unknown "
    "customer (or not_applicable('why'))",
    "entry_point": "entry_point='<the name under [project.entry-points.\"po_connector.adapters\"]>'",
}


def need(fixture: SourceFixture[Any] | SinkFixture[Any], piece: str) -> Any:
    """The fixture's piece, or a MissingFixture / SkipCheck saying what to do about it."""
    value = getattr(fixture, piece)
    if value is None:
        what = type(fixture).__name__
        raise MissingFixture(
            f"{what}.{piece} is not set for {fixture.adapter.__name__}; provide {WANTED.get(piece, piece)}"
        )
    if isinstance(value, NotApplicable):
        raise SkipCheck(value.reason)
    return value


@contextmanager
def running(fixture: SourceFixture[Any] | SinkFixture[Any], path: Path) -> Iterator[Rig[Any]]:
    """A started rig for one check; the environment is stopped and variables restored after."""
    rig: Rig[Any] = Rig(path, tenant=fixture.tenant)
    try:
        if fixture.start is None:
            rig.set_env(None)
            yield rig
        else:
            with fixture.start(rig) as env:
                rig.set_env(env)
                yield rig
    finally:
        rig.restore()


def expect(condition: bool, message: str) -> None:
    """Raise a ConformanceFailure with `message` unless `condition` holds."""
    if not condition:
        raise ConformanceFailure(message)


def expect_declarations(adapter: type, kinds: tuple[AdapterKind, ...]) -> None:
    """The adapter class declares one of `kinds`, its capabilities and its config model."""
    kind = getattr(adapter, "kind", None)
    expect(
        kind in kinds,
        f"{adapter.__name__}.kind is {kind!r}, not " + " or ".join(f"AdapterKind.{k.name}" for k in kinds),
    )
    capabilities = getattr(adapter, "capabilities", None)
    expect(
        isinstance(capabilities, frozenset) and all(isinstance(c, Capability) for c in capabilities),
        f"{adapter.__name__}.capabilities must be a frozenset of connector.ports.Capability",
    )
    config = getattr(adapter, "Config", None)
    expect(
        isinstance(config, type) and issubclass(config, AdapterConfig),
        f"{adapter.__name__}.Config must be a subclass of connector.ports.AdapterConfig",
    )
