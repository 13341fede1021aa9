"""The conformance kit applied to the stripe billing source, against the Stripe-like sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from adapters.stripe_billing import StripeBillingConfig, StripeBillingSource
from connector.http import RetryPolicy
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SourceFixture, SourceKit
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.stripe import MONTH, T0, StripeSandbox

KEY_ENV = "KIT_STRIPE_KEY"


@dataclass
class Account:
    """The sandbox and the second the next seeded invoices are created at."""

    box: StripeSandbox
    next_created: int = T0


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Account]:
    with serving(StripeSandbox()) as box:
        rig.setenv(KEY_ENV, box.secret_key)
        yield Account(box)


def build(rig: Rig[Account], key_env: str = KEY_ENV) -> StripeBillingSource:
    config = StripeBillingConfig(
        name="stripe", base_url=rig.env.box.url, api_key_env=key_env, page_size=7, overlap_seconds=0
    )
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, sleep=lambda seconds: None)
    return StripeBillingSource(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[Account]) -> StripeBillingSource:
    rig.setenv("KIT_STRIPE_WRONG_KEY", "sk_test_51NotTheKey0123456789abcdef")
    return build(rig, "KIT_STRIPE_WRONG_KEY")


def seed(rig: Rig[Account], count: int) -> None:
    # Each call bills new subscriptions, created after everything seeded before (one a second).
    rig.env.box.generate(count, per_second=1, start=rig.env.next_created)
    rig.env.next_created += count + MONTH


def malformed(rig: Rig[Account]) -> None:
    box = rig.env.box
    subscription = next(iter(box.subscriptions.values()))
    customer = box.customers[subscription["customer"]]
    line = box.line(
        subscription, subscription["items"]["data"][0]["price"], 1, T0 + 50 * MONTH, T0 + 51 * MONTH
    )
    line["period"]["end"] = "next month"
    box.add_invoice(customer, [line], subscription=subscription, created=T0 + 3)


def invoice_reads(request: Request) -> bool:
    return request.method == "GET" and request.path == "/v1/invoices"


def inject(rig: Rig[Account], fault: InjectedFault) -> None:
    rig.env.box.faults.queue(fault, matches=fault.counting(invoice_reads), times=fault.times)  # type: ignore[arg-type]


class TestStripeConformance(SourceKit):
    fixture = SourceFixture(
        adapter=StripeBillingSource,
        entry_point="stripe",
        start=start,
        build=build,
        seed=seed,
        seed_count=16,
        malformed=malformed,
        bad_credentials=bad_credentials,
        inject=inject,
        secrets=lambda rig: [rig.env.box.secret_key],
    )
