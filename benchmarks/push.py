"""Invoice push through the real core against each API sink's loopback sandbox.

For each sink: N invoice plans go into the outbox of a fresh SQLite state (`upsert_plan`) and
`push_all` drains it in a recorded run (claim -> batched lookup -> push or push_batch ->
record), as `po-connector push` does. Printed per sink: API calls per invoice (requests the
sandbox saw, token refreshes aside, divided by N), invoices per second, and a bare baseline: N
plain requests, one per invoice, to the sandbox's create endpoint with bodies rendered
beforehand (on one keep-alive session, as the connector's client uses). Every run is checked:
the sandbox must hold each invoice exactly once.

With `--faults RATE` the sandbox fails that share of write requests (the fault tests' mix)
and the push is repeated, as cron would, until the outbox is drained: exactly-once at scale.

    python benchmarks/push.py [--plans N] [--sinks quickbooks,xero,netsuite,cxml-invoice] [--faults 0.3]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from adapters import quickbooks_payload, xero_payload
from adapters.netsuite import decimal_json
from connector.config import load_config
from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms, utcnow
from connector.planning import idempotency_key, invoice_number
from connector.pushing import push_all
from connector.runtime import Connector
from state import outbox
from tests.sandboxes.netsuite import NetSuiteSandbox
from tests.sandboxes.quickbooks import TOKEN_PATH, QuickBooksSandbox
from tests.sandboxes.xero import XeroSandbox
from tests.support.sink_sandboxes import (
    EXAMPLE_CUSTOMERS,
    HARNESSES,
    SINK_NAME,
    TENANT,
    SinkSetup,
    outbox_counts,
    sink_setup,
)

TARGETS = {"quickbooks": 0.1, "xero": 0.1, "netsuite": 1.05}
MAX_ROUNDS = 30  # push runs with faults before giving up


@dataclass(frozen=True)
class Plain:
    """A create request sent without the connector."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | bytes


@dataclass(frozen=True)
class Figures:
    """What one sink's push cost."""

    kind: str
    plans: int
    calls: int
    seconds: float
    rounds: int
    bare_seconds: float

    @property
    def per_invoice(self) -> float:
        return self.calls / self.plans


