"""The conformance kit applied to the xero sink, against the loopback Xero sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.xero import XeroConfig, XeroSink
from connector.http import RetryPolicy
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SinkFixture, SinkKit, sample_plan
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.xero import XeroSandbox

TOKEN = "kit-xero-access-token-0123456789"
TOKEN_ENV = "KIT_XERO_TOKEN"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[XeroSandbox]:
    box = XeroSandbox(access_token=TOKEN)
    box.add_contact("CUST-1")
    with serving(box):
        rig.setenv(TOKEN_ENV, TOKEN)
        yield box


def build(rig: Rig[XeroSandbox], token_env: str = TOKEN_ENV) -> XeroSink:
    config = XeroConfig(
        name="xero",
        base_url=rig.env.api_url,
        tenant_id=rig.env.tenant_id,
        access_token_env=token_env,
        per_minute=60_000,
        read_timeout=0.5,
    )
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return XeroSink(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[XeroSandbox]) -> XeroSink:
    rig.setenv("KIT_XERO_WRONG_TOKEN", "not-the-xero-token-42")
    return build(rig, "KIT_XERO_WRONG_TOKEN")


def creates(request: Request) -> bool:
    return request.method == "PUT" and request.path.endswith("/Invoices")


def inject(rig: Rig[XeroSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(creates), times=fault.times)  # type: ignore[arg-type]


def count(rig: Rig[XeroSandbox], plan: InvoicePlan) -> int:
    """Sales invoices, or ACCRECCREDIT credit notes for a credit note, numbered as the plan."""
    if plan.is_credit_note:
        return sum(1 for note in rig.env.credit_notes if note["CreditNoteNumber"] == plan.invoice_number)
    return sum(
        1 for i in rig.env.invoices if i["InvoiceNumber"] == plan.invoice_number and i["Type"] == "ACCREC"
    )


class TestXeroConformance(SinkKit):
    fixture = SinkFixture(
        adapter=XeroSink,
        entry_point="xero",
        start=start,
        build=build,
        plan=lambda rig, n: sample_plan(n, sink="xero", currency="EUR"),
        count=count,
        rejected_plan=lambda rig: sample_plan(99, sink="xero", currency="EUR", customer_ref="NOBODY"),
        rejection_text="Contact Name cannot be empty.",
        inject=inject,
        bad_credentials=bad_credentials,
        secrets=lambda rig: [TOKEN],
    )
