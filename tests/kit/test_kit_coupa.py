"""The conformance kit applied to the coupa PO source, against the Coupa-like sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from adapters.coupa import CoupaConfig, CoupaSource
from connector.http import RetryPolicy
from connector.ports import AdapterContext
from connector.testing import InjectedFault, Rig, SourceFixture, SourceKit
from tests.kit.support import serving
from tests.sandboxes.base import Request
from tests.sandboxes.coupa import CoupaSandbox

SECRET_ENV = "KIT_COUPA_SECRET"


@contextmanager
def start(rig: Rig[Any]) -> Iterator[CoupaSandbox]:
    with serving(CoupaSandbox()) as box:
        rig.setenv(SECRET_ENV, box.client_secret)
        yield box


def build(rig: Rig[CoupaSandbox], secret_env: str = SECRET_ENV) -> CoupaSource:
    config = CoupaConfig(
        name="acme-coupa",
        base_url=rig.env.url,
        client_id=rig.env.client_id,
        client_secret_env=secret_env,
        page_size=10,
        timeout_connect=1.0,
        timeout_read=1.0,
    )
    retry = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0, sleep=lambda s: None)
    return CoupaSource(config, AdapterContext(tenant=rig.tenant), retry=retry)


def bad_credentials(rig: Rig[CoupaSandbox]) -> CoupaSource:
    rig.setenv("KIT_COUPA_WRONG_SECRET", "not-the-client-secret-42")
    return build(rig, "KIT_COUPA_WRONG_SECRET")


def seed(rig: Rig[CoupaSandbox], count: int) -> None:
    for _ in range(count):
        rig.env.add_po()


def malformed(rig: Rig[CoupaSandbox]) -> None:
    po = rig.env.add_po()
    po["order-lines"][0]["price"] = "twelve"


def api_reads(request: Request) -> bool:
    return request.method == "GET" and request.path.startswith("/api/")


def inject(rig: Rig[CoupaSandbox], fault: InjectedFault) -> None:
    rig.env.faults.queue(fault, matches=fault.counting(api_reads), times=fault.times)  # type: ignore[arg-type]


def secrets(rig: Rig[CoupaSandbox]) -> list[str]:
    return [rig.env.client_secret, *rig.env.tokens]


class TestCoupaConformance(SourceKit):
    fixture = SourceFixture(
        adapter=CoupaSource,
        entry_point="coupa",
        start=start,
        build=build,
        seed=seed,
        seed_count=35,
        malformed=malformed,
        bad_credentials=bad_credentials,
        inject=inject,
        secrets=secrets,
        cursor_order=lambda cursor: datetime.fromisoformat(cursor["updated_at"]),
    )
