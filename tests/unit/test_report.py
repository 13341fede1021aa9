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
from connector.report import assemble_report, render_csv, render_html, safe_cell

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
