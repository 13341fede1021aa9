"""The pull loop: asks each source for batches and commits each batch in one transaction.

A batch's records, its rejections (quarantine), its one-shot input key and its cursor are
committed together, so a crash never leaves a cursor ahead of the records it covers and a
processed e-mail is never processed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any

from connector.errors import ConfigError, InputProblem, RemoteError
from connector.faults import AFTER_SOURCE_BATCH, crash_point
from connector.model import PurchaseOrder
from connector.ports import BillingSource, POSource, PullContext, SourceBatch, SourceRecord
from connector.progress import progress
from connector.runtime import Connector, RunContext
from state import billing_store, ingest, po_changes, quarantine_store

log = logging.getLogger("po_connector.intake")


def _is_processed(app: Connector, source: str) -> Any:
    def check(key: str) -> bool:
        with app.connect() as conn:
            return ingest.is_processed(conn, app.tenant, source, key)

    return check


def _processed_many(app: Connector, source: str) -> Callable[[Collection[str]], set[str]]:
    def among(keys: Collection[str]) -> set[str]:
        with app.connect() as conn:
            return ingest.processed_among(conn, app.tenant, source, keys)

    return among


def commit_source_batch(
    app: Connector, run: RunContext, source: str, batch: SourceBatch, *, force: bool = False
) -> None:
    """Store one batch atomically and count what it did."""
    now = run.started_at
    with app.engine.begin() as conn:
        fresh = not batch.input_key or ingest.mark_processed(
            conn, app.tenant, source, batch.input_key, batch.document, now, run.run_id
        )
        if not fresh and not force:
            log.info(
                "input already processed by another run",
                extra={"source": source, "input": batch.document},
            )
            return
        for key in batch.also_processed:
            ingest.mark_processed(conn, app.tenant, source, key, batch.document, now, run.run_id)
        for record in batch.records:
            _store(conn, app, run, record, force=force)
        run.add(
            "quarantined",
            quarantine_store.quarantine_problems(
                conn, app.tenant, source, batch.rejections, now, run.run_id, batch.input_key
            ),
        )
        if batch.cursor is not None:
            ingest.set_cursor(conn, app.tenant, source, batch.cursor, now, run_id=run.run_id)
    _log_rejections(source, batch.rejections)
    crash_point(AFTER_SOURCE_BATCH)
    if batch.after_commit is not None and not app.dry_run:
        batch.after_commit()


def _store(conn: Any, app: Connector, run: RunContext, record: SourceRecord, *, force: bool) -> None:
    po = record.po if record.po.tenant == app.tenant else record.po.model_copy(update={"tenant": app.tenant})
    write = ingest.store_po(conn, po, record.raw, record.document, run.started_at, run.run_id, force=force)
    run.add("pos_fetched")
    if write.changed:
        run.add("pos_changed")
    if write.outcome in ("new", "revised", "status", "internal"):
        log.info("%s", _describe_write(po, write), extra={"source": po.source})


_WRITE_WORDS = {
    "new": "new",
    "revised": "revised",
    "status": "status changed, same revision",
    "internal": "changed only internally, same revision",
}


def _describe_write(po: PurchaseOrder, write: ingest.PoWrite) -> str:
    """`PO 4711 revised (revision 3, buyer version 3): line 2 added`."""
    version = f", buyer version {po.source_version}" if po.source_version else ""
    text = f"PO {po.po_number} {_WRITE_WORDS[write.outcome]} (revision {write.revision}{version})"
    if write.outcome == "new":
        return text
    return f"{text}: " + "; ".join(po_changes.describe(change) for change in write.changes)


def pull_pos(app: Connector, run: RunContext, names: Iterable[str] | None = None) -> None:
    """Pull every (or the named) PO source from its cursor."""
    for name, source in app.chosen("PO source", app.sources, names):
        _pull_one(app, run, name, source)


def _pull_one(app: Connector, run: RunContext, name: str, source: POSource) -> None:
    with app.connect() as conn:
        cursor = ingest.get_cursor(conn, app.tenant, name)
    context = PullContext(
        cursor=cursor,
        started_at=run.started_at,
        is_processed=_is_processed(app, name),
        processed_many=_processed_many(app, name),
    )
    try:
        with progress(f"pulling {name}") as tick:
            for batch in source.pull(context):
                commit_source_batch(app, run, name, batch)
                tick(len(batch.records))
    except ConfigError as exc:
        run.add("config_errors")
        _source_failed(run, name, exc)
    except RemoteError as exc:
        _source_failed(run, name, exc)


def _source_failed(run: RunContext, name: str, exc: Exception) -> None:
    run.add("sources_failed")
    run.errors.append(f"source {name}: {exc}")
    log.error("source %s failed: %s", name, exc, extra={"source": name})


def pull_billing(app: Connector, run: RunContext, names: Iterable[str] | None = None) -> None:
    """Pull every (or the named) billing source."""
    for name, source in app.chosen("billing source", app.billing_sources, names):
        _pull_billing_one(app, run, name, source)


def _pull_billing_one(app: Connector, run: RunContext, name: str, source: BillingSource) -> None:
    with app.connect() as conn:
        cursor = ingest.get_cursor(conn, app.tenant, name)
    context = PullContext(cursor=cursor, started_at=run.started_at)
    try:
        for batch in source.pull(context):
            with app.engine.begin() as conn:
                periods = [
                    period
                    if period.tenant == app.tenant
                    else period.model_copy(update={"tenant": app.tenant})
                    for period in batch.records
                ]
                billing_store.store_billing_periods(conn, periods, run.started_at)
                if periods:
                    run.add("billing_fetched", len(periods))
                run.add(
                    "quarantined",
                    quarantine_store.quarantine_problems(
                        conn, app.tenant, name, batch.rejections, run.started_at, run.run_id
                    ),
                )
                if batch.cursor is not None:
                    ingest.set_cursor(conn, app.tenant, name, batch.cursor, run.started_at, run_id=run.run_id)
            _log_rejections(name, batch.rejections)
            del batch, periods  # stored: not held while the source reads the next one
    except ConfigError as exc:
        run.add("config_errors")
        _source_failed(run, name, exc)
    except RemoteError as exc:
        _source_failed(run, name, exc)


def _log_rejections(source: str, problems: Iterable[InputProblem]) -> None:
    for problem in problems:
        log.warning("quarantined: %s", problem.describe(), extra={"source": source})
