"""The reconciliation report: counts and amounts per status, one row per billing period or PO.

Formats: JSON (for machines), CSV (cells safe from spreadsheet formula injection) and one
self-contained HTML page (inline CSS, no scripts, no network assets) for a finance reader.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connector.model import MatchStatus
from connector.runtime import Connector
from state import outbox_queries, results

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
    return assemble_report(app.tenant, stored, invoices)


def assemble_report(
    tenant: str, stored: list[dict[str, Any]], invoices: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report from stored results and outbox rows (pure: no I/O)."""
    by_billing: dict[str, dict[str, Any]] = {}
    for row in invoices:
        by_billing.setdefault(row["billing_key"], row)
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
            "po_number": result["po_number"] or "",
            "period_start": result["period_start"].isoformat() if result["period_start"] else "",
            "period_end": result["period_end"].isoformat() if result["period_end"] else "",
            "amount": str(result["amount"]) if result["amount"] is not None else "",
            **_invoice_amounts(invoice),
            "currency": result["currency"] or "",
            "invoice_number": invoice["invoice_number"] if invoice else "",
            "invoice_state": invoice["state"] if invoice else "",
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
        if row["gross"]:
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
    return {
        "tenant": tenant,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "invoiced": invoiced_totals,
        "rows": rows,
    }


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


_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1f2933}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin-bottom:2rem;font-size:.9rem}
th,td{border-bottom:1px solid #d9e2ec;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.matched{color:#1b7f3b}.mismatch{color:#b42318}.missing_po{color:#b54708}.unused_po{color:#52606d}
.ambiguous{color:#6941c6}.code{font-family:ui-monospace,monospace;font-size:.85em}
"""


def render_html(report: dict[str, Any]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>PO reconciliation — {esc(report['tenant'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>PO reconciliation — {esc(report['tenant'])}</h1>",
        f"<p>Generated {esc(report['generated_at'])}</p>",
        "<h2>Summary</h2><table><thead><tr><th>Status</th><th>Count</th><th>Amount</th></tr></thead><tbody>",
    ]
    for status, data in report["summary"].items():
        amounts = ", ".join(f"{a} {c}" for c, a in data["amounts"].items()) or "—"
        parts.append(
            f'<tr><td class="{esc(status)}">{esc(status)}</td><td class="num">{data["count"]}</td>'
            f'<td class="num">{esc(amounts)}</td></tr>'
        )
    parts.append("</tbody></table><h2>Invoiced</h2><table><thead><tr><th>Currency</th><th>Net</th>")
    parts.append("<th>Tax</th><th>Gross</th></tr></thead><tbody>")
    for currency, amounts in report["invoiced"].items():
        parts.append(
            f"<tr><td>{esc(currency)}</td>"
            + "".join(f'<td class="num">{esc(amounts[part])}</td>' for part in ("net", "tax", "gross"))
            + "</tr>"
        )
    parts.append("</tbody></table><h2>Billing periods and POs</h2><table><thead><tr>")
    headers = ("Status", "Customer", "PO", "Period", "Net", "Tax", "Gross", "Invoice", "Reasons and warnings")
    parts.extend(f"<th>{h}</th>" for h in headers)
    parts.append("</tr></thead><tbody>")
    for row in report["rows"]:
        period = f"{row['period_start']} – {row['period_end']}" if row["period_start"] else ""
        notes = "".join(
            f'<div><span class="code">{esc(item["code"])}</span>: {esc(str(item["detail"]))}</div>'
            for item in [*row["reasons"], *row["warnings"]]
        )
        invoice = f"{row['invoice_number']} ({row['invoice_state']})" if row["invoice_number"] else ""
        parts.append(
            f'<tr><td class="{esc(row["status"])}">{esc(row["status"])}</td>'
            f"<td>{esc(row['customer_ref'])}</td>"
            f"<td>{esc(row['po_number'])}</td><td>{esc(period)}</td>"
            f'<td class="num">{esc(row["amount"])} {esc(row["currency"])}</td>'
            f'<td class="num">{esc(row["tax"])}</td><td class="num">{esc(row["gross"])}</td>'
            f"<td>{esc(invoice)}</td>"
            f"<td>{notes}</td></tr>"
        )
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts) + "\n"


RENDERERS = {"json": render_json, "csv": render_csv, "html": render_html}
