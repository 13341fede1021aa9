"""The conformance kit applied to the cxml-invoice sink, against a buyer endpoint that checks the DTD."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.cxml_invoice import CxmlInvoiceConfig, CxmlInvoiceSink
from connector.http import RetryPolicy
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SinkFixture, SinkKit, sample_plan
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.cxml_buyer import INVOICE_PATH, CxmlBuyerSandbox
from tests.support.shared import shared_fixture

SECRET = "kit-buyer-shared-secret-0123"
SECRET_ENV = "KIT_CXML_BUYER_SECRET"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[CxmlBuyerSandbox]:
    box = CxmlBuyerSandbox(
        shared_secret=SECRET,
        dtd_path=shared_fixture("cxml/InvoiceDetail-1.2.037.dtd"),
        orders={f"PO-{n}": {1} for n in range(1, 10)},
    )
    with serving(box):
        rig.setenv(SECRET_ENV, SECRET)
        yield box


def build(rig: Rig[CxmlBuyerSandbox], secret_env: str = SECRET_ENV) -> CxmlInvoiceSink:
    config = CxmlInvoiceConfig(
        name="acme-invoices",
        url=f"{rig.env.url}{INVOICE_PATH}",
        from_domain="DUNS",
        from_identity="supplier-duns",
        to_domain="NetworkID",
        to_identity="buyer-network-id",
        sender_domain="DUNS",
        sender_identity="supplier-duns",
        shared_secret_env=secret_env,
        archive_dir=rig.path / "sent",
        read_timeout=1.0,
    )
    retry = RetryPolicy(max_attempts=3, base_delay=0.0, sleep=lambda seconds: None)
    return CxmlInvoiceSink(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[CxmlBuyerSandbox]) -> CxmlInvoiceSink:
    rig.setenv("KIT_CXML_WRONG_SECRET", "not-the-buyer-secret-42")
    return build(rig, "KIT_CXML_WRONG_SECRET")


def creates(request: Request) -> bool:
    return request.method == "POST" and request.path == INVOICE_PATH


def inject(rig: Rig[CxmlBuyerSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(creates), times=fault.times)  # type: ignore[arg-type]


class TestCxmlInvoiceConformance(SinkKit):
    fixture = SinkFixture(
        adapter=CxmlInvoiceSink,
        entry_point="cxml-invoice",
        start=start,
        build=build,
        plan=lambda rig, n: sample_plan(n, sink="acme-invoices"),
        count=lambda rig, plan: int(plan.invoice_number in rig.env.invoices),
        rejected_plan=lambda rig: sample_plan(99, sink="acme-invoices", po_number="PO-UNKNOWN"),
        rejection_text="Could not find order header PO-UNKNOWN",
        inject=inject,
        bad_credentials=bad_credentials,
        secrets=lambda rig: [SECRET],
    )
