"""The jobs a cron entry or a person starts: sync, pull, reconcile, push, replay.

`sync` is pull, deciding each new PO revision's acknowledgement, reconcile, push, and sending
the acknowledgements; `pull` decides, `push` also sends the acknowledgements.

Each job runs inside `Connector.run` (a recorded run holding the partition lease) and returns
the summary the CLI prints with `--json`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from connector.acknowledging import record_acknowledgements, send_acknowledgements
from connector.errors import NotFoundError
from connector.exits import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL, EXIT_USAGE
from connector.intake import pull_billing, pull_pos
from connector.model import MatchStatus, utcnow
from connector.preview import preview, rolled_back
from connector.pushing import push_all
from connector.reconcile.service import reconcile_and_plan
from connector.renewals import request_renewals
from connector.runtime import Connector, RunContext
from state import outbox, outbox_queries, quarantine_store

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_TEMPFAIL", "EXIT_USAGE", "finish", "sync"]

log = logging.getLogger("po_connector.replay")


SUMMARY_KEYS = (
    "pos_fetched",
    "pos_changed",
    "billing_fetched",
    *[status.value for status in MatchStatus],
    "invoices_planned",
    "invoices_pushed",
    "invoices_existing",
    "invoices_failed",
    "invoices_waiting",
    "dead",
    "quarantined",
)


def exit_code_for(run: RunContext) -> int:
    """2 when credentials or config were refused, 1 when anything failed or went dead.

    Mismatches and quarantined input are reported, not failures (except input a person retried
    that is still quarantined). The other sources and sinks
    still ran: one refused account does not stop the rest of the job.
    """
    if run.counts.get("config_errors") or run.counts.get("not_found"):
        return EXIT_USAGE
    failing = (
        "dead",
        "invoices_failed",
        "sources_failed",
        "sinks_failed",
        "still_quarantined",
        "acknowledgements_failed",
    )
    failed = sum(run.counts.get(k, 0) for k in failing)
    return EXIT_FAILED if failed else EXIT_OK


def summary(run: RunContext) -> dict[str, Any]:
    data: dict[str, Any] = {"run_id": run.run_id, "command": run.command}
    for key in SUMMARY_KEYS:
        data[key] = run.counts.get(key, 0)
    for key, value in sorted(run.counts.items()):
        if key != "exit_code":  # it goes last, beside the errors
            data.setdefault(key, value)
    data["exit_code"] = exit_code_for(run)
    data["errors"] = run.errors
    return data


def finish(run: RunContext) -> dict[str, Any]:
    run.counts["exit_code"] = exit_code_for(run)
    return summary(run)


def sync(app: Connector, *, dry_run: bool = False) -> dict[str, Any]:
    """Pull every source, reconcile, and push every due invoice; a dry run pushes nothing and
    rolls every write back, and says what it would have invoiced and held."""
    app.validate_adapters()
    if dry_run:
        with rolled_back(app):
            with app.run("sync") as run:
                pull_pos(app, run)
                pull_billing(app, run)
                record_acknowledgements(app, run)
                reconcile_and_plan(app, run)
                request_renewals(app, run)
                data = finish(run)
            return {**data, **preview(app)}
    with app.run("sync") as run:
        pull_pos(app, run)
        pull_billing(app, run)
        record_acknowledgements(app, run)
        unchanged = reconcile_and_plan(app, run, skip_unchanged=True)
        request_renewals(app, run, replan=not unchanged)
        push_all(app, run)
        send_acknowledgements(app, run)
        return finish(run)


def pull(app: Connector, sources: Sequence[str] = (), *, retried: Collection[int] = ()) -> dict[str, Any]:
    """Pull PO sources (all or the named ones) and billing sources; with `retried` (quarantine
    ids read again), the run fails (exit 1, recorded so) while any of them is still open."""
    app.validate_adapters()
    with app.run("pull") as run:
        pull_pos(app, run, sources or None)
        if not sources:
            pull_billing(app, run)
        record_acknowledgements(app, run)
        if retried:
            with app.connect() as conn:
                still = [
                    r
                    for r in quarantine_store.list_quarantine(conn, app.tenant, "open")
                    if r["id"] in retried
                ]
            run.counts["still_quarantined"] = len(still)
            if still:
                run.errors.append(f"{len(still)} of {len(retried)} retried record(s) are still quarantined")
        return finish(run)


def reconcile(app: Connector, *, dry_run: bool = False) -> dict[str, Any]:
    """Match billing periods to POs and plan invoices; a dry run rolls it back and previews."""
    app.validate_adapters()
    if dry_run:
        with rolled_back(app):
            with app.run("reconcile") as run:
                reconcile_and_plan(app, run)
                request_renewals(app, run, send=False)
                data = finish(run)
            return {**data, **preview(app)}
    with app.run("reconcile") as run:
        reconcile_and_plan(app, run)
        request_renewals(app, run, send=False)
        return finish(run)


def push(app: Connector, sinks: Sequence[str] = ()) -> dict[str, Any]:
    app.validate_adapters()
    app.chosen("sink", app.sinks, sinks)
    with app.run("push") as run:
        push_all(app, run, sinks or None)
        if not sinks:
            send_acknowledgements(app, run)
        return finish(run)


def replay(
    app: Connector, *, keys: Sequence[str] = (), dead: bool = False, push_now: bool = True
) -> dict[str, Any]:
    """Put dead (or named) outbox rows back and push them (uncertain ones are looked up first)."""
    app.validate_adapters()
    if keys:
        with app.connect() as conn:
            named = outbox_queries.states_named(conn, app.tenant, keys)
        unknown = [key for key in keys if key not in named]
        if unknown:
            raise NotFoundError(
                f"no invoice with idempotency key or number {', '.join(map(repr, unknown))} in the outbox"
            )
        for key, state in sorted(named.items()):
            if state not in (outbox.DEAD, outbox.RETRY):
                log.warning(
                    "invoice %s is %s, not dead or waiting for a retry: nothing to replay", key, state
                )
    with app.run("replay") as run:
        with app.engine.begin() as conn:
            chosen = outbox.replay(conn, app.tenant, utcnow(), keys=keys, dead=dead)
        run.add("replayed", len(chosen))
        if push_now and chosen:
            push_all(app, run)
        return finish(run)
