"""What `po-connector status` shows: per source and sink, where things stand."""

from __future__ import annotations

from typing import Any

from connector.mail_views import mail_status
from connector.runtime import Connector
from state import acks, ingest, outbox, outbox_queries, quarantine_store, results, runs


def collect_status(app: Connector) -> dict[str, Any]:
    """Cursors, last runs, outbox counts per state, quarantine, dead letters, flags, warnings, and
    the renewal PO requests (`mail`: what was asked when, what waits or needs a decision)."""
    with app.connect() as conn:
        cursors = {(c["source"], c["stream"]): c for c in ingest.list_cursors(conn, app.tenant)}
        quarantine = quarantine_store.count_quarantine(conn, app.tenant)
        outbox_counts = outbox_queries.count_by_state(conn, app.tenant)
        dead = outbox_queries.list_rows(conn, app.tenant, state=outbox.DEAD)
        flagged = outbox_queries.list_rows(conn, app.tenant, flagged=True, acknowledged=False)
        acknowledged = len(outbox_queries.list_rows(conn, app.tenant, flagged=True, acknowledged=True))
        last = runs.last_run(conn, app.tenant)
        warned = list(results.warned(conn, app.tenant))
        statuses = results.count_by_status(conn, app.tenant)
        ack_counts = acks.count_by_state(conn, app.tenant)
        ack_open = acks.list_acks(conn, app.tenant, states=(acks.WAITING, acks.DEAD))
    names = [b["name"] for b in app.settings.sources] + [b["name"] for b in app.settings.billing]
    sources = []
    for name in names:
        cursor = next((c for (source, _), c in cursors.items() if source == name), None)
        sources.append(
            {
                "name": name,
                "cursor": cursor["cursor_json"] if cursor else None,
                "cursor_updated_at": cursor["updated_at"].isoformat() if cursor else None,
                "quarantined": quarantine.get(name, 0),
            }
        )
    # A warning is about its PO: several periods on one PO carry it once, with every period named.
    warnings: dict[tuple[str, str, str], dict[str, Any]] = {}
    for po_number, subject, found in warned:
        for warning in found:
            key = (po_number or "", warning.get("code", ""), warning.get("detail", ""))
            shown = warnings.setdefault(key, {"po_number": po_number, **warning, "subjects": []})
            shown["subjects"].append(subject)
    return {
        "tenant": app.tenant,
        "last_run": _run_brief(last),
        "sources": sources,
        "sinks": [
            {"name": b["name"], "outbox": outbox_counts.get(b["name"], {})} for b in app.settings.sinks
        ],
        "match_status": statuses,
        "quarantined": sum(quarantine.values()),
        "dead_letters": [
            {
                "invoice_number": row["invoice_number"],
                "po_number": row["po_number"],
                "sink": row["sink"],
                "error": row["last_error"],
                "correlation_id": row["correlation_id"],
                "key": row["idempotency_key"],
            }
            for row in dead
        ],
        "flagged": [flag_view(row) for row in flagged],
        "flags_acknowledged": acknowledged,
        "renewal_warnings": list(warnings.values()),
        "acknowledgements": ack_counts,
        # PO revisions waiting for support's decision, and answers the buyer refused or never got
        "acknowledgements_open": [
            {
                "po_number": row["po_number"],
                "revision": row["revision"],
                "source": row["source"],
                "state": row["state"],
                "reason": row["reason"],
                "error": row["last_error"] or "",
            }
            for row in ack_open
        ],
        "mail": mail_status(app),
    }


def flag_view(row: dict[str, Any]) -> dict[str, Any]:
    """One flagged outbox row as status, `flags list` and the report show it."""
    acked = row.get("flag_acked_at")
    return {
        "invoice_number": row["invoice_number"],
        "key": row["idempotency_key"],
        "po_number": row["po_number"],
        "customer_ref": row["customer_ref"],
        "sink": row["sink"],
        "total_mismatch": bool(row["total_mismatch"]),
        "planned_net": f"{row['amount']} {row['currency']}",
        "planned_tax": _money(row["tax_amount"], row["currency"]),
        "planned_total": _money(
            row["gross_amount"] if row["gross_amount"] is not None else row["amount"], row["currency"]
        ),
        "remote_total": _money(row["remote_total"], row["currency"]),
        "remote_tax": _money(row["remote_tax"], row["currency"]),
        "amended_after_push": bool(row["amended_after_push"]),
        "detail": row["amended_detail"],
        "acknowledged_at": acked.isoformat() if acked else None,
        "acknowledged_note": row.get("flag_ack_note"),
    }


def flag_text(flag: dict[str, Any]) -> str:
    """Why an invoice is flagged, in words: the totals that differ, or what changed after sending."""
    notes = []
    if flag["total_mismatch"]:
        held = flag["remote_total"] or "unknown"
        tax = f" (tax {flag['remote_tax']})" if flag.get("remote_tax") else ""
        planned_tax = f" (tax {flag['planned_tax']})" if flag.get("planned_tax") else ""
        notes.append(f"the sink holds {held}{tax}, planned {flag['planned_total']}{planned_tax}")
    if flag["amended_after_push"]:
        notes.append(f"changed after it was sent: {flag['detail'] or 'see the outbox'}")
    return "; ".join(notes) or "flagged"


def _money(amount: Any, currency: str) -> str | None:
    return None if amount is None else f"{amount} {currency}"


def _run_brief(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run["id"],
        "command": run["command"],
        "status": run["status"],
        "exit_code": run["exit_code"],
        "started_at": run["started_at"].isoformat(),
        "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
    }
