"""The report as one self-contained HTML page for a finance lead: inline CSS and SVG, no scripts.

Sections, in order: Action needed, Invoiced totals (per currency), PO balances, Renewal
requests (the POs asked for by e-mail, and when), PO policy per customer, Statuses, and every
billing period and PO. Everything shown is HTML-escaped; dates, PO numbers and amounts never
wrap mid-value.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

STATUS_WORDS = {
    "matched": ("Matched", "invoiced against its PO"),
    "mismatch": ("Mismatch", "a PO fits the customer but not the bill: see why"),
    "missing_po": ("Missing PO", "no PO covers the period: ask the customer"),
    "ambiguous": ("Ambiguous", "several POs fit: name one on the billing record"),
    "unused_po": ("Unused PO", "no billing period drew on this PO"),
}
ACTION_WORDS = {
    "missing_po": "No PO",
    "renewal_due": "PO running out",
    "mismatch": "Mismatch",
    "ambiguous": "Ambiguous",
    "dead": "Invoice refused",
    "flagged": "Invoice flagged",
    "quarantined": "Input quarantined",
    "mail_uncertain": "PO request uncertain",
    "mail_dead": "PO request refused",
    "mail_unaddressed": "PO request not mailed",
}
REQUEST_WORDS = {
    "term_end": "PO term ends",
    "consumed": "PO balance used",
    "missing_po": "no PO for the period",
}
_BAR_WIDTH = 240

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1f2933}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}
th,td{border-bottom:1px solid #d9e2ec;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.nw,td.num{white-space:nowrap}td.wrap{overflow-wrap:anywhere}
.matched{color:#1b7f3b}.mismatch{color:#b42318}.missing_po{color:#b54708}.unused_po{color:#52606d}
.ambiguous{color:#6941c6}.code{font-family:ui-monospace,monospace;font-size:.85em}
.muted{color:#52606d}.none{color:#1b7f3b}
@media print{body{margin:0;font-size:10pt}h2{break-after:avoid}tr{break-inside:avoid}
th{background:none;border-bottom:2px solid #000}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _nw(value: Any) -> str:
    return f'<span class="nw">{_e(value)}</span>' if value else ""


def bar_numbers(total: str, consumed: str) -> dict[str, str]:
    """The consumed share of a PO in percent (one decimal, 0–100 for the bar) and the bar width."""
    whole, used = Decimal(total), Decimal(consumed)
    share = (used * 100 / whole).quantize(Decimal("0.1")) if whole > 0 else Decimal("0.0")
    shown = min(max(share, Decimal(0)), Decimal(100))
    width = (shown * _BAR_WIDTH / 100).quantize(Decimal("0.1"))
    return {"percent": str(share), "width": str(width)}


def balance_bar(balance: dict[str, str]) -> str:
    """An inline SVG bar: consumed share of the PO total, with its text alternative."""
    numbers = bar_numbers(balance["total"], balance["consumed"])
    colour = "#b42318" if Decimal(numbers["percent"]) >= 80 else "#2f6fb3"
    label = f"{numbers['percent']}% consumed"
    return (
        f'<svg width="{_BAR_WIDTH}" height="14" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>'
        f'<rect width="{_BAR_WIDTH}" height="14" fill="#e4e7eb"/>'
        f'<rect width="{numbers["width"]}" height="14" fill="{colour}"/></svg> '
        f'<span class="nw">{_e(numbers["percent"])}%</span>'
    )


def _table(section: str, headers: list[tuple[str, bool]], body: list[str]) -> str:
    head = "".join(f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>" for h, num in headers)
    rows = "".join(body)
    return f'<table data-section="{section}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _actions(report: dict[str, Any]) -> str:
    entries = report.get("action_needed", [])
    if not entries:
        return '<p class="none">Nothing needs doing.</p>'
    body = [
        f"<tr><td>{_nw(ACTION_WORDS.get(a['kind'], a['kind']))}</td><td>{_e(a['customer'])}</td>"
        f'<td>{_nw(a["po_number"])}</td><td class="wrap">{_e(a["what"])}</td>'
        f'<td class="num">{_e(a["amount"])}</td></tr>'
        for a in entries
    ]
    return _table(
        "action",
        [("What", False), ("Customer", False), ("PO", False), ("Detail", False), ("Amount", True)],
        body,
    )


def _totals(report: dict[str, Any]) -> str:
    body = [
        f'<tr data-currency="{_e(currency)}"><td>{_e(currency)}</td>'
        + "".join(f'<td class="num" data-part="{p}">{_e(amounts[p])}</td>' for p in ("net", "tax", "gross"))
        + "</tr>"
        for currency, amounts in report["invoiced"].items()
    ]
    if not body:
        return '<p class="muted">Nothing invoiced.</p>'
    return _table("totals", [("Currency", False), ("Net", True), ("Tax", True), ("Gross", True)], body)


def _balances(report: dict[str, Any]) -> str:
    names = report.get("customers", {})
    body = []
    for b in report.get("balances", []):
        term = f"{b['term_start']} – {b['term_end']}" if b["term_start"] or b["term_end"] else ""
        body.append(
            f"<tr><td>{_nw(b['po_number'])}</td>"
            f"<td>{_e(names.get(b['customer_ref'], b['customer_ref']))}</td>"
            f'<td>{_nw(term)}</td><td class="num">{_e(b["total"])} {_e(b["currency"])}</td>'
            f'<td class="num">{_e(b["consumed"])}</td><td class="num">{_e(b["remaining"])}</td>'
            f'<td class="nw">{balance_bar(b)}</td></tr>'
        )
    if not body:
        return '<p class="muted">No POs.</p>'
    headers = [("PO", False), ("Customer", False), ("Term", False), ("Total", True)]
    return _table("balances", [*headers, ("Consumed", True), ("Remaining", True), ("Used", False)], body)


def _requests(report: dict[str, Any]) -> str:
    names = report.get("customers", {})
    body = []
    for r in report.get("renewal_requests", []):
        asked = f"sent {r['sent_at'][:10]}" if r["sent_at"] else r["state"]
        cycle = f"{r['period_start']} – {r['period_end']}"
        body.append(
            f'<tr data-state="{_e(r["state"])}"><td>{_nw(asked)}</td>'
            f"<td>{_e(names.get(r['customer_ref'], r['customer_name']))}</td><td>{_nw(r['po_number'])}</td>"
            f"<td>{_e(REQUEST_WORDS.get(r['reason'], r['reason']))}</td><td>{_nw(cycle)}</td>"
            f'<td class="num">{_e(r["amount"])} {_e(r["currency"])}</td>'
            f'<td class="wrap">{_e(r["recipient"] or "—")}</td><td>{_nw(r["request_id"])}</td></tr>'
        )
    if not body:
        return '<p class="muted">No PO requested by e-mail.</p>'
    headers = [("Asked", False), ("Customer", False), ("PO", False), ("Why", False), ("Next cycle", False)]
    return _table("requests", [*headers, ("Amount", True), ("To", False), ("Request", False)], body)


_SCOPE_WORDS = {
    "per_cycle": "a PO without an end date covers one billing cycle",
    "blanket": "a PO without an end date covers every cycle until its balance runs out",
}


def _policies(report: dict[str, Any]) -> str:
    names: dict[str, str] = report.get("customers", {})
    body = []
    for policy in report.get("po_policy", []):
        required = "PO required" if policy["po_required"] else "no PO needed: invoiced without one"
        pattern = policy["po_pattern"] or "any"
        body.append(
            f"<tr><td>{_e(names.get(policy['customer_ref'], policy['customer_ref']))}</td>"
            f"<td>{_e(required)}</td><td>{_e(_SCOPE_WORDS.get(policy['po_scope'], policy['po_scope']))}</td>"
            f'<td><span class="code">{_e(pattern)}</span></td></tr>'
        )
    return _table(
        "policy", [("Customer", False), ("PO", False), ("Scope", False), ("PO number pattern", False)], body
    )


def _statuses(report: dict[str, Any]) -> str:
    body = []
    for status, data in report["summary"].items():
        word, why = STATUS_WORDS.get(status, (status, ""))
        amounts = "<br>".join(_nw(f"{a} {c}") for c, a in data["amounts"].items()) or "—"
        body.append(
            f'<tr><td class="{_e(status)} nw">{_e(word)}</td><td>{_e(why)}</td>'
            f'<td class="num">{data["count"]}</td><td class="num">{amounts}</td></tr>'
        )
    return _table(
        "statuses", [("Status", False), ("Meaning", False), ("Count", True), ("Amount", True)], body
    )


def _chain_word(doc: dict[str, str]) -> str:
    """One document of a credited period: "INV-… credited by CN-…", "CN-… credits INV-…"."""
    if doc["document_type"] == "credit_note":
        return f"{doc['number']} credits {doc['credits']} ({doc['state']}, {doc['gross']} {doc['currency']})"
    if doc["credited_by"]:
        return f"{doc['number']} credited by {doc['credited_by']}"
    return f"{doc['number']} ({doc['state']})"


def _rows(report: dict[str, Any]) -> str:
    body = []
    for row in report["rows"]:
        word = STATUS_WORDS.get(row["status"], (row["status"], ""))[0]
        period = f"{row['period_start']} – {row['period_end']}" if row["period_start"] else ""
        notes = "".join(
            f'<div><span class="code">{_e(item["code"])}</span>: {_e(item["detail"])}</div>'
            for item in [*row["reasons"], *row["warnings"]]
        )
        invoice = f"{row['invoice_number']} ({row['invoice_state']})" if row["invoice_number"] else ""
        chain = "".join(
            f'<div class="chain">{_e(_chain_word(doc))}</div>' for doc in row.get("documents", [])
        )
        amount = f"{row['amount']} {row['currency']}" if row["amount"] else ""
        body.append(
            f'<tr data-status="{_e(row["status"])}" data-currency="{_e(row["currency"])}">'
            f'<td class="{_e(row["status"])} nw">{_e(word)}</td>'
            f"<td>{_e(row.get('customer_name') or row['customer_ref'])}</td>"
            f"<td>{_nw(row['po_number'])}</td><td>{_nw(period)}</td>"
            f'<td class="num">{_e(amount)}</td><td class="num" data-part="net">{_e(row["net"])}</td>'
            f'<td class="num" data-part="tax">{_e(row["tax"])}</td>'
            f'<td class="num" data-part="gross">{_e(row["gross"])}</td>'
            f'<td>{_nw(invoice)}{chain}</td><td class="wrap">{notes}</td></tr>'
        )
    headers = [("Status", False), ("Customer", False), ("PO", False), ("Period", False), ("Amount", True)]
    headers += [
        ("Net", True),
        ("Tax", True),
        ("Gross", True),
        ("Invoice", False),
        ("Reasons and warnings", False),
    ]
    return _table("rows", headers, body)


def render_html(report: dict[str, Any]) -> str:
    """The whole page: sections in the order a finance lead reads them, Action needed first."""
    tenant = _e(report["tenant"])
    sections = [
        ("action", "Action needed", _actions(report)),
        ("totals", "Invoiced totals per currency", _totals(report)),
        ("balances", "PO balances", _balances(report)),
        ("requests", "Renewal requests", _requests(report)),
        ("policy", "PO policy per customer", _policies(report)),
        ("statuses", "Statuses", _statuses(report)),
        ("rows", "Billing periods and POs", _rows(report)),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>PO reconciliation — {tenant}</title><style>{_STYLE}</style></head><body>",
        f"<h1>PO reconciliation — {tenant}</h1>",
        f'<p class="muted">Generated {_e(report["generated_at"])}</p>',
    ]
    for key, title, content in sections:
        parts.append(f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
