"""The reconciliation report: totals that add up, safe CSV, a self-contained page."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.model import MatchStatus
from connector.report import action_needed, assemble_report, render_csv, render_html, safe_cell
from connector.report_html import balance_bar, bar_numbers

amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999.99"), places=2, allow_nan=False)


@st.composite
def result_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for index in range(draw(st.integers(0, 25))):
        has_amount = draw(st.booleans())
        rows.append(
            {
                "subject_key": f"s{index}",
                "status": draw(st.sampled_from([s.value for s in MatchStatus])),
                "billing_key": f"b{index}",
                "po_key": None,
                "po_number": f"PO-{index}",
                "customer_ref": "C",
                "amount": draw(amounts) if has_amount else None,
                "currency": draw(st.sampled_from(["USD", "EUR", "JPY"])) if has_amount else None,
                "period_start": date(2026, 11, 1),
                "period_end": date(2026, 11, 30),
                "reasons": [],
                "warnings": [],
            }
        )
    return rows


@given(result_rows())
def test_report_totals_equal_the_sum_of_their_rows(stored: list[dict[str, Any]]) -> None:
    report = assemble_report("t", stored, [])
    assert sum(data["count"] for data in report["summary"].values()) == len(report["rows"]) == len(stored)
    expected: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in report["rows"]:
        if row["amount"]:
            expected[row["status"]][row["currency"]] += Decimal(row["amount"])
    for status, data in report["summary"].items():
        assert {c: Decimal(a) for c, a in data["amounts"].items()} == dict(expected[status])


def test_csv_cells_cannot_start_a_formula() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for prefix in ("+", "-", "@", "\t"):
        assert safe_cell(prefix + "1").startswith("'")
    row = {
        "subject_key": "s",
        "status": "mismatch",
        "billing_key": "b",
        "po_key": None,
        "po_number": "=cmd|' /C calc'!A0",
        "customer_ref": "@SUM(A1)",
        "amount": Decimal("-5.00"),
        "currency": "USD",
        "period_start": None,
        "period_end": None,
        "reasons": [{"code": "price_differs", "detail": "-5 off"}],
        "warnings": [],
    }
    parsed = list(csv.DictReader(io.StringIO(render_csv(assemble_report("t", [row], [])))))
    assert parsed[0]["po_number"].startswith("'=") and parsed[0]["customer_ref"].startswith("'@")
    assert parsed[0]["amount"] == "-5.00"  # numbers stay numbers


def test_html_escapes_what_it_shows() -> None:
    row = {
        "subject_key": "s",
        "status": "mismatch",
        "billing_key": "b",
        "po_key": None,
        "po_number": "<script>alert(1)</script>",
        "customer_ref": "C",
        "amount": None,
        "currency": None,
        "period_start": None,
        "period_end": None,
        "reasons": [],
        "warnings": [],
    }
    page = render_html(assemble_report("t", [row], []))
    assert "<script>" not in page and "&lt;script&gt;" in page


def _row(status: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "status": status,
        "customer_ref": "CUST-A",
        "customer_name": "Acme",
        "po_number": "PO-1",
        "period_start": "2026-11-01",
        "period_end": "2026-11-30",
        "amount": "100.00",
        "net": "",
        "tax": "",
        "gross": "",
        "currency": "USD",
        "invoice_number": "",
        "invoice_state": "",
        "reasons": [],
        "warnings": [],
        "subject": "s",
    }
    row.update(overrides)
    return row


def test_action_needed_lists_what_a_person_must_do() -> None:
    renewal = {"code": "renewal_due", "detail": "PO-1 term ends 2026-12-31"}
    report: dict[str, Any] = {
        "customers": {"CUST-A": "Acme", "CUST-B": "Bravo"},
        "rows": [
            _row("matched", period_start="2026-10-01", amount="90.00", warnings=[renewal]),
            _row("matched", period_start="2026-11-01", amount="110.00", warnings=[renewal]),
            _row("missing_po", customer_ref="CUST-B", po_number="", amount="40.00"),
            _row("mismatch", po_number="PO-2", reasons=[{"code": "price_differs", "detail": "1 off"}]),
        ],
        "dead": [
            {
                "invoice_number": "INV-1",
                "po_number": "PO-1",
                "customer_ref": "CUST-A",
                "sink": "s",
                "error": "boom",
            }
        ],
        "flagged": [
            {
                "invoice_number": "INV-2",
                "po_number": "PO-1",
                "customer_ref": "CUST-A",
                "planned_total": "5 USD",
                "text": "x",
            }
        ],
        "quarantine": [
            {"file": "f.csv", "row": "row 4", "field": "Quantity", "value": "ten", "reason": "nan"}
        ],
    }
    entries = action_needed(report)
    kinds = [e["kind"] for e in entries]
    assert kinds == ["missing_po", "renewal_due", "mismatch", "dead", "flagged", "quarantined"]
    missing, renewal_entry, mismatch, dead, _, quarantined = entries
    assert (
        missing["customer"] == "Bravo"
        and missing["amount"] == "40.00 USD"
        and "2026-11-01" in missing["what"]
    )
    assert renewal_entry["amount"] == "110.00 USD"  # the last matched period on that PO
    assert renewal_entry["what"] == "PO-1 term ends 2026-12-31"  # said once for the PO
    assert "price_differs: 1 off" in mismatch["what"]
    assert "boom" in dead["what"] and "INV-1" in dead["what"]
    assert (
        "Quantity" in quarantined["what"] and "ten" in quarantined["what"] and "f.csv" in quarantined["what"]
    )


def test_balance_bar_numbers_come_from_decimals() -> None:
    assert bar_numbers("24000.00", "4000.00") == {"percent": "16.7", "width": "40.1"}
    assert bar_numbers("100.00", "150.00") == {"percent": "150.0", "width": "240.0"}  # bar capped
    assert bar_numbers("0", "0") == {"percent": "0.0", "width": "0.0"}
    svg = balance_bar({"total": "10.00", "consumed": "5.00"})
    assert 'width="120.0"' in svg and "50.0%" in svg


def test_html_escapes_names_quarantine_and_actions() -> None:
    evil = "<img src=x onerror=alert(1)>"
    row = {
        "subject_key": "s",
        "status": "missing_po",
        "billing_key": "b",
        "po_key": None,
        "po_number": None,
        "customer_ref": "C",
        "amount": Decimal("1.00"),
        "currency": "USD",
        "period_start": date(2026, 11, 1),
        "period_end": date(2026, 11, 30),
        "reasons": [],
        "warnings": [],
    }
    extra = {
        "customers": {"C": evil},
        "balances": [
            {
                "po_number": evil,
                "customer_ref": "C",
                "currency": "USD",
                "total": "1.00",
                "consumed": "0.00",
                "remaining": "1.00",
                "term_start": "",
                "term_end": "",
            }
        ],
        "quarantine": [{"source": "s", "file": evil, "row": "1", "field": "f", "value": evil, "reason": "r"}],
    }
    page = render_html(assemble_report("t", [row], [], extra))
    assert "<img" not in page and "&lt;img" in page
    assert page.index('id="action"') < page.index('id="totals"') < page.index('id="rows"')