def make_plans(count: int) -> list[InvoicePlan]:
    """Monthly invoices of the example's customers: seats plus an add-on, on twelve-month POs."""
    customers = sorted(EXAMPLE_CUSTOMERS)
    plans = []
    for n in range(count):
        customer = customers[n % len(customers)]
        month = date(2026, 1 + (n // len(customers)) % 12, 1)
        po_number = f"PO-{n // (len(customers) * 12):04d}-{customer[5:]}"
        po_key = f"{TENANT}/bench/{po_number}"
        billing_key = f"{TENANT}/billing/SUB-{customer}-{n}/{month.isoformat()}"
        end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        lines = (
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="PLAN-PRO",
                description="Pro plan seats",
                quantity=Decimal(5 + n % 40),
                unit_price=Money.of("40.00", "USD"),
                service_start=month,
                service_end=end,
            ),
            InvoiceLine(
                line_no=2,
                po_line_no=2,
                sku="ADDON-SSO",
                description="Single sign-on add-on",
                quantity=Decimal(1),
                unit_price=Money.of("10.00", "USD"),
                service_start=month,
                service_end=end,
            ),
        )
        plans.append(
            InvoicePlan(
                idempotency_key=idempotency_key(TENANT, SINK_NAME, customer, po_key, billing_key),
                invoice_number=invoice_number(TENANT, customer, po_key, billing_key),
                sink=SINK_NAME,
                customer_ref=customer,
                customer_name=EXAMPLE_CUSTOMERS[customer],
                po_number=po_number,
                po_key=po_key,
                po_revision=1,
                billing_key=billing_key,
                currency="USD",
                issue_date=month,
                due_date=month + timedelta(days=30),
                payment_terms=PaymentTerms(code="NET30", net_days=30),
                bill_to=Address(
                    name=EXAMPLE_CUSTOMERS[customer],
                    lines=("1 Main St",),
                    city="Springfield",
                    postal_code="62701",
                    country="US",
                ),
                lines=lines,
                period_start=month,
                period_end=end,
            )
        )
    return plans


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_exactly_once(setup: SinkSetup, plans: list[InvoicePlan]) -> None:
    numbers = setup.harness.numbers()
    missing = {plan.invoice_number for plan in plans} - set(numbers)
    doubled = {number: count for number, count in numbers.items() if count > 1}
    if missing or doubled or len(numbers) != len(plans):
        raise SystemExit(
            f"{setup.harness.kind}: {len(missing)} invoices missing, duplicated: {doubled or 'none'}, "
            f"{len(numbers)} held for {len(plans)} plans"
        )


def push_through_core(
    kind: str, plans: list[InvoicePlan], workdir: Path, faults: float, latency: float = 0.0
) -> tuple[int, float, int]:
    """API calls, seconds and push runs to drain `plans` into the `kind` sandbox."""
    with sink_setup(kind, workdir, example=False) as setup, environment(setup.env):
        setup.harness.sandbox.latency = latency
        app = Connector(load_config(setup.config))
        with app.engine.begin() as conn:
            for plan in plans:
                outbox.upsert_plan(conn, plan, utcnow())
        app.validate_adapters()
        if faults:
            setup.harness.inject_faults(faults)
        before = setup.harness.api_calls()
        started = time.perf_counter()
        rounds = 0
        while outbox_counts(setup.config) != {"pushed": len(plans)}:
            if rounds == MAX_ROUNDS:
                raise SystemExit(f"{kind}: not drained after {rounds} runs: {outbox_counts(setup.config)}")
            if rounds:
                time.sleep(1.1)  # retries across runs fall due within a second here
            rounds += 1
            with app.run("push") as run:
                push_all(app, run)
        elapsed = time.perf_counter() - started
        calls = setup.harness.api_calls() - before
        check_exactly_once(setup, plans)
        app.engine.dispose()
    return calls, elapsed, rounds


def _qbo_access_token(qbo: QuickBooksSandbox) -> str:
    basic = base64.b64encode(f"{qbo.client_id}:{qbo.client_secret}".encode()).decode()
    answer = requests.post(
        qbo.url + TOKEN_PATH,
        data={"grant_type": "refresh_token", "refresh_token": qbo.initial_refresh_token},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def plain_creates(setup: SinkSetup, sink: Any, plans: list[InvoicePlan]) -> list[Plain]:
    """One create request per plan, as a client without the connector would send it."""
    box = setup.harness.sandbox
    if isinstance(box, QuickBooksSandbox):
        url = f"{box.url}/v3/company/{box.realm_id}/invoice?minorversion=75"
        auth = {"Authorization": f"Bearer {_qbo_access_token(box)}", "Content-Type": "application/json"}
        return [
            Plain(
                "POST", url, auth, quickbooks_payload.dumps(quickbooks_payload.invoice_payload(p, sink.refs))
            )
            for p in plans
        ]
    if isinstance(box, XeroSandbox):
        url = f"{box.api_url}/Invoices?summarizeErrors=false"
        auth = {
            "Authorization": f"Bearer {box.access_token}",
            "xero-tenant-id": box.tenant_id,
            "Content-Type": "application/json",
        }
        return [
            Plain(
                "PUT",
                url,
                auth,
                xero_payload.dumps_exact({"Invoices": [xero_payload.invoice_payload(p, sink.mapping)]}),
            )
            for p in plans
        ]
    if isinstance(box, NetSuiteSandbox):
        auth = {"Authorization": f"Bearer {box.token}", "Content-Type": "application/json"}
        base = f"{box.url}/services/rest/record/v1/invoice"
        return [
            Plain(
                "PUT", f"{base}/eid:{p.invoice_number}?replace=item", auth, decimal_json(sink.invoice_body(p))
            )
            for p in plans
        ]
    xml = {"Content-Type": "text/xml; charset=UTF-8"}
    return [Plain("POST", f"{box.url}/cxml/invoices", xml, sink.render(p)) for p in plans]


def bare_requests(kind: str, plans: list[InvoicePlan], workdir: Path, latency: float = 0.0) -> float:
    """Seconds for one plain create request per plan, bodies rendered before the clock starts."""
    with sink_setup(kind, workdir, example=False) as setup, environment(setup.env):
        setup.harness.sandbox.latency = latency
        sink = Connector(load_config(setup.config)).sinks[SINK_NAME]
        creates = plain_creates(setup, sink, plans)
        session = requests.Session()
        started = time.perf_counter()
        for plain in creates:
            answer = session.request(
                plain.method, plain.url, data=plain.body, headers=plain.headers, timeout=30
            )
            if answer.status_code >= 300:
                raise SystemExit(f"{kind} baseline: {answer.status_code} {answer.text[:300]}")
        elapsed = time.perf_counter() - started
        check_exactly_once(setup, plans)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=500, help="invoice plans per sink (default 500)")
    parser.add_argument("--sinks", default=",".join(HARNESSES), help="comma-separated sink types")
    parser.add_argument("--faults", type=float, default=0.0, help="share of write requests that fail")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="every sandbox answer takes this long (a real round trip)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the connector's warnings")
    args = parser.parse_args()
    logger = logging.getLogger("po_connector")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler() if args.verbose else logging.NullHandler())
    logger.setLevel(logging.WARNING)

    plans = make_plans(args.plans)
    print(
        f"{args.plans} plans per sink"
        + (f", {args.faults:.0%} of writes failing" if args.faults else "")
        + (f", every answer after {args.latency_ms:g} ms" if args.latency_ms else "")
    )
    header = (
        f"{'sink':<13} {'calls':>6} {'calls/inv':>9} {'target':>7} {'runs':>4} "
        f"{'core inv/s':>10} {'bare inv/s':>10} {'core/bare':>9}"
    )
    print(header)
    for kind in args.sinks.split(","):
        with tempfile.TemporaryDirectory(prefix=f"push-bench-{kind}-") as temp:
            latency = args.latency_ms / 1000
            calls, seconds, rounds = push_through_core(kind, plans, Path(temp) / "core", args.faults, latency)
            bare = bare_requests(kind, plans, Path(temp) / "bare", latency)
        figures = Figures(kind, len(plans), calls, seconds, rounds, bare)
        target = None if args.faults else TARGETS.get(kind)  # targets are for the fault-free path
        shown = "-" if target is None else f"<={target}"
        missed = target is not None and figures.per_invoice > target
        print(
            f"{kind:<13} {calls:>6} {figures.per_invoice:>9.3f} {shown:>7} {rounds:>4} "
            f"{len(plans) / seconds:>10.1f} {len(plans) / bare:>10.1f} {seconds / bare:>8.2f}x"
            + ("  target missed" if missed else "")
        )


if __name__ == "__main__":
    main()
