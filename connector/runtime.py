"""The composition root: config -> engine and adapters, plus the life of one run.

A run is recorded in `runs`; a mutating run holds the partition lease `sync:<tenant>` for its
whole life, renewed by a heartbeat thread, so overlapping cron runs never work on the same
partition at once (the loser exits 75). After a run is recorded, the tenant's metrics file
is rewritten from the state, when `[metrics] textfile` is set (see `connector.metrics`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from connector.call_counts import CallCounts
from connector.config import LoadedConfig, Settings
from connector.errors import ConfigError, LeaseHeldError, NotFoundError, UnavailableError, exit_code_for
from connector.map_cache import cached_toml_reader
from connector.maps import CustomerMap, SkuMap
from connector.model import Party, utcnow
from connector.ports import AdapterContext, AdapterKind, BillingSource, InvoiceSink, POSource
from connector.redact import GLOBAL_REDACTOR
from connector.registry import AdapterInfo, build, discover
from state import acks, messages, outbox, runs
from state.db import READ_ONLY, StateUnavailableError, StateUrlError, open_state
from state.outbox_store import OutboxStore, SqlOutboxStore

log = logging.getLogger("po_connector")


@dataclass
class RunContext:
    """What one run knows about itself while it works."""

    run_id: str
    command: str
    started_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lease_lost: threading.Event = field(default_factory=threading.Event)
    http: CallCounts = field(default_factory=CallCounts)  # per sink, recorded as counts["api"]

    def add(self, key: str, value: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + value


def _anchor_sqlite(url: str, base_dir: Path) -> str:
    """A relative SQLite path is relative to the config file, like every other path in it."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(base_dir / url[len(prefix) :])
    return url


def state_url(loaded: LoadedConfig) -> str:
    """The state database URL a config names, a relative SQLite path anchored at the config."""
    return _anchor_sqlite(loaded.settings.state.url, loaded.base_dir)


def partition_lease(tenant: str) -> str:
    """The partition lease of a tenant: one run at a time works on it (in its state database)."""
    return f"sync:{tenant}"


