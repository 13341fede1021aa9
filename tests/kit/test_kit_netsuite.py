"""The conformance kit applied to the netsuite sink, against the NetSuite REST sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.netsuite import NetSuiteConfig, NetSuiteSink
from connector.http import RetryPolicy
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SinkFixture, SinkKit, sample_plan
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.netsuite import PREFIX, NetSuiteSandbox

TOKEN = "kit-netsuite-token-0123456789"
TOKEN_ENV = "KIT_NS_TOKEN"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[NetSuiteSandbox]:
    with serving(NetSuiteSandbox(token=TOKEN, customers={"101"}, items={"501"})) as box:
        rig.setenv(TOKEN_ENV, TOKEN)
        yield box


def build(rig: Rig[NetSuiteSandbox], token_env: str = TOKEN_ENV) -> NetSuiteSink:
    config = NetSuiteConfig(
        name="ns",
        base_url=f"{rig.env.url}{PREFIX}",
        access_token_env=token_env,
        customer_ids={"CUST-1": "101", "GHOST": "999"},
        item_ids={"SEAT": "501"},
        read_timeout=1.0,
    )
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return NetSuiteSink(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[NetSuiteSandbox]) -> NetSuiteSink:
    rig.setenv("KIT_NS_WRONG_TOKEN", "not-the-netsuite-token-42")
    return build(rig, "KIT_NS_WRONG_TOKEN")


def creates(request: Request) -> bool:
    return request.method == "PUT" and "/record/v1/invoice/" in request.path


def inject(rig: Rig[NetSuiteSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(creates), times=fault.times)  # type: ignore[arg-type]


def count(rig: Rig[NetSuiteSandbox], plan: InvoicePlan) -> int:
    """Invoices, or credit memos for a credit note, numbered as the plan."""
    records = rig.env.credit_memos if plan.is_credit_note else rig.env.invoices
    return sum(1 for record in records.values() if record["externalId"] == plan.invoice_number)


class TestNetSuiteConformance(SinkKit):
    fixture = SinkFixture(
        adapter=NetSuiteSink,
        entry_point="netsuite",
        start=start,
        build=build,
        plan=lambda rig, n: sample_plan(n, sink="ns"),
        count=count,
        rejected_plan=lambda rig: sample_plan(99, sink="ns", customer_ref="GHOST"),
        rejection_text="Invalid Field Value 999 for the following field: entity",
        inject=inject,
        bad_credentials=bad_credentials,
        secrets=lambda rig: [TOKEN],
    )
