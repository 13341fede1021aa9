"""One sink's push for one run: claim -> look up -> push -> record, each outcome durable.

See `connector.pushing` for the protocol; this is the loop that runs it for one sink.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta

from connector.concurrent_push import push_concurrency, run_in_flight
from connector.config import PushSettings
from connector.errors import (
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.faults import AFTER_REMOTE_CREATE, BEFORE_REMOTE_CREATE, crash_point
from connector.model import RemoteRef, utcnow
from connector.ports import BatchInvoiceSink, Capability, InvoiceSink, PushOutcome
from connector.runtime import RunContext
from state.outbox import OutboxItem
from state.outbox_store import OutboxStore, RemoteTotal

log = logging.getLogger("po_connector.push")

# A row claimed this many times in one run waits for a later run instead of spinning here.
MAX_CLAIMS_PER_RUN = 3


def _capabilities(sink: InvoiceSink) -> frozenset[Capability]:
    return frozenset(getattr(type(sink), "capabilities", frozenset()))


def backoff(settings: PushSettings, attempts: int) -> timedelta:
    """Capped exponential backoff with jitter for the next attempt across runs."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter


class SinkPusher:
    """Pushes one sink's due outbox rows for one run, recording each outcome in `store`."""

    def __init__(
        self,
        run: RunContext,
        name: str,
        sink: InvoiceSink,
        *,
        tenant: str,
        settings: PushSettings,
        store: OutboxStore,
    ) -> None:
        self.tenant = tenant
        self.store = store
        self.run = run
        self.name = name
        self.sink = sink
        self.settings = settings
        self.capabilities = _capabilities(sink)
        # Claims in this run of each row not yet settled: a pushed or dead row is not claimed
        # again, so it is forgotten, and a large book's push holds only the rows in doubt.
        self.claims: dict[str, int] = {}
        self.parked = False
        # Rows whose last attempt in this run failed and that are still waiting: counted once at
        # the end, so a failure resolved later in the same run (e.g. by lookup) is no failure.
        self.waiting: set[str] = set()
        self.sent = False  # a request for the current batch may have left
        self.unconfirmed: list[OutboxItem] = []  # pushed, but the sink did not say its total

    def drain(self) -> None:
        try:
            while not self.parked and not self.run.lease_lost.is_set():
                items = self._claim()
                if not items:
                    return
                self.sent = False
                try:
                    self._process(items)
                except BaseException:
                    # Whatever stops the batch (refused credentials, a config error, an interrupt)
                    # leaves no row locked: rows already recorded are no longer `pushing` and stay
                    # as they are; the rest may have been in a request that left, so they wait as
                    # uncertain and the next run looks them up before sending.
                    self._release(items, sent=self.sent)
                    raise
        finally:
            self.run.add("invoices_failed", len(self.waiting))

    def _claim(self) -> list[OutboxItem]:
        items = self.store.claim_due(
            tenant=self.tenant,
            sink=self.name,
            owner=self.run.run_id,
            now=utcnow(),
            lease_seconds=self.settings.claim_lease_seconds,
            limit=self.settings.batch_size,
        )
        fresh = []
        for item in items:
            self.claims[item.idempotency_key] = self.claims.get(item.idempotency_key, 0) + 1
            if self.claims[item.idempotency_key] > MAX_CLAIMS_PER_RUN:
                self._later(item, RetryableError("still failing; left for the next run"))
            else:
                fresh.append(item)
        if items and not fresh:
            return self._claim()
        return fresh

    def _process(self, items: list[OutboxItem]) -> None:
        to_send = self._still_ours(self._lookup(items))
        if not to_send:
            return
        try:
            self._send(to_send)
        finally:
            self._read_back_totals()

    def _send(self, to_send: list[OutboxItem]) -> None:
        crash_point(BEFORE_REMOTE_CREATE)
        self.sent = True
        if Capability.BATCH_PUSH in self.capabilities and isinstance(self.sink, BatchInvoiceSink):
            # A batch call creates invoices; credit notes go one by one through push().
            invoices = [item for item in to_send if not item.plan.is_credit_note]
            if invoices:
                self._push_batch(invoices)
            self._push_each([item for item in to_send if item.plan.is_credit_note])
        else:
            self._push_each(to_send)

    def _push_each(self, to_send: list[OutboxItem]) -> None:
        """Create each plan with `push`: up to the sink's `push_concurrency` in flight at once."""
        workers = push_concurrency(self.sink, self.settings.concurrency)
        if workers > 1 and len(to_send) > 1:
            left = run_in_flight(
                to_send, self._create, self._record, workers=workers, stopped=self._stopped, name=self.name
            )
            if left:
                self._release(left)
            return
        for index, item in enumerate(to_send):
            if self._stopped():
                self._release(to_send[index:])
                return
            try:
                ref = self._create(item)
            except RemoteError as exc:
                self._failed(item, exc)
                continue
            self._pushed(item, ref)

    def _stopped(self) -> bool:
        return self.parked or self.run.lease_lost.is_set()

    def _create(self, item: OutboxItem) -> RemoteRef:
        if item.plan.is_credit_note and Capability.CREDIT_NOTES not in self.capabilities:
            raise RejectedError(f"{self.name} cannot take credit notes", provider_code="no_credit_notes")
        return self.sink.push(item.plan)

    def _record(self, item: OutboxItem, outcome: Future[RemoteRef]) -> None:
        try:
            ref = outcome.result()
        except RemoteError as exc:
            self._failed(item, exc)
            return
        self._pushed(item, ref)

    def _read_back_totals(self) -> None:
        """Read-after-write for sinks whose create does not report a total: one batched lookup."""
        items, self.unconfirmed = self.unconfirmed, []
        if not items:
            return
        try:
            found = self.sink.find([item.plan for item in items])
        except RemoteError as exc:
            log.warning("could not read back totals from %s: %s", self.name, exc, extra={"sink": self.name})
            return
        totals: list[RemoteTotal] = []
        reported = []
        for item in items:
            ref = found.get(item.idempotency_key)
            if ref is not None and ref.total is not None:
                totals.append((item.idempotency_key, ref.total, ref.tax))
                reported.append((item, ref))
        # One transaction for the batch: a read-back is a report, not a step of the protocol.
        differing = self.store.record_remote_totals(totals, utcnow())
        for item, ref in reported:
            if item.idempotency_key in differing:
                self._report_difference(item, ref)

    def _still_ours(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Only rows this run still holds may be sent: a stalled run whose claims were taken
        over by another run must not send what that run may be sending too."""
        if not items or self.run.lease_lost.is_set():
            return []
        held = self.store.still_held([i.idempotency_key for i in items], self.run.run_id, utcnow())
        lost = [i for i in items if i.idempotency_key not in held]
        if lost:
            log.warning("%d claimed invoice(s) were taken over by another run; not sent", len(lost))
        return [i for i in items if i.idempotency_key in held]

    def _lookup(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Record the ones the sink already has; return those still to send.

        A row not found by a lookup that answered is certain again: it is not in the sink.
        Without a lookup (it failed, or the sink has none) an uncertain row is never sent.
        """
        if Capability.LOOKUP not in self.capabilities:
            for item in items:
                if item.uncertain:
                    self._later(item, UncertainError(f"{self.name} has no lookup; a person must check"))
            return [item for item in items if not item.uncertain]
        try:
            found = self.sink.find([item.plan for item in items])
        except RemoteError as exc:
            log.warning("lookup in %s failed: %s", self.name, exc, extra={"sink": self.name})
            for item in items:
                if item.uncertain:
                    self._later(item, exc)
            return [item for item in items if not item.uncertain]
        rest = []
        for item in items:
            ref = found.get(item.idempotency_key)
            if ref is not None:
                self._pushed(item, ref.model_copy(update={"already_existed": True}))
            else:
                rest.append(replace(item, uncertain=False))
        return rest

    def _push_batch(self, items: list[OutboxItem]) -> None:
        assert isinstance(self.sink, BatchInvoiceSink)
        by_key = {item.idempotency_key: item for item in items}
        try:
            outcomes: Sequence[PushOutcome] = self.sink.push_batch([item.plan for item in items])
        except RemoteError as exc:
            for item in items:
                self._failed(item, exc)
            return
        seen = set()
        created: list[tuple[OutboxItem, RemoteRef]] = []
        for outcome in outcomes:
            claimed = by_key.get(outcome.idempotency_key)
            if claimed is None or outcome.idempotency_key in seen:
                continue
            seen.add(outcome.idempotency_key)
            if outcome.ref is not None:
                created.append((claimed, outcome.ref))
            else:
                self._failed(claimed, outcome.error or UncertainError("the sink returned no outcome"))
        # One call created them together: their outcomes are recorded together too.
        self._record_pushed(created)
        for key, item in by_key.items():
            if key not in seen:
                self._failed(
                    item, UncertainError(f"{self.name}: no outcome for invoice {item.plan.invoice_number}")
                )

    def _report_difference(self, item: OutboxItem, ref: RemoteRef) -> None:
        """The sink holds another total or tax than planned (e.g. it re-rounded): count and say so."""
        self.run.add("total_mismatch")
        plan = item.plan
        log.error(
            "invoice %s: %s holds total %s (tax %s), planned %s (net %s, tax %s)",
            plan.invoice_number,
            self.name,
            ref.total if ref.total is not None else "unknown",
            ref.tax if ref.tax is not None else "unknown",
            plan.total,
            plan.net_total,
            plan.tax_total,
            extra={"sink": self.name},
        )

    def _pushed(self, item: OutboxItem, ref: RemoteRef) -> None:
        self._record_pushed([(item, ref)])

    def _record_pushed(self, created: Sequence[tuple[OutboxItem, RemoteRef]]) -> None:
        """Record that the sink holds these invoices, in one step; count, compare and log them."""
        if not created:
            return
        crash_point(AFTER_REMOTE_CREATE)
        self.store.mark_all_pushed(
            [(item.idempotency_key, ref) for item, ref in created], self.run.run_id, utcnow()
        )
        for item, ref in created:
            self.waiting.discard(item.idempotency_key)
            self.claims.pop(item.idempotency_key, None)
            if ref.total is None and Capability.LOOKUP in self.capabilities:
                self.unconfirmed.append(item)
            self.run.add("invoices_existing" if ref.already_existed else "invoices_pushed")
            if (ref.total is not None and ref.total != item.plan.total) or (
                ref.tax is not None and item.plan.is_taxed and ref.tax != item.plan.tax_total
            ):
                self._report_difference(item, ref)
            log.info(
                "invoice %s %s in %s as %s",
                item.plan.invoice_number,
                "found" if ref.already_existed else "created",
                self.name,
                ref.remote_id,
                extra={"sink": self.name, "po_number": item.plan.po_number},
            )

    def _failed(self, item: OutboxItem, error: RemoteError) -> None:
        """Rejected goes dead; so does a certain row out of attempts. An uncertain one waits."""
        uncertain = item.uncertain or isinstance(error, UncertainError)
        if isinstance(error, RejectedError) or (
            item.attempts >= self.settings.max_attempts and not uncertain
        ):
            self._dead(item, error)
            return
        self._later(item, error)

    def _dead(self, item: OutboxItem, error: RemoteError) -> None:
        self.waiting.discard(item.idempotency_key)
        self.claims.pop(item.idempotency_key, None)
        self.store.mark_failed(
            item.idempotency_key, self.run.run_id, error, utcnow(), dead=True, uncertain=item.uncertain
        )
        self.run.add("dead")
        po = f"PO {item.plan.po_number}" if item.plan.po_number else "no PO"
        self.run.errors.append(f"invoice {item.plan.invoice_number} ({po}) dead: {error}")
        log.error(
            "invoice %s (%s) rejected by %s: %s",
            item.plan.invoice_number,
            po,
            self.name,
            error,
            extra={"sink": self.name, "correlation_id": error.correlation_id},
        )

    def _later(self, item: OutboxItem, error: RemoteError) -> None:
        now = utcnow()
        uncertain = isinstance(error, UncertainError) or item.uncertain
        when = self._next_attempt(item, error, now)
        self.store.mark_failed(
            item.idempotency_key,
            self.run.run_id,
            error,
            now,
            dead=False,
            next_attempt_at=when,
            uncertain=uncertain,
        )
        self.waiting.add(item.idempotency_key)
        self.run.add("push_attempts_failed")
        log.warning(
            "invoice %s to %s failed (%s), next attempt %s: %s",
            item.plan.invoice_number,
            self.name,
            type(error).__name__,
            when.isoformat(),
            error,
            extra={"sink": self.name},
        )

    def _next_attempt(self, item: OutboxItem, error: RemoteError, now: datetime) -> datetime:
        if isinstance(error, RetryableError) and error.park:
            self.parked = True
            return now + timedelta(seconds=error.retry_after or 3600)
        if (
            isinstance(error, UncertainError)
            and self.claims.get(item.idempotency_key, 0) < MAX_CLAIMS_PER_RUN
        ):
            return now  # look it up again in this run
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return now + timedelta(seconds=error.retry_after)
        return now + backoff(self.settings, item.attempts)

    def _release(self, items: list[OutboxItem], *, sent: bool = False) -> None:
        self.store.release([i.idempotency_key for i in items], self.run.run_id, utcnow(), sent=sent)
