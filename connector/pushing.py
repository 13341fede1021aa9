"""Drains the invoice outbox into the sinks: claim -> look up -> push -> record.

Per claimed batch: a batched lookup by our invoice number finds invoices that already exist
(an earlier attempt that crashed or timed out after the sink wrote); only the rest are sent,
in one batch call where the sink has one. Each outcome is recorded in its own short
transaction. Rejected rows go dead with the provider's message; retryable ones wait with
backoff (a daily limit parks them); uncertain ones are looked up before any re-send.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from connector.errors import ConfigError
from connector.ports import InvoiceSink, ReadyCheck
from connector.runtime import Connector, RunContext
from connector.sink_pusher import MAX_CLAIMS_PER_RUN, SinkPusher, backoff
from state import outbox

__all__ = ["MAX_CLAIMS_PER_RUN", "SinkPusher", "backoff", "push_all"]

log = logging.getLogger("po_connector.push")


def push_all(app: Connector, run: RunContext, names: Sequence[str] | None = None) -> None:
    """Drain the outbox of every (or the named) sink; count what still waits for a later run."""
    try:
        _push_sinks(app, run, names)
    finally:
        counts = app.outbox_store.count_by_state(app.tenant)
        run.counts["invoices_waiting"] = sum(
            by_state.get(state, 0)
            for sink, by_state in counts.items()
            if not names or sink in names
            for state in outbox.UNSENT
        )


def _push_sinks(app: Connector, run: RunContext, names: Sequence[str] | None) -> None:
    chosen = {name: sink for name, sink in app.sinks.items() if not names or name in names}
    ready: dict[str, InvoiceSink] = {}
    for name, sink in chosen.items():
        try:
            with run.http.counting(name):
                if isinstance(sink, ReadyCheck):
                    sink.check_ready()
        except ConfigError as exc:
            _sink_config_failed(run, name, exc)
            continue
        ready[name] = sink
    for name, sink in ready.items():
        try:
            with run.http.counting(name):
                SinkPusher(
                    run, name, sink, tenant=app.tenant, settings=app.settings.push, store=app.outbox_store
                ).drain()
        except ConfigError as exc:
            _sink_config_failed(run, name, exc)


def _sink_config_failed(run: RunContext, name: str, exc: ConfigError) -> None:
    """A sink that cannot work as configured: counted and reported; the other sinks go on."""
    run.add("config_errors")
    run.add("sinks_failed")
    run.errors.append(f"sink {name}: {exc}")
    log.error("sink %s: %s", name, exc, extra={"sink": name})
