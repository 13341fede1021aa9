"""Renewal PO requests by e-mail: planned after reconciliation, each sent exactly once.

`request_renewals` runs right after `reconcile_and_plan` (sync and reconcile). It reads the
stored results, finds the requests they ask for (`connector.renewal_requests`), renders each
from its template to the customer's AP address in the customer master, and stores it in the
message outbox (`state.messages`) under its dedupe key: a request already planned, sent or
in doubt is never planned again. A customer without an AP address gets an `unaddressed` row
(counted in the run summary and logged, never sent). Requests whose reason is gone before they
were sent are withdrawn. Then, unless the run is a dry run or only reconciles, the due ones are
sent (`connector.mail_sending`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from connector.errors import ConfigError
from connector.mail_render import MailTemplate, build_message, load_template, message_id_for
from connector.mail_sending import mail_config_failed, send_due
from connector.mail_settings import MailSettings, address_text
from connector.model import MatchStatus
from connector.renewal_requests import (
    KIND,
    RENEWAL_DUE,
    TEMPLATES,
    RenewalRequest,
    find_requests,
    lines_table,
)
from connector.runtime import Connector, RunContext
from state import billing_store, ingest, messages, outbox_queries, results
from state.key_chunks import chunks

log = logging.getLogger("po_connector.mail")

WITHDRAWN_WHY = "withdrawn before it was sent: its reason is gone (a PO arrived, or the PO was renewed)"


def request_renewals(app: Connector, run: RunContext, *, send: bool = True, replan: bool = True) -> None:
    """Plan the renewal PO requests the reconciliation asks for; send the due ones when `send`.

    Without `replan` (the reconciliation and everything planning reads are as they were at
    the last planning) only the due ones are sent.

    A mail configuration problem (a template, the transport) is counted as a configuration
    error of the run and reported; it never stops the invoices.
    """
    mail = app.settings.mail
    if mail is None or not mail.renewal_requests:
        return
    run.counts.setdefault("renewal_requests_planned", 0)
    try:
        if replan:
            plan_requests(app, run, mail)
    except ConfigError as exc:
        mail_config_failed(run, exc)
        return
    with app.connect() as conn:
        counts = messages.count_by_state(conn, app.tenant)
    run.counts["renewal_requests_unaddressed"] = counts.get(messages.UNADDRESSED, 0)
    if send and not app.dry_run:
        send_due(app, run)


# Customers whose results, periods, POs and draws are read at once when requests are planned.
CUSTOMERS_PER_BATCH = 250


def plan_requests(app: Connector, run: RunContext, mail: MailSettings) -> None:
    """Store every request the stored results ask for (one transaction), withdraw stale ones.

    Only the customers with a result that may ask for one (a missing PO, a renewal warning)
    are read, a batch of customers at a time.
    """
    now = run.started_at
    templates_dir = app.loaded.resolve(mail.templates_dir) if mail.templates_dir else None
    templates = {name: load_template(name, templates_dir) for name in sorted(set(TEMPLATES.values()))}
    with app.engine.begin() as conn:
        keep: set[str] = set()
        missing = MatchStatus.MISSING_PO.value
        asking = results.customers_with(conn, app.tenant, missing, RENEWAL_DUE)
        for batch in chunks(asking, CUSTOMERS_PER_BATCH):
            keep |= _plan_for(app, run, mail, conn, set(batch), templates)
        messages.withdraw_unjustified(conn, app.tenant, KIND, keep, now, WITHDRAWN_WHY)


def _plan_for(
    app: Connector,
    run: RunContext,
    mail: MailSettings,
    conn: Connection,
    customers: set[str],
    templates: dict[str, MailTemplate],
) -> set[str]:
    """Plan the requests of `customers`; their dedupe keys."""
    now = run.started_at
    stored = results.load_results(conn, app.tenant, customers)
    periods = {p.key: p for p in billing_store.load_billing_periods(conn, app.tenant, customers)}
    pos = {item.po.key: item.po for item in ingest.load_pos_of(conn, app.tenant, customers)}
    consumed = outbox_queries.consumed_per_po(outbox_queries.consumption(conn, app.tenant, customers))
    keep: set[str] = set()
    for request in find_requests(stored, periods, pos):
        message = compose(app, mail, request, templates, consumed, now)
        keep.add(message.dedupe_key)
        outcome = messages.plan(conn, message, now, run.run_id)
        if outcome in ("planned", "replanned"):
            run.add("renewal_requests_planned")
        if not message.recipient:
            log.warning(
                "customer %s has no usable ap_email in the customer master: the PO request "
                "for %s %s..%s is not mailed",
                request.customer_ref,
                request.po.po_number if request.po else "billing period",
                request.cycle.start,
                request.cycle.end,
                extra={"customer_ref": request.customer_ref, "reason": request.reason},
            )
    return keep


def recipient_of(app: Connector, customer_ref: str) -> str:
    """The customer's AP address from the customer master; empty when it has none usable."""
    customer = app.customer_map.get(customer_ref)
    address = customer.master.ap_email.strip() if customer is not None else ""
    try:
        return address_text(address, "ap_email") if address else ""
    except ValueError:
        return ""


