"""The reconciliation report: counts and amounts per status, one row per billing period or PO.

Formats: JSON (for machines), CSV (cells safe from spreadsheet formula injection) and one
self-contained HTML page (inline CSS, no scripts, no network assets) for a finance reader.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connector.mail_views import renewal_requests, request_actions
from connector.model import MatchStatus
from connector.report_html import render_html
from connector.runtime import Connector
from connector.status import flag_text, flag_view
from state import ingest, outbox, outbox_queries, quarantine_store, results

COLUMNS = (
    "status",
    "customer_ref",
    "po_number",
    "period_start",
    "period_end",
    "amount",
    "net",
    "tax",
    "gross",
    "currency",
    "invoice_number",
    "invoice_state",
    "reasons",
    "warnings",
    "subject",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def build_report(app: Connector) -> dict[str, Any]:
    """Stored results joined with their invoices, plus totals per status and currency."""
    with app.connect() as conn:
        stored = results.load_results(conn, app.tenant)
        invoices = outbox_queries.list_rows(conn, app.tenant)
        pos = ingest.load_pos(conn, app.tenant)
        consumed = outbox_queries.consumed_per_po(outbox_queries.consumption(conn, app.tenant))
        quarantined = quarantine_store.list_quarantine(conn, app.tenant)
    customers = app.customer_map
    refs = {r["customer_ref"] for r in stored if r["customer_ref"]}
    refs |= {po.customer_ref for po in pos if po.customer_ref}
    zero = Decimal(0)
    balances = [
        {
            "po_number": po.po_number,
            "customer_ref": customers.customer_for(po) or "",
            "currency": po.currency,
            "total": str(po.total.amount),
            "consumed": str(consumed.get(po.key, po.total.amount * zero)),
            "remaining": str(po.total.amount - consumed.get(po.key, zero)),
            "term_start": po.term_start.isoformat() if po.term_start else "",
            "term_end": po.term_end.isoformat() if po.term_end else "",
        }
        for po in pos
    ]
    refs |= {b["customer_ref"] for b in balances if b["customer_ref"]}
    policies = []
    for ref in sorted(refs):
        customer = customers.get(ref)
        if customer is not None:
            master = customer.master
            policies.append(
                {
                    "customer_ref": ref,
                    "po_required": master.po_required,
                    "po_scope": master.po_scope,
                    "po_pattern": master.po_pattern,
                }
            )
    extra = {
        "renewal_requests": renewal_requests(app) if app.settings.mail else [],
        "customers": {ref: customers.name_of(ref) or ref for ref in sorted(refs)},
        "balances": balances,
        "po_policy": policies,
        "quarantine": [
            {
                "source": q["source"],
                "file": q["document"],
                "row": q["location"],
                "field": q["field"],
                "value": q["value"],
                "reason": q["reason"],
            }
            for q in quarantined
        ],
    }
    return assemble_report(app.tenant, stored, invoices, extra)


def _invoice_state(invoice: dict[str, Any] | None) -> str:
    if invoice is None:
        return ""
    return "credited" if invoice.get("credited_by") else str(invoice["state"])


def _current_invoices(invoices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """billing key -> the invoice that stands for it: the one not credited, else the latest."""
    current: dict[str, dict[str, Any]] = {}
    for row in invoices:
        if row.get("document_type", "invoice") != "invoice":
            continue
        seen = current.get(row["billing_key"])
        if seen is None or seen.get("credited_by") is not None:
            current[row["billing_key"]] = row
    return current


def _chains(invoices: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """billing key -> its invoices and credit notes in order, for periods that had a credit note
    (one entry per document number, whatever sinks hold it)."""
    numbers = {row["idempotency_key"]: row["invoice_number"] for row in invoices}
    credited = {row["billing_key"] for row in invoices if row.get("document_type") == "credit_note"}
    chains: dict[str, dict[str, dict[str, str]]] = {}
    for row in invoices:
        if row["billing_key"] not in credited:
            continue
        chains.setdefault(row["billing_key"], {}).setdefault(
            row["invoice_number"],
            {
                "document_type": row["document_type"],
                "number": row["invoice_number"],
                "state": row["state"],
                "gross": str(row["gross_amount"] if row["gross_amount"] is not None else row["amount"]),
                "currency": row["currency"],
                "credits": numbers.get(row.get("credits_key") or "", ""),
                "credited_by": numbers.get(row.get("credited_by") or "", ""),
            },
        )
    return {key: list(documents.values()) for key, documents in chains.items()}


def assemble_report(
    tenant: str,
    stored: list[dict[str, Any]],
    invoices: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report from stored results and outbox rows (pure: no I/O).

    `extra` may carry `customers` (ref -> name), `balances` (per PO) and `quarantine` rows.
    """
    extra = extra or {}
    names: dict[str, str] = extra.get("customers", {})
    by_billing = _current_invoices(invoices)
    chains = _chains(invoices)
    rows = []
    invoiced: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {"net": Decimal(0), "tax": Decimal(0), "gross": Decimal(0)}
    )
    totals: dict[str, dict[str, Any]] = {
        s.value: {"count": 0, "amounts": defaultdict(Decimal)} for s in MatchStatus
    }
    for result in stored:
        invoice = by_billing.get(result["billing_key"] or "")
        row = {
            "status": result["status"],
            "customer_ref": result["customer_ref"] or "",
            "customer_name": names.get(result["customer_ref"] or "", result["customer_ref"] or ""),
            "po_number": result["po_number"] or "",
            "period_start": result["period_start"].isoformat() if result["period_start"] else "",
            "period_end": result["period_end"].isoformat() if result["period_end"] else "",
            "amount": str(result["amount"]) if result["amount"] is not None else "",
            **_invoice_amounts(invoice),
            "currency": result["currency"] or "",
            "invoice_number": invoice["invoice_number"] if invoice else "",
            "invoice_state": _invoice_state(invoice),
            "documents": chains.get(result["billing_key"] or "", []),
            "reasons": result["reasons"],
            "warnings": result["warnings"],
            "subject": result["subject_key"],
        }
        if invoice and invoice["total_mismatch"]:
            row["warnings"] = [
                *row["warnings"],
                {
                    "code": "remote_total_differs",
                    "detail": f"sink holds {invoice['remote_total']} {invoice['currency']}"
                    + (f" (tax {invoice['remote_tax']})" if invoice["remote_tax"] is not None else "")
                    + f", planned {row['gross'] or invoice['amount']} {invoice['currency']}"
                    + (f" (tax {row['tax']})" if row["tax"] else ""),
                },
            ]
        if invoice and invoice["amended_after_push"]:
            acked = invoice.get("flag_acked_at")
            handled = f" (acknowledged {acked.date()}: {invoice.get('flag_ack_note')})" if acked else ""
            row["warnings"] = [
                *row["warnings"],
                {"code": "amended_after_push", "detail": f"{invoice['amended_detail']}{handled}"},
            ]
        rows.append(row)
        bucket = totals[result["status"]]
        bucket["count"] += 1
        if result["amount"] is not None:
            bucket["amounts"][result["currency"]] += result["amount"]
        if row["gross"] and row["invoice_state"] != "credited":
            invoiced[result["currency"]]["net"] += Decimal(row["net"])
            invoiced[result["currency"]]["tax"] += Decimal(row["tax"] or 0)
            invoiced[result["currency"]]["gross"] += Decimal(row["gross"])
    summary = {
        status: {"count": data["count"], "amounts": {c: str(a) for c, a in sorted(data["amounts"].items())}}
        for status, data in totals.items()
    }
    # What the invoices planned or sent add up to, per currency: net, tax and what buyers pay.
    invoiced_totals = {
        currency: {part: str(amount) for part, amount in parts.items()}
        for currency, parts in sorted(invoiced.items())
    }
    dead = [
        {
            "invoice_number": row["invoice_number"],
            "po_number": row["po_number"] or "",
            "customer_ref": row["customer_ref"] or "",
            "sink": row["sink"],
            "error": row["last_error"] or "",
        }
        for row in invoices
        if row["state"] == outbox.DEAD
    ]
    flagged = [
        {**flag_view(row), "text": flag_text(flag_view(row))}
        for row in invoices
        if (row["total_mismatch"] or row["amended_after_push"]) and row.get("flag_acked_at") is None
    ]
    report: dict[str, Any] = {
        "tenant": tenant,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "invoiced": invoiced_totals,
        "rows": rows,
        "customers": names,
        "balances": extra.get("balances", []),
        "po_policy": extra.get("po_policy", []),
        "dead": dead,
        "flagged": flagged,
        "quarantine": extra.get("quarantine", []),
        "renewal_requests": extra.get("renewal_requests", []),
    }
    report["action_needed"] = action_needed(report)
    return report


