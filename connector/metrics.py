"""Prometheus metrics of one tenant, written after every run for node_exporter's textfile collector.

Every value is read from the state database when the file is written, none is kept in memory:
the last success of a command survives any number of failed runs after it, and each run
rewrites the whole file. The file is written with prometheus-client's `write_to_textfile` (a
temporary file beside it, then a rename), so a scrape never reads half of it.

Every metric carries the `tenant` label (`tenant` in the config). Per command (`sync`, `pull`,
`reconcile`, `push`, `replay`, `resync`) the last finished run and the last successful one;
per sink the outbox, its oldest unsent row, its dead letters and the HTTP requests and 429
answers of the command's last run; per source the quarantined input; per status the
reconciliation results.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from sqlalchemy import Connection

from connector.model import MatchStatus, utcnow
from state import acks, messages, outbox, outbox_queries, quarantine_store, results, runs

PREFIX = "po_connector"
SUCCESS = "ok"  # the status of a run that finished with exit code 0


class TenantMetrics:
    """The gauges of one tenant in their own registry (never the process-wide default one)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.registry = CollectorRegistry(auto_describe=True)
        self.last_run_start = self._gauge(
            "last_run_start_timestamp_seconds",
            "When the last finished run of the command started.",
            "command",
        )
        self.last_run_exit_code = self._gauge(
            "last_run_exit_code", "Exit code of the last finished run of the command.", "command"
        )
        self.last_success = self._gauge(
            "last_success_timestamp_seconds",
            "When the last successful (exit 0) run of the command finished; 0 if none has.",
            "command",
        )
        self.api_requests = self._gauge(
            "last_run_api_requests",
            "HTTP requests the last run of the command sent to the sink.",
            "command",
            "sink",
        )
        self.api_throttled = self._gauge(
            "last_run_api_throttled",
            "Throttled (429) answers the last run of the command received from the sink.",
            "command",
            "sink",
        )
        self.reconcile_results = self._gauge(
            "reconcile_results", "Stored reconciliation results by status.", "status"
        )
        self.outbox_rows = self._gauge("outbox_rows", "Outbox rows by sink and state.", "sink", "state")
        self.oldest_unsent_age = self._gauge(
            "outbox_oldest_unsent_age_seconds",
            "Age of the sink's oldest row not sent yet (planned, retry, pushing); 0 if none waits.",
            "sink",
        )
        self.oldest_unsent_time = self._gauge(
            "outbox_oldest_unsent_timestamp_seconds",
            "When the sink's oldest row not sent yet was planned; absent if none waits.",
            "sink",
        )
        self.dead_letters = self._gauge(
            "dead_letters", "Outbox rows gone dead (rejected or out of attempts), by sink.", "sink"
        )
        self.quarantined = self._gauge("quarantined_inputs", "Open quarantined input, by source.", "source")
        self.acknowledgements = self._gauge(
            "po_acknowledgements", "PO revisions by acknowledgement state (waiting: for support).", "state"
        )
        self.messages = self._gauge(
            "messages", "Messages to customers (renewal requests, PO replies) by state.", "state"
        )

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, ["tenant", *labels], registry=self.registry)

    def read(
        self,
        conn: Connection,
        *,
        sinks: Iterable[str] = (),
        sources: Iterable[str] = (),
        now: datetime | None = None,
    ) -> TenantMetrics:
        """Set every gauge from the state; configured sinks and sources show up with zeros."""
        now = now or utcnow()
        tenant = self.tenant
        self._runs(conn)
        stored = results.count_by_status(conn, tenant)
        for status in [*(s.value for s in MatchStatus), *stored]:
            self.reconcile_results.labels(tenant, status).set(stored.get(status, 0))
        by_sink = outbox_queries.count_by_state(conn, tenant)
        oldest = outbox_queries.oldest_unsent(conn, tenant)
        for sink in dict.fromkeys([*sinks, *by_sink]):
            counts = by_sink.get(sink, {})
            for state in dict.fromkeys([*outbox.STATES, *counts]):
                self.outbox_rows.labels(tenant, sink, state).set(counts.get(state, 0))
            self.dead_letters.labels(tenant, sink).set(counts.get(outbox.DEAD, 0))
            since = oldest.get(sink)
            age = max(0.0, (now - since).total_seconds()) if since else 0.0
            self.oldest_unsent_age.labels(tenant, sink).set(age)
            if since is not None:  # grows between runs too: `time() - it` is the age at any moment
                self.oldest_unsent_time.labels(tenant, sink).set(since.timestamp())
        quarantine = quarantine_store.count_quarantine(conn, tenant)
        for source in dict.fromkeys([*sources, *quarantine]):
            self.quarantined.labels(tenant, source).set(quarantine.get(source, 0))
        answered = acks.count_by_state(conn, tenant)
        for state in dict.fromkeys([acks.WAITING, acks.DEAD, *answered]):
            self.acknowledgements.labels(tenant, state).set(answered.get(state, 0))
        mailed = messages.count_by_state(conn, tenant)
        for state in dict.fromkeys([messages.UNCERTAIN, messages.DEAD, *mailed]):
            self.messages.labels(tenant, state).set(mailed.get(state, 0))
        return self

    def _runs(self, conn: Connection) -> None:
        tenant = self.tenant
        succeeded = runs.last_finished_by_command(conn, tenant, status=SUCCESS)
        for command, run in runs.last_finished_by_command(conn, tenant).items():
            self.last_run_start.labels(tenant, command).set(run["started_at"].timestamp())
            if run["exit_code"] is not None:  # a run reaped as crashed has none
                self.last_run_exit_code.labels(tenant, command).set(run["exit_code"])
            success = succeeded.get(command)
            finished = success["finished_at"].timestamp() if success else 0
            self.last_success.labels(tenant, command).set(finished)
            for sink, counts in run["counts"].get("api", {}).items():
                self.api_requests.labels(tenant, command, sink).set(counts.get("calls", 0))
                self.api_throttled.labels(tenant, command, sink).set(counts.get("throttled", 0))

    def write(self, path: Path) -> None:
        """Replace `path` atomically with the metrics in Prometheus text format."""
        write_to_textfile(str(path), self.registry)


def write_textfile(
    path: Path,
    conn: Connection,
    tenant: str,
    *,
    sinks: Iterable[str] = (),
    sources: Iterable[str] = (),
    now: datetime | None = None,
) -> None:
    """Read the tenant's metrics from the state and write them to `path`."""
    TenantMetrics(tenant).read(conn, sinks=sinks, sources=sources, now=now).write(path)
