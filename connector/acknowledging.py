"""Telling buyers we accepted (or rejected) their POs: deciding, then sending exactly once.

The acceptance rule: a PO revision is accepted automatically when it maps to a known customer
and every line's SKU (or part id) is one of ours; otherwise it waits for support
(`po accept|reject PO --reason ...`). Every revision is decided and answered on its own, so a
revision is acknowledged again. The answer goes back through the source the PO came from
(capability `acknowledge`): a cXML ConfirmationRequest, a Coupa `exported` flag, a reply e-mail.

Delivery follows the invoice outbox's rules: claim with a lease, send, record each outcome in
its own transaction; a retryable failure waits with backoff, a refusal goes dead. Each
acknowledgement carries an id derived from the PO revision and decision, so sending it again
after a lost answer gives the buyer a duplicate it recognises, never a second answer.
"""

from __future__ import annotations

import logging
from typing import Any

from connector.errors import ConfigError, RejectedError, RemoteError, RetryableError
from connector.faults import AFTER_REMOTE_CREATE, BEFORE_REMOTE_CREATE, crash_point
from connector.model import AckDecision, PoAcknowledgement, PurchaseOrder, utcnow
from connector.ports import Capability
from connector.pushing import backoff
from connector.runtime import Connector, RunContext
from state import acks, ingest

log = logging.getLogger("po_connector.acknowledge")

LEASE_SECONDS = 300
BATCH = 50


def acceptance(app: Connector, po: PurchaseOrder) -> tuple[AckDecision | None, str]:
    """Accept when the customer and every SKU are known; otherwise (None) support decides."""
    problems = []
    if app.customer_map.customer_for(po) is None:
        problems.append(f"buyer {po.buyer_id or po.buyer_name or '?'} is no customer in the customer master")
    unknown = [
        line
        for line in po.lines
        if not app.sku_map.knows_po_sku(line.sku)
        and not (line.supplier_part_aux_id and app.sku_map.knows_po_sku(line.supplier_part_aux_id))
    ]
    problems += [f"line {line.line_no}: SKU {line.sku!r} is not ours" for line in unknown]
    if problems:
        return None, "; ".join(problems)
    return AckDecision.ACCEPT, "customer and every SKU known"


def answering_sources(app: Connector) -> dict[str, Any]:
    return {
        name: source
        for name, source in app.sources.items()
        if Capability.ACKNOWLEDGE in frozenset(getattr(type(source), "capabilities", ()))
    }


def mail_answers(app: Connector) -> bool:
    """E-mailed POs are answered by a reply e-mail when `[mail]` is set up for it."""
    mail = app.settings.mail
    return mail is not None and mail.acknowledgements


def record_acknowledgements(app: Connector, run: RunContext) -> None:
    """Decide every PO revision not decided yet; count what waits for support."""
    answering = answering_sources(app)
    by_mail = mail_answers(app)
    created = 0
    with app.engine.begin() as conn:
        for pos in acks.undecided_pos(conn, app.tenant):
            revisions = []
            for po in pos:
                decision, reason = acceptance(app, po)
                answers = po.source in answering or (by_mail and bool(po.origin_message))
                revisions.append(
                    acks.Revision(po.key, po.revision, po.source, po.po_number, decision, reason, answers)
                )
            created += acks.record_revisions(conn, app.tenant, revisions, run.started_at)
        waiting = acks.count_by_state(conn, app.tenant).get(acks.WAITING, 0)
    run.add("acknowledgements_decided", created)
    run.counts["acknowledgements_waiting"] = waiting


def send_acknowledgements(app: Connector, run: RunContext, sources: list[str] | None = None) -> None:
    """Send every due acknowledgement through the source it answers, or as a reply e-mail
    (queued in the message outbox, then sent with the other messages) for an e-mailed PO."""
    answering = answering_sources(app)
    mailed = 0
    for name in sorted(app.sources):
        if sources is not None and name not in sources:
            continue
        while not run.lease_lost.is_set():
            with app.engine.begin() as conn:
                rows = acks.claim_due(conn, app.tenant, name, run.run_id, utcnow(), LEASE_SECONDS, BATCH)
            if not rows:
                break
            for row in rows:
                mailed += _send_one(app, run, answering.get(name), row)
    if mailed:
        from connector.mail_sending import send_due

        send_due(app, run)