class Connector:
    """One configured installation: state engine, adapters by name, and run bookkeeping."""

    def __init__(self, loaded: LoadedConfig, *, migrate: bool = True, probe: bool = True) -> None:
        self.loaded = loaded
        self.settings: Settings = loaded.settings
        self.tenant = self.settings.tenant
        # True while a `--dry-run` holds every write in a transaction it rolls back.
        self.dry_run = False
        try:
            self.engine: Engine = open_state(state_url(loaded), migrate=migrate, probe=probe)
        except StateUrlError as exc:
            raise ConfigError(f"state.url: {exc}") from None
        except StateUnavailableError as exc:
            raise UnavailableError(f"state.url: {exc}") from None
        self.supplier: Party | None = self.settings.supplier.to_party() if self.settings.supplier else None
        self.adapter_context = AdapterContext(
            tenant=self.tenant, base_dir=loaded.base_dir, logger=log, supplier=self.supplier
        )

    # -- adapters ------------------------------------------------------------------------
    @cached_property
    def registry(self) -> dict[str, AdapterInfo]:
        """The adapters the configuration names, loaded."""
        blocks = [*self.settings.sources, *self.settings.billing, *self.settings.sinks]
        return discover({str(block.get("type", "")) for block in blocks})

    def _build_all(self, section: str, kind: AdapterKind) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = getattr(self.settings, section)
        return {b["name"]: build(section, kind, b, self.adapter_context, self.registry) for b in blocks}

    @cached_property
    def sources(self) -> dict[str, POSource]:
        return self._build_all("sources", AdapterKind.SOURCE)

    @cached_property
    def billing_sources(self) -> dict[str, BillingSource]:
        return self._build_all("billing", AdapterKind.BILLING)

    @cached_property
    def sinks(self) -> dict[str, InvoiceSink]:
        return self._build_all("sinks", AdapterKind.SINK)

    def validate_adapters(self) -> None:
        """Load both maps and build every configured adapter now, so a bad file or block fails
        before any record is pulled or committed."""
        _ = self.customer_map, self.sku_map
        _ = self.sources, self.billing_sources, self.sinks

    def chosen(
        self, what: str, adapters: dict[str, Any], names: Iterable[str] | None
    ) -> list[tuple[str, Any]]:
        """The named (or every) adapter of one kind, in configured order; a name not configured
        is a NotFoundError that lists the configured ones."""
        wanted = list(names or [])
        unknown = [name for name in wanted if name not in adapters]
        if unknown:
            raise NotFoundError(
                f"{what} {', '.join(map(repr, unknown))} is not configured; "
                f"configured: {', '.join(sorted(adapters)) or '(none)'}"
            )
        return [(name, adapters[name]) for name in adapters if not wanted or name in wanted]

    @cached_property
    def outbox_store(self) -> OutboxStore:
        """The outbox as the pushers use it (it follows `engine`, which a dry run swaps)."""
        return SqlOutboxStore(lambda: self.engine)

    @cached_property
    def customer_map(self) -> CustomerMap:
        path = self.settings.mappings.customers
        read = cached_toml_reader(lambda: self.engine, self.tenant, "customers")
        try:
            return CustomerMap.load(self.loaded.resolve(path) if path else None, read)
        except ConfigError as exc:
            raise ConfigError(f"mappings.customers: {exc}") from None

    @cached_property
    def sku_map(self) -> SkuMap:
        path = self.settings.mappings.skus
        try:
            return SkuMap.load(self.loaded.resolve(path) if path else None)
        except ConfigError as exc:
            raise ConfigError(f"mappings.skus: {exc}") from None

    # -- runs ----------------------------------------------------------------------------
    @property
    def lease_name(self) -> str:
        return partition_lease(self.tenant)

    @contextmanager
    def run(self, command: str, *, lease: bool = True) -> Iterator[RunContext]:
        """Record a run; with `lease`, hold the partition lease or raise LeaseHeldError."""
        now = utcnow()
        state = self.settings.state
        with self.engine.begin() as conn:
            reaped = runs.reap_stale_runs(conn, now, state.stale_after_seconds)
            outbox.expire_leases_of(conn, reaped, now)
            messages.expire_leases_of(conn, reaped, now)
            acks.expire_leases_of(conn, reaped, now)
            run_id = runs.start_run(conn, self.tenant, command, now, self.lease_name if lease else None)
        context = RunContext(run_id=run_id, command=command, started_at=now)
        if lease:
            try:
                self._take_lease(run_id, now)
            except LeaseHeldError:
                self._write_metrics()
                raise
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(context, lease, stop), daemon=True)
        if not self.dry_run:  # a dry run has one connection and commits no heartbeat
            beat.start()
        status, exit_code, error = "ok", 0, None
        try:
            yield context
            exit_code = context.counts.get("exit_code", 0)
            status = "ok" if exit_code == 0 else "failed"
        except BaseException as exc:
            # Recorded with the code the process exits with (2 for a configuration error...).
            exit_code = exit_code_for(exc)
            status, error = "failed", GLOBAL_REDACTOR(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            stop.set()
            if beat.is_alive():
                beat.join(timeout=5)
            with self.engine.begin() as conn:
                if lease:
                    runs.release_lease(conn, self.lease_name, run_id)
                counts: dict[str, Any] = {k: v for k, v in context.counts.items() if k != "exit_code"}
                if api := context.http.snapshot():
                    counts["api"] = api
                runs.finish_run(
                    conn, run_id, status=status, exit_code=exit_code, counts=counts, now=utcnow(), error=error
                )
            self._write_metrics()

    def _write_metrics(self) -> None:
        """Rewrite the metrics file from the state, when one is configured (a dry run, whose run
        is rolled back, writes none). A file that cannot be written is a warning, never a
        failure: the run's exit code stays what its work made it."""
        textfile = self.settings.metrics.textfile
        if textfile is None or self.dry_run:
            return
        from connector import metrics  # prometheus_client, only for a run that writes the file

        path = self.loaded.resolve(textfile)
        try:
            with self.connect() as conn:
                metrics.write_textfile(
                    path,
                    conn,
                    self.tenant,
                    sinks=[b["name"] for b in self.settings.sinks],
                    sources=[b["name"] for b in [*self.settings.sources, *self.settings.billing]],
                )
        except Exception as exc:
            log.warning("metrics not written to %s: %s", path, exc, extra={"metrics_textfile": str(path)})

    def _take_lease(self, run_id: str, now: datetime) -> None:
        state = self.settings.state
        with self.engine.begin() as conn:
            acquired, holder, reaped = runs.acquire_lease(
                conn, self.lease_name, run_id, now, state.lease_seconds
            )
            if reaped:
                outbox.expire_leases_of(conn, [reaped], now)
                messages.expire_leases_of(conn, [reaped], now)
                acks.expire_leases_of(conn, [reaped], now)
                log.warning("took over the lease of a dead run", extra={"reaped_run": reaped})
            if not acquired:
                who = holder.describe() if holder else "another run"
                runs.finish_run(conn, run_id, status="busy", exit_code=75, counts={}, now=now, error=who)
        if not acquired:
            raise LeaseHeldError(f"partition {self.lease_name} is held by {who}")

    def _heartbeat(self, context: RunContext, lease: bool, stop: threading.Event) -> None:
        """Renew the run's heartbeat and lease every third of the lease; a lost lease is flagged
        on the context, so the pushers stop claiming work."""
        interval = max(1.0, self.settings.state.lease_seconds / 3)
        while not stop.wait(interval):
            try:
                with self.engine.begin() as conn:
                    kept = runs.heartbeat(
                        conn,
                        context.run_id,
                        self.lease_name if lease else None,
                        utcnow(),
                        self.settings.state.lease_seconds,
                    )
                if not kept:
                    context.lease_lost.set()
                    log.error("lost the partition lease; another run took it over")
            except Exception:  # a missed heartbeat is retried at the next beat
                log.exception("heartbeat failed")

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A read connection: it never holds SQLite's write lock, so it never blocks a pusher."""
        with self.engine.connect() as conn:
            yield conn.execution_options(**{READ_ONLY: True})
