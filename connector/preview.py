"""`--dry-run`: pull, reconcile and plan in one transaction that is rolled back, and say what
would be invoiced and what would be held, without committing anything or writing to any sink.

Every `begin()` of the run becomes a savepoint on one connection whose outer transaction is
rolled back at the end, so the job's own code runs unchanged. Sources are read as usual, but
what they do after a commit (moving a processed mail or spool file) is skipped. On SQLite the
dry run holds the state's write lock while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine

from connector.mail_views import request_line, request_view
from connector.model import MatchStatus
from connector.runtime import Connector
from state import messages, outbox, outbox_queries, results

HELD = (MatchStatus.MISMATCH.value, MatchStatus.MISSING_PO.value, MatchStatus.AMBIGUOUS.value)


class PinnedEngine:
    """Stands in for the state Engine during a dry run: one connection, each `begin()` a savepoint."""

    def __init__(self, engine: Engine, connection: Connection) -> None:
        self._engine = engine
        self._connection = connection

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._connection.begin_nested():
            yield self._connection

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        yield self._connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


@contextmanager
def rolled_back(app: Connector) -> Iterator[None]:
    """Run the body against the state as usual; afterwards, nothing it wrote remains."""
    engine = app.engine
    with engine.connect() as connection:
        outer = connection.begin()
        # The job code only calls begin()/connect(); a PinnedEngine answers both.
        app.engine = cast(Engine, PinnedEngine(engine, connection))
        app.dry_run = True
        try:
            yield
        finally:
            outer.rollback()
            app.engine = engine
            app.dry_run = False


def preview(app: Connector) -> dict[str, Any]:
    """What the (rolled-back) run planned to send, per sink, and the periods it would hold."""
    with app.connect() as conn:
        rows = [
            row
            for row in outbox_queries.list_rows(conn, app.tenant)
            if row["state"] in (outbox.PLANNED, outbox.RETRY)
        ]
        stored = results.load_results(conn, app.tenant)
    periods = {row["billing_key"]: row for row in stored if row["billing_key"]}
    invoices = []
    for row in rows:
        period = periods.get(row["billing_key"], {})
        net, tax = row["amount"], row["tax_amount"]
        invoices.append(
            {
                "sink": row["sink"],
                "invoice_number": row["invoice_number"],
                "customer_ref": row["customer_ref"],
                "po_number": row["po_number"],
                "period_start": _day(period.get("period_start")),
                "period_end": _day(period.get("period_end")),
                "net": str(net),
                "tax": None if tax is None else str(tax),
                "gross": str(row["gross_amount"] if row["gross_amount"] is not None else net),
                "currency": row["currency"],
            }
        )
    held = [
        {
            "status": row["status"],
            "customer_ref": row["customer_ref"],
            "po_number": row["po_number"],
            "period_start": _day(row["period_start"]),
            "period_end": _day(row["period_end"]),
            "amount": None if row["amount"] is None else str(row["amount"]),
            "currency": row["currency"],
            "reasons": [f"{reason['code']}: {reason['detail']}" for reason in row["reasons"]],
        }
        for row in stored
        if row["status"] in HELD
    ]
    data: dict[str, Any] = {"dry_run": True, "would_invoice": invoices, "would_hold": held}
    if app.settings.mail is not None:
        with app.connect() as conn:
            planned = messages.list_messages(conn, app.tenant, (messages.PLANNED, messages.UNADDRESSED))
        shown = [request_view(row) for row in planned]
        data["would_request"] = [r for r in shown if r["state"] == messages.PLANNED]
        data["would_not_mail"] = [r for r in shown if r["state"] == messages.UNADDRESSED]
    return data


def _day(value: Any) -> str | None:
    return None if value is None else str(value)


def human_preview(data: dict[str, Any]) -> str:
    """The preview as a person reads it: invoices per sink with net, tax and gross; holds with why."""
    lines = [f"dry run (exit {data['exit_code']}): nothing was committed and nothing was sent"]
    by_sink: dict[str, list[dict[str, Any]]] = {}
    for invoice in data["would_invoice"]:
        by_sink.setdefault(invoice["sink"], []).append(invoice)
    if not by_sink:
        lines.append("would invoice: nothing")
    for sink, invoices in by_sink.items():
        lines.append(f"would invoice to {sink}: {len(invoices)}")
        for i in invoices:
            tax = i["tax"] if i["tax"] is not None else "-"
            po = f"PO {i['po_number']}" if i["po_number"] else "no PO"
            lines.append(
                f"  {i['invoice_number']}  {i['customer_ref']}  {po}  "
                f"{i['period_start']}..{i['period_end']}  net {i['net']}  tax {tax}  "
                f"gross {i['gross']} {i['currency']}"
            )
    lines.append(f"would hold: {len(data['would_hold'])}")
    for h in data["would_hold"]:
        po = f"PO {h['po_number']}" if h["po_number"] else "no PO"
        lines.append(
            f"  {h['status']:<10} {h['customer_ref']}  {po}  {h['period_start']}..{h['period_end']}  "
            f"{h['amount']} {h['currency']}: {'; '.join(h['reasons'])}"
        )
    if "would_request" in data:
        lines.append(f"would request a PO by e-mail: {len(data['would_request'])}")
        lines.extend(f"  {request_line(r)}  to {r['recipient']}" for r in data["would_request"])
        if data["would_not_mail"]:
            lines.append(
                f"would not mail (no AP e-mail in the customer master): {len(data['would_not_mail'])}"
            )
            lines.extend(f"  {request_line(r)}" for r in data["would_not_mail"])
    lines.extend(f"  ! {error}" for error in data.get("errors", []))
    return "\n".join(lines)
