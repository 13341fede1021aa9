"""The po-connector conformance kit run against the jsonproc source and its sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from connector.http import RetryPolicy
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SourceFixture, SourceKit
from connector.testing.sandbox import Request
from jsonproc_sandbox import JsonProcSandbox

from po_connector_jsonproc.adapter import JsonProcConfig, JsonProcSource

KEY_ENV = "JSONPROC_TEST_KEY"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[JsonProcSandbox]:
    """A running sandbox for one test, with its API key in the environment."""
    with JsonProcSandbox() as box:
        rig.setenv(KEY_ENV, box.api_key)
        yield box


def build(rig: Rig[JsonProcSandbox], key_env: str = KEY_ENV) -> JsonProcSource:
    """The source against the sandbox: small pages so paging is exercised, no real sleeping."""
    config = JsonProcConfig(name="acme-jsonproc", base_url=rig.env.url, api_key_env=key_env, page_size=10)
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return JsonProcSource(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[JsonProcSandbox]) -> JsonProcSource:
    rig.setenv("JSONPROC_WRONG_KEY", "not-the-api-key-42")
    return build(rig, "JSONPROC_WRONG_KEY")


def seed(rig: Rig[JsonProcSandbox], count: int) -> None:
    for _ in range(count):
        rig.env.add_order()


def malformed(rig: Rig[JsonProcSandbox]) -> None:
    rig.env.add_order(lines=[{"line": 1, "sku": "PLAN-PRO", "quantity": "three", "unit_price": "49.00"}])


def order_reads(request: Request) -> bool:
    return request.path == "/v1/orders"


def inject(rig: Rig[JsonProcSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(order_reads), times=fault.times)  # type: ignore[arg-type]


class TestJsonProcConformance(SourceKit):
    fixture = SourceFixture(
        adapter=JsonProcSource,
        entry_point="jsonproc",
        start=start,
        build=build,
        seed=seed,
        seed_count=25,
        malformed=malformed,
        bad_credentials=bad_credentials,
        inject=inject,
        secrets=lambda rig: [rig.env.api_key],
        cursor_order=lambda cursor: datetime.fromisoformat(cursor["updated_since"]),
    )