def action_needed(report: dict[str, Any]) -> list[dict[str, str]]:
    """What a person has to do, from a report: each entry has kind, customer, po_number, what, amount.

    Periods without a PO (ask for one), POs about to run out (with what the next cycle needs: the
    last matched period's amount on that PO), mismatches and ambiguous periods with their reasons,
    dead and flagged invoices, renewal requests that need a decision or an address, quarantined input.
    """
    names: dict[str, str] = report.get("customers", {})

    def name(ref: str) -> str:
        return names.get(ref) or ref

    def period(row: dict[str, Any]) -> str:
        return f"{row['period_start']} – {row['period_end']}" if row["period_start"] else ""

    def money(amount: str, currency: str) -> str:
        return f"{amount} {currency}".strip() if amount else ""

    out: list[dict[str, str]] = []
    rows = report["rows"]
    for row in rows:
        if row["status"] == MatchStatus.MISSING_PO.value:
            out.append(
                {
                    "kind": "missing_po",
                    "customer": name(row["customer_ref"]),
                    "po_number": "",
                    "what": f"ask for a PO covering {period(row)}",
                    "amount": money(row["amount"], row["currency"]),
                }
            )
    last_matched: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == MatchStatus.MATCHED.value and row["po_number"]:
            known = last_matched.get(row["po_number"])
            if known is None or row["period_start"] >= known["period_start"]:
                last_matched[row["po_number"]] = row
    renewals: dict[str, dict[str, str]] = {}
    for row in rows:
        for warning in row["warnings"]:
            if warning.get("code") != "renewal_due" or not row["po_number"]:
                continue
            entry = renewals.get(row["po_number"])
            if entry is None:
                last = last_matched.get(row["po_number"], row)
                entry = {
                    "kind": "renewal_due",
                    "customer": name(row["customer_ref"]),
                    "po_number": row["po_number"],
                    "what": "",
                    "amount": money(last["amount"], last["currency"]),
                }
                renewals[row["po_number"]] = entry
            if warning["detail"] not in entry["what"]:
                entry["what"] = "; ".join(filter(None, [entry["what"], warning["detail"]]))
    out.extend(renewals.values())
    for row in rows:
        if row["status"] in (MatchStatus.MISMATCH.value, MatchStatus.AMBIGUOUS.value):
            out.append(
                {
                    "kind": row["status"],
                    "customer": name(row["customer_ref"]),
                    "po_number": row["po_number"],
                    "what": f"{period(row)}: {_reasons_text(row['reasons'])}".strip(": "),
                    "amount": money(row["amount"], row["currency"]),
                }
            )
    for dead in report.get("dead", []):
        out.append(
            {
                "kind": "dead",
                "customer": name(dead["customer_ref"]),
                "po_number": dead["po_number"],
                "what": f"invoice {dead['invoice_number']} refused by {dead['sink']}: {dead['error']}",
                "amount": "",
            }
        )
    for flag in report.get("flagged", []):
        out.append(
            {
                "kind": "flagged",
                "customer": name(flag["customer_ref"] or ""),
                "po_number": flag["po_number"] or "",
                "what": f"invoice {flag['invoice_number']}: {flag['text']}",
                "amount": flag["planned_total"] or "",
            }
        )
    out.extend(request_actions(report.get("renewal_requests", []), name))
    for q in report.get("quarantine", []):
        out.append(
            {
                "kind": "quarantined",
                "customer": "",
                "po_number": "",
                "what": f"{q['file']}, {q['row']}: field {q['field']!r} value {q['value']!r}: {q['reason']}",
                "amount": "",
            }
        )
    return out


def _invoice_amounts(invoice: dict[str, Any] | None) -> dict[str, str]:
    """Net, tax and gross of the period's invoice; empty when it has none (or none taxed yet)."""
    if invoice is None:
        return {"net": "", "tax": "", "gross": ""}
    gross = invoice["gross_amount"] if invoice["gross_amount"] is not None else invoice["amount"]
    tax = invoice["tax_amount"]
    return {"net": str(invoice["amount"]), "tax": "" if tax is None else str(tax), "gross": str(gross)}


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def safe_cell(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula (OWASP CSV injection)."""
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _reasons_text(items: list[dict[str, str]]) -> str:
    return "; ".join(f"{item['code']}: {item['detail']}" for item in items)


def render_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in report["rows"]:
        cells = []
        for column in COLUMNS:
            value = row[column]
            text = _reasons_text(value) if column in ("reasons", "warnings") else str(value)
            cells.append(text if column in ("amount", "net", "tax", "gross") else safe_cell(text))
        writer.writerow(cells)
    return out.getvalue()


RENDERERS = {"json": render_json, "csv": render_csv, "html": render_html}
