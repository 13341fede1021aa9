"""Once an invoice for a period is sent, later changes never produce a second invoice for it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector import jobs
from connector.model import BillingLine, BillingPeriod, Money, POLine, POStatus, PurchaseOrder
from connector.runtime import Connector
from connector.tax import LineTax, TaxCategory, TaxScheme
from state import outbox_queries
from tests.support.own_data import connector_without_data
from tests.support.own_data import store as store_at

NOW = datetime(2026, 11, 29, tzinfo=UTC)
NY_SALES_TAX = LineTax(
    scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.875"), jurisdiction="US-NY"
)


@pytest.fixture
def app(tmp_path: Path) -> Connector:
    return connector_without_data(tmp_path)


def po(number: str, quantity: str = "30", status: POStatus = POStatus.OPEN) -> PurchaseOrder:
    return PurchaseOrder(
        source="inbox",
        external_id=number,
        po_number=number,
        buyer_id="acme.example",
        currency="USD",
        status=status,
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
        lines=(
            POLine(
                line_no=1, sku="PLAN-PRO", quantity=Decimal(quantity), unit_price=Money.of("40.00", "USD")
            ),
        ),
    )


def period(month: int, seats: str = "20") -> BillingPeriod:
    return BillingPeriod(
        billing_source="billing",
        subscription_id="SUB-1",
        period_start=date(2026, month, 1),
        period_end=date(2026, month, 28),
        customer_ref="CUST-ACME",
        currency="USD",
        lines=(
            BillingLine(
                sku="PLAN-PRO", quantity=Decimal(seats), unit_price=Money.of("40.00", "USD"), tax=NY_SALES_TAX
            ),
        ),
    )


def store(app: Connector, *items: PurchaseOrder | BillingPeriod) -> None:
    store_at(app, NOW, *items)


def invoice_files(app: Connector) -> list[Path]:
    return sorted((app.loaded.base_dir / "out" / "invoices").glob("*.xml"))


def test_a_period_already_invoiced_is_not_invoiced_again_against_a_new_po(app: Connector) -> None:
    store(app, po("PO-A"), period(2))
    assert jobs.sync(app)["invoices_pushed"] == 1
    store(app, po("PO-A", status=POStatus.CLOSED), po("PO-B"))
    again = jobs.sync(app)
    assert again["invoices_pushed"] == 0 and again["invoices_planned"] == 0
    assert len(invoice_files(app)) == 1


def test_a_late_earlier_period_cannot_overdraw_the_po(app: Connector) -> None:
    store(app, po("PO-A", quantity="30"), period(2, seats="20"))  # 800 of 1200
    assert jobs.sync(app)["invoices_pushed"] == 1
    store(app, period(1, seats="20"))  # January arrives late: another 800
    again = jobs.sync(app)
    assert again["invoices_pushed"] == 0 and again["mismatch"] == 1
    with app.connect() as conn:
        total = sum(row.amount for row in outbox_queries.consumption(conn, app.tenant))
    assert total == Decimal("800.00")


def test_a_plan_never_sent_is_withdrawn_when_its_match_is_gone(app: Connector) -> None:
    store(app, po("PO-A"), period(2))
    assert jobs.reconcile(app)["invoices_planned"] == 1
    store(app, po("PO-A", status=POStatus.CANCELLED))
    assert jobs.reconcile(app)["invoices_withdrawn"] == 1
    assert jobs.push(app)["invoices_pushed"] == 0
    assert invoice_files(app) == []
    store(app, po("PO-A"))  # reopened: planned again under the same key
    assert jobs.sync(app)["invoices_pushed"] == 1


def test_a_po_revised_after_its_invoice_was_sent_flags_the_invoice(app: Connector) -> None:
    store(app, po("PO-A"), period(2))
    jobs.sync(app)
    store(app, po("PO-A", quantity="60"))
    again = jobs.sync(app)
    assert again["amended_after_push"] == 1 and again["invoices_pushed"] == 0
    with app.connect() as conn:
        [flagged] = outbox_queries.list_rows(conn, app.tenant, flagged=True)
    assert "revision 2" in flagged["amended_detail"]
    # what changed, in the supplier's terms
    assert "line 1 modified (quantity 30 -> 60)" in flagged["amended_detail"]


def test_an_acknowledged_flag_is_raised_again_when_the_po_changes_again(app: Connector) -> None:
    store(app, po("PO-A"), period(2))
    jobs.sync(app)
    store(app, po("PO-A", quantity="60"))
    jobs.sync(app)
    with app.engine.begin() as conn:
        [flagged] = outbox_queries.list_rows(conn, app.tenant, flagged=True)
        assert outbox_queries.acknowledge_flags(
            conn, app.tenant, [flagged["invoice_number"]], "credit note sent", NOW
        )
        assert outbox_queries.list_rows(conn, app.tenant, flagged=True, acknowledged=False) == []
    assert jobs.sync(app).get("amended_after_push", 0) == 0  # the same change again: still handled
    store(app, po("PO-A", quantity="90"))
    assert jobs.sync(app)["amended_after_push"] == 1
    with app.connect() as conn:
        [open_flag] = outbox_queries.list_rows(conn, app.tenant, flagged=True, acknowledged=False)
    assert "quantity 30 -> 90" in open_flag["amended_detail"] and open_flag["flag_ack_note"] is None


def test_renewal_warnings_stay_after_the_period_was_invoiced(app: Connector) -> None:
    from state import results

    store(app, po("PO-A", quantity="20"), period(2, seats="18"))  # 90% of the PO
    jobs.sync(app)
    jobs.sync(app)  # the period is now final and not matched again
    with app.connect() as conn:
        [row] = [r for r in results.load_results(conn, app.tenant) if r["status"] == "matched"]
    assert any("90.0% consumed" in w["detail"] for w in row["warnings"])
