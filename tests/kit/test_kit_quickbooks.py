"""The conformance kit applied to the quickbooks sink, against the QuickBooks Online sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.quickbooks import QuickBooksConfig, QuickBooksSink
from connector.http import RetryPolicy
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SinkFixture, SinkKit, sample_plan
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.quickbooks import TOKEN_PATH, QuickBooksSandbox, system_fault

SECRET_ENV = "KIT_QBO_CLIENT_SECRET"
REFRESH_ENV = "KIT_QBO_REFRESH_TOKEN"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[QuickBooksSandbox]:
    with serving(QuickBooksSandbox()) as box:
        rig.setenv(SECRET_ENV, box.client_secret)
        rig.setenv(REFRESH_ENV, box.initial_refresh_token)
        yield box


def build(
    rig: Rig[QuickBooksSandbox], token_file: str = "qbo-token.json", **overrides: Any
) -> QuickBooksSink:
    box = rig.env
    values: dict[str, Any] = {
        "name": "qbo",
        "base_url": box.url,
        "realm_id": box.realm_id,
        "token_url": box.url + TOKEN_PATH,
        "client_id": box.client_id,
        "client_secret_env": SECRET_ENV,
        "refresh_token_file": rig.path / token_file,
        "refresh_token_env": REFRESH_ENV,
        "customer_refs": {"CUST-1": "1"},
        "item_refs": {"SEAT": "2"},
        "terms_refs": {"NET30": "3"},
        "read_timeout": 0.5,
        "per_minute": 60_000,
    }
    values.update(overrides)
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(QuickBooksConfig(**values), AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[QuickBooksSandbox]) -> QuickBooksSink:
    rig.setenv("KIT_QBO_REVOKED_TOKEN", "qbo-revoked-refresh-token-000")
    return build(rig, token_file="revoked-token.json", refresh_token_env="KIT_QBO_REVOKED_TOKEN")


def creates(request: Request) -> bool:
    return request.method == "POST" and request.path.endswith(("/invoice", "/batch"))


def inject(rig: Rig[QuickBooksSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(creates), times=fault.times)  # type: ignore[arg-type]


def fail_item(rig: Rig[QuickBooksSandbox], plan: InvoicePlan) -> None:
    rig.env.item_faults.queue(
        system_fault(), matches=lambda item: item.get("DocNumber") == plan.invoice_number
    )


def secrets(rig: Rig[QuickBooksSandbox]) -> list[str]:
    box = rig.env
    return [box.client_secret, box.initial_refresh_token, *box.issued_tokens]


class TestQuickBooksConformance(SinkKit):
    fixture = SinkFixture(
        adapter=QuickBooksSink,
        entry_point="quickbooks",
        start=start,
        build=build,
        plan=lambda rig, n: sample_plan(n, sink="qbo"),
        count=lambda rig, plan: (
            sum(1 for memo in rig.env.credit_memos if memo["DocNumber"] == plan.invoice_number)
            if plan.is_credit_note
            else rig.env.doc_number_counts()[plan.invoice_number]
        ),
        rejected_plan=lambda rig: sample_plan(99, sink="qbo", customer_ref="999"),
        rejection_text="CustomerRef 999 does not exist",
        inject=inject,
        fail_item=fail_item,
        bad_credentials=bad_credentials,
        secrets=secrets,
    )
