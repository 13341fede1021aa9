"""Several creates in flight at once for one sink, outcomes recorded one at a time.

A sink that may take concurrent creates says how many (`push_concurrency`, within its account's
budget: NetSuite's concurrency governance, a cXML buyer's endpoint); the pusher then keeps up to
that many `push` calls in flight on worker threads. Only the remote calls run there: every
outcome is recorded on the calling thread, in completion order, so the outbox's writes stay one
at a time and each is durable before the next claim. A stop (a daily limit parked the sink, the
run lost its lease) submits nothing more; what is in flight is still awaited and recorded.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def push_concurrency(sink: object, ceiling: int) -> int:
    """How many creates may be in flight for `sink`: what it declares, at most `ceiling`."""
    declared = getattr(sink, "push_concurrency", 1)
    return max(1, min(int(declared) if isinstance(declared, int) else 1, ceiling))


def run_in_flight(
    items: Sequence[Item],
    call: Callable[[Item], Result],
    record: Callable[[Item, Future[Result]], None],
    *,
    workers: int,
    stopped: Callable[[], bool],
    name: str = "push",
) -> list[Item]:
    """Call `call(item)` for each item with up to `workers` in flight; `record` each as it ends.

    Returns the items never submitted because `stopped()` turned true. An exception that is not
    the call's own outcome (raised by `record`) stops submitting and is re-raised once the calls
    in flight have ended.
    """
    pending = list(items)
    in_flight: dict[Future[Result], Item] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        try:
            while pending or in_flight:
                while pending and len(in_flight) < workers and not stopped():
                    item = pending.pop(0)
                    # Each call runs in a copy of this context: per-run counters see it.
                    context = contextvars.copy_context()
                    in_flight[pool.submit(context.run, call, item)] = item
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    record(in_flight.pop(future), future)
        finally:
            for future in list(in_flight):
                future.cancel()
    return pending
