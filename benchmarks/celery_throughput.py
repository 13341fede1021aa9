"""Invoices per second through `sync --tenants DIR --via celery` with 1, 2 and 4 workers.

    python benchmarks/celery_throughput.py [--tenants N] [--workers 1,2,4] [--hold SECONDS]

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest; `.ci/run` starts it) and the `celery` extra.
For each worker count, in one run: N tenants (default 24), each the untaxed bundled example
(4 invoices) with a fresh SQLite state and its own loopback Xero organisation that answers an
invoice create `--hold` seconds (default 0.3) after storing it, as a slow accounting API does;
the same tenant set every time, written anew so every round starts from nothing. That many
`po-connector worker` processes (one pool process each) serve a queue of the round's own;
every worker first runs a warm-up round of other tenants, so the figures leave out start-up.
The clock runs from the first task sent to the last outcome received, in this process,
through the same dispatch as `sync --tenants --via celery`. Printed per count: seconds,
invoices, invoices per second and the ratio to 1 worker. Every round is checked: each tenant
exits 0 and each organisation holds its invoices exactly once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.celery_app import dispatch, make_app
from connector.config import load_config
from connector.tenants import discover
from tests.support.broker import BROKER_ENV, BROKER_URL, Workers, control_config, process_env
from tests.support.sink_sandboxes import EXAMPLE_MATCHED
from tests.support.tenants import write_tenants, xero_books


def fan_out(config: Path, folder: Path) -> tuple[float, int]:
    """Seconds from the first task sent to the last outcome, and invoices pushed."""
    loaded = load_config(config)
    app = make_app(loaded.settings.celery, loaded.base_dir)
    try:
        configs = discover(folder)
        started = time.perf_counter()
        outcomes = dispatch(app, configs, "sync", timeout=600)
        took = time.perf_counter() - started
    finally:
        app.close()
    bad = [o for o in outcomes if o["exit_code"] != 0]
    if bad:
        raise SystemExit(f"a tenant failed: {bad[0]}")
    return took, sum(o["invoices_pushed"] for o in outcomes)


def round_of(root: Path, workers: int, tenants: int, hold: float) -> tuple[float, int]:
    queue = f"po-connector-bench-{uuid.uuid4().hex[:8]}"
    folder = root / f"celery-{workers}"
    pool = Workers(control_config(folder, queue), folder, process_env())
    with xero_books(tenants + workers * 2, hold) as books:
        warm = write_tenants(root / f"warm-{workers}", workers * 2, taxed=False, sink_for=books.sink_for)
        # The measured tenants take the organisations after the warm-up's.
        measured = write_tenants(
            root / f"run-{workers}",
            tenants,
            taxed=False,
            sink_for=lambda index, work: books.sink_for(index + workers * 2, work),
        )
        pool.env.update(books.env)
        try:
            pool.start(workers)
            fan_out(pool.config, warm)
            took, invoices = fan_out(pool.config, measured)
        finally:
            pool.stop()
            _drop_queue(queue)
        for harness in books.harnesses:
            numbers = harness.numbers()
            if set(numbers.values()) - {1} or len(numbers) != EXAMPLE_MATCHED:
                raise SystemExit(f"an organisation holds {numbers}")
    return took, invoices


def _drop_queue(name: str) -> None:
    from kombu import Connection

    with Connection(BROKER_URL, connect_timeout=3) as conn:
        conn.default_channel.queue_delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=24)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--hold", type=float, default=0.3, help="seconds before a create is answered")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    os.environ[BROKER_ENV] = BROKER_URL  # this process sends the tasks, as the workers read them
    print(f"{args.tenants} tenants x {EXAMPLE_MATCHED} invoices, creates answered after {args.hold:g} s")
    print(f"{'workers':>7} {'seconds':>8} {'invoices':>8} {'inv/s':>7} {'vs 1':>6}")
    base: float | None = None
    with tempfile.TemporaryDirectory() as folder:
        for workers in counts:
            took, invoices = round_of(Path(folder), workers, args.tenants, args.hold)
            rate = invoices / took
            base = base or rate
            print(f"{workers:>7} {took:>8.2f} {invoices:>8} {rate:>7.1f} {rate / base:>5.2f}x")


if __name__ == "__main__":
    main()