def template_values(
    request: RenewalRequest, *, customer_name: str, po_inbox: str, supplier_name: str, consumed: Decimal
) -> dict[str, str]:
    """Every placeholder a template may use (empty where it does not apply to this request)."""
    cycle, po, last = request.cycle, request.po, request.last_cycle
    currency = cycle.amount.currency
    values = {
        "customer_name": customer_name,
        "customer_ref": request.customer_ref,
        "po_number": po.po_number if po else "",
        "term_end": po.term_end.isoformat() if po and po.term_end else "",
        "why": request.why,
        "period_start": cycle.start.isoformat(),
        "period_end": cycle.end.isoformat(),
        "last_period": f"{last.start.isoformat()} to {last.end.isoformat()}" if last else "",
        "amount": str(cycle.amount.amount),
        "currency": currency,
        "lines": lines_table(cycle.lines, currency),
        "our_reference": " ".join((request.customer_ref, *cycle.subscriptions)),
        "po_inbox": po_inbox,
        "supplier_name": supplier_name,
        "po_total": "",
        "consumed": "",
        "remaining": "",
        "share": "",
    }
    if po is not None:
        total = po.total.quantized().amount
        share = (consumed * 100 / total).quantize(Decimal("0.1")) if total > 0 else Decimal(0)
        values.update(
            po_total=f"{total} {po.currency}",
            consumed=f"{consumed} {po.currency}",
            remaining=f"{total - consumed} {po.currency}",
            share=f"{share}%",
        )
    return values


def compose(
    app: Connector,
    mail: MailSettings,
    request: RenewalRequest,
    templates: dict[str, Any],
    consumed: dict[str, Decimal],
    now: datetime,
) -> messages.OutgoingMessage:
    """The request rendered as the message that goes out (or would, once the customer has an address)."""
    key = messages.dedupe_key(app.tenant, KIND, request.subject_key, request.reason)
    request_id = f"REQ-{key[:8].upper()}"
    supplier = app.settings.supplier
    values = template_values(
        request,
        customer_name=app.customer_map.name_of(request.customer_ref) or request.customer_ref,
        po_inbox=mail.reply_to,
        supplier_name=supplier.legal_name if supplier else (mail.from_name or mail.from_address),
        consumed=consumed.get(request.subject_key, Decimal(0)),
    )
    values["request_id"] = request_id
    subject, body = templates[TEMPLATES[request.kind]].render(values)
    recipient = recipient_of(app, request.customer_ref)
    message_id = message_id_for(key, mail.domain)
    text = ""
    if recipient:
        text = build_message(
            sender=mail.from_address,
            sender_name=mail.from_name,
            recipient=recipient,
            reply_to=mail.reply_to,
            subject=subject,
            body=body,
            message_id=message_id,
            date=now,
        )
    cycle = request.cycle
    details = {
        "kind": request.kind,
        "request_id": request_id,
        "why": request.why,
        "customer_name": values["customer_name"],
        "period_start": values["period_start"],
        "period_end": values["period_end"],
        "amount": values["amount"],
        "currency": values["currency"],
        "our_reference": values["our_reference"],
        "lines": [
            {
                "sku": line.sku,
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price.amount),
                "amount": str(line.amount.quantized().amount),
            }
            for line in cycle.lines
        ],
    }
    return messages.OutgoingMessage(
        tenant=app.tenant,
        kind=KIND,
        subject_key=request.subject_key,
        reason=request.reason,
        customer_ref=request.customer_ref,
        po_number=values["po_number"],
        recipient=recipient,
        subject=subject,
        message_id=message_id,
        message=text,
        details=details,
    )
