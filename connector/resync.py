"""`resync`: pull what a person names again, ignoring the cursor and the content hashes.

A resync never creates a second invoice for a plan already pushed: the outbox key of a period
and PO is the same as before, and a changed PO only flags the pushed invoice for review.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from connector.errors import ConfigError, NotFoundError
from connector.intake import commit_source_batch
from connector.jobs import finish
from connector.ports import Capability, PullContext, SourceBatch
from connector.progress import progress
from connector.pushing import push_all
from connector.reconcile.service import reconcile_and_plan
from connector.runtime import Connector, RunContext
from state import ingest

log = logging.getLogger("po_connector.resync")


def _batches(
    app: Connector, name: str, po_number: str | None, since: datetime | None, started: datetime
) -> Iterator[SourceBatch]:
    source = app.sources.get(name)
    if source is None:
        raise NotFoundError(
            f"PO source {name!r} is not configured; configured: {', '.join(sorted(app.sources)) or '(none)'}"
        )
    if po_number is not None:
        if Capability.FETCH_ONE not in getattr(type(source), "capabilities", frozenset()):
            raise ConfigError(f"source {name!r} cannot fetch one PO; use --since DATE or --all")
        yield SourceBatch(records=source.fetch(po_number), document=f"resync {po_number}")
        return
    context = PullContext(cursor=None, started_at=started, is_processed=lambda key: False, since=since)
    for batch in source.pull(context):
        if since is not None:
            batch.records = [
                r for r in batch.records if r.po.source_updated_at is None or r.po.source_updated_at >= since
            ]
        batch.cursor = None  # a resync never moves the cursor of the regular schedule
        yield batch


def plan_resync(
    app: Connector, name: str, *, po_number: str | None, since: datetime | None, started: datetime
) -> list[dict[str, Any]]:
    """What a resync would change, PO by PO, without writing anything (`--dry-run`)."""
    changes = []
    with app.connect() as conn:
        for batch in _batches(app, name, po_number, since, started):
            for record in batch.records:
                po = record.po.model_copy(update={"tenant": app.tenant})
                outcome, found = ingest.preview_po(conn, po)
                changes.append({"po_number": po.po_number, "outcome": outcome, "changes": found})
    return changes


def resync(
    app: Connector,
    name: str,
    *,
    po_number: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Re-pull the named POs, store every revision found, then reconcile and push."""
    app.validate_adapters()
    with app.run("resync") as run:
        if dry_run:
            changes = plan_resync(app, name, po_number=po_number, since=since, started=run.started_at)
            run.add("would_change", sum(1 for c in changes if c["outcome"] != "unchanged"))
            data = finish(run)
            data["dry_run"] = True
            data["changes"] = changes
            return data
        _apply(app, run, name, po_number, since)
        if po_number is not None and not run.counts.get("pos_fetched"):
            run.errors.append(f"source {name}: PO {po_number} not found")
            run.add("not_found")
            log.error("not found: source %s has no PO %s", name, po_number, extra={"source": name})
        reconcile_and_plan(app, run)
        push_all(app, run)
        return finish(run)


def _apply(app: Connector, run: RunContext, name: str, po_number: str | None, since: datetime | None) -> None:
    with progress(f"resync {name}") as tick:
        for batch in _batches(app, name, po_number, since, run.started_at):
            commit_source_batch(app, run, name, batch, force=True)
            tick(len(batch.records))
