"""The reply e-mail that acknowledges an e-mailed PO: accepted or rejected, what and why.

It answers the message the PO came in (`In-Reply-To` its Message-ID, to its sender, else the
customer's AP address) and goes out through the message outbox, like renewal requests: one row
per (PO revision, decision), a Message-ID derived from it, sent exactly once.
"""

from __future__ import annotations

from datetime import datetime

from connector.mail_render import build_message, load_template, message_id_for
from connector.mail_settings import MailSettings, address_text
from connector.model import AckDecision, PoAcknowledgement
from connector.runtime import Connector
from state import messages

KIND = "po_acknowledgement"
TEMPLATES = {AckDecision.ACCEPT: "po_accepted", AckDecision.REJECT: "po_rejected"}


def _recipient(app: Connector, ack: PoAcknowledgement) -> str:
    for candidate in (ack.po.origin_sender, _ap_address(app, ack)):
        try:
            if candidate.strip():
                return address_text(candidate.strip(), "recipient")
        except ValueError:
            continue
    return ""


def _ap_address(app: Connector, ack: PoAcknowledgement) -> str:
    ref = app.customer_map.customer_for(ack.po)
    customer = app.customer_map.get(ref) if ref else None
    return customer.master.ap_email if customer is not None else ""


def _lines(ack: PoAcknowledgement) -> str:
    rows = [f"  {'Line':<5} {'SKU':<20} {'Quantity':>10} {'Unit price':>14}"]
    for line in ack.po.lines:
        price = f"{line.unit_price.amount} {line.unit_price.currency}"
        rows.append(f"  {line.line_no:<5} {line.sku[:20]:<20} {line.quantity:>10} {price:>14}")
    return "\n".join(rows)


def compose_acknowledgement(
    app: Connector, mail: MailSettings, ack: PoAcknowledgement, now: datetime
) -> messages.OutgoingMessage:
    """The reply for `ack`, rendered from the `po_accepted` / `po_rejected` template."""
    po = ack.po
    ref = app.customer_map.customer_for(po) or ""
    reason = f"r{po.revision}:{ack.decision.value}"
    key = messages.dedupe_key(app.tenant, KIND, po.key, reason)
    templates_dir = app.loaded.resolve(mail.templates_dir) if mail.templates_dir else None
    supplier = app.settings.supplier
    term = (
        " to ".join(day.isoformat() for day in (po.term_start, po.term_end) if day)
        or "as stated on the order"
    )
    values = {
        "customer_name": app.customer_map.name_of(ref) or po.buyer_name or ref or "customer",
        "po_number": po.po_number,
        "revision": str(po.revision),
        "total": str(po.total.quantized().amount),
        "currency": po.currency,
        "term": term,
        "reason": ack.reason,
        "lines": _lines(ack),
        "po_inbox": mail.reply_to,
        "supplier_name": supplier.legal_name if supplier else (mail.from_name or mail.from_address),
    }
    subject, body = load_template(TEMPLATES[ack.decision], templates_dir).render(values)
    recipient = _recipient(app, ack)
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
            in_reply_to=po.origin_message,
        )
    return messages.OutgoingMessage(
        tenant=app.tenant,
        kind=KIND,
        subject_key=po.key,
        reason=reason,
        customer_ref=ref,
        po_number=po.po_number,
        recipient=recipient,
        subject=subject,
        message_id=message_id,
        message=text,
        details={"decision": ack.decision.value, "revision": po.revision, "in_reply_to": po.origin_message},
    )