def _send_one(app: Connector, run: RunContext, source: Any, row: dict[str, Any]) -> int:
    """Send one claimed acknowledgement; 1 when it was queued as a reply e-mail."""
    with app.connect() as conn:
        po = ingest.po_at_revision(conn, row["po_key"], row["revision"])
        stored = ingest.stored_payload(conn, row["po_key"])
    current = stored is not None and stored[0] == row["revision"]
    raw, document = (stored[1], stored[2]) if stored is not None and current else ("", "")
    if po is None:
        _failed(app, run, row, "the PO revision is no longer stored", retry=False)
        return 0
    ack = PoAcknowledgement(
        ack_id=row["ack_id"],
        po=po,
        decision=AckDecision(row["decision"]),
        reason=row["reason"],
        decided_at=row["decided_at"] or utcnow(),
        raw=raw,
        document=document,
    )
    if source is None:
        return _queue_reply(app, run, row, ack)
    crash_point(BEFORE_REMOTE_CREATE)
    try:
        remote_ref = source.acknowledge(ack)
    except (RejectedError, ConfigError) as exc:
        _failed(app, run, row, str(exc), retry=False)
        return 0
    except RetryableError as exc:
        _failed(app, run, row, str(exc), retry=True)
        return 0
    except RemoteError as exc:  # the answer was lost: sent again later under the same id
        _failed(app, run, row, str(exc), retry=True, uncertain=True)
        return 0
    crash_point(AFTER_REMOTE_CREATE)
    with app.engine.begin() as conn:
        recorded = acks.mark_sent(conn, row["id"], run.run_id, str(remote_ref or ""), utcnow())
    _count_sent(run, row, recorded)
    return 0


def _queue_reply(app: Connector, run: RunContext, row: dict[str, Any], ack: PoAcknowledgement) -> int:
    """An e-mailed PO's answer: the reply planned in the message outbox, in one transaction with
    the acknowledgement it completes (the message outbox then sends it exactly once)."""
    from connector.mail_acks import compose_acknowledgement
    from state import messages

    mail = app.settings.mail
    if mail is None or not ack.po.origin_message:
        _failed(app, run, row, "no way to answer: no e-mail to reply to, no source that answers", retry=False)
        return 0
    try:
        message = compose_acknowledgement(app, mail, ack, utcnow())
    except ConfigError as exc:
        _failed(app, run, row, str(exc), retry=False)
        return 0
    with app.engine.begin() as conn:
        messages.plan(conn, message, utcnow(), run.run_id)
        recorded = acks.mark_sent(conn, row["id"], run.run_id, f"reply {message.message_id}", utcnow())
    _count_sent(run, row, recorded)
    return 1


def _count_sent(run: RunContext, row: dict[str, Any], recorded: bool) -> None:
    if not recorded:
        return
    run.add("acknowledgements_sent")
    log.info(
        "PO %s revision %s: %s sent to the buyer (%s)",
        row["po_number"],
        row["revision"],
        row["decision"],
        row["source"],
        extra={"po_number": row["po_number"]},
    )


def _failed(
    app: Connector, run: RunContext, row: dict[str, Any], error: str, *, retry: bool, uncertain: bool = False
) -> None:
    now = utcnow()
    attempts = int(row["attempts"]) + 1  # the claim counted this attempt in the row, not in `row`
    retry = retry and attempts < app.settings.push.max_attempts
    retry_at = now + backoff(app.settings.push, attempts) if retry else None
    with app.engine.begin() as conn:
        acks.mark_failed(conn, row["id"], run.run_id, error, now, retry_at=retry_at, uncertain=uncertain)
    run.add("acknowledgements_failed" if retry_at is None else "acknowledgements_waiting_retry")
    log.warning(
        "PO %s revision %s: acknowledgement not sent: %s",
        row["po_number"],
        row["revision"],
        error,
        extra={"po_number": row["po_number"]},
    )
