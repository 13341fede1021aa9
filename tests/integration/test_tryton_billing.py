"""The tryton-billing source against a real trytond, and its period derivation on plain rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

import pytest

from adapters.tryton_billing import (
    TrytonBillingConfig,
    TrytonBillingSource,
    UnsupportedSubscription,
    invoice_dates,
)
from connector.errors import AuthenticationError
from connector.http import RetryPolicy
from connector.model import BillingPeriod
from connector.ports import AdapterContext, BillingBatch, PullContext
from tests.support.tryton import TrytonServer, running_tryton

FAST = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)


@pytest.fixture(scope="module")
def tryton() -> Iterator[TrytonServer]:
    with running_tryton() as server:
        yield server


def _source(server: TrytonServer, **extra: Any) -> TrytonBillingSource:
    config = TrytonBillingConfig(name="erp-billing", **server.config(**extra))
    return TrytonBillingSource(config, AdapterContext(), retry=FAST)


def _pull(source: TrytonBillingSource, cursor: dict[str, Any] | None = None) -> list[BillingBatch]:
    return list(source.pull(PullContext(cursor=cursor, started_at=datetime.now(UTC))))


def _periods(batches: list[BillingBatch]) -> dict[tuple[str, date], BillingPeriod]:
    return {(p.subscription_id, p.period_start): p for b in batches for p in b.records}


def _lines(period: BillingPeriod) -> list[tuple[str, Decimal, Decimal]]:
    return [(line.sku, line.quantity, line.unit_price.amount) for line in period.lines]


def _run_consumption(source: TrytonBillingSource, until: date) -> None:
    """Run Tryton's own consumption wizard over RPC, as its daily job would."""
    wizard = "wizard.sale.subscription.line.consumption.create"
    context = source.rpc.context
    session, _, _ = source.rpc.call(f"{wizard}.create", context, write=True)
    try:
        data = {"start": {"date": until, "companies": [context["company"]]}}
        source.rpc.call(f"{wizard}.execute", session, data, "create_", context, write=True)
    finally:
        source.rpc.call(f"{wizard}.delete", session, context, write=True)


# -- against a real trytond ------------------------------------------------------------------
@pytest.mark.service
def test_pull_yields_monthly_periods_of_a_running_subscription(tryton: TrytonServer) -> None:
    batches = _pull(_source(tryton))
    periods = _periods(batches)
    number = tryton.facts["subscriptions"]["a"]
    mine = sorted((k[1], p) for k, p in periods.items() if k[0] == number)

    assert [(start, p.period_end, p.invoice_date) for start, p in mine] == [
        (date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 1)),
        (date(2026, 2, 1), date(2026, 2, 28), date(2026, 2, 1)),
        (date(2026, 3, 1), date(2026, 3, 31), date(2026, 3, 1)),
        (date(2026, 4, 1), date(2026, 4, 30), date(2026, 4, 1)),
    ]
    january, february = mine[0][1], mine[1][1]
    assert _lines(january) == [("PLAN-PRO", Decimal(10), Decimal("100.00"))]
    assert _lines(february) == [
        ("PLAN-PRO", Decimal(10), Decimal("100.00")),
        ("ADDON-SSO", Decimal(10), Decimal("20.00")),
    ]
    assert (february.billing_source, february.customer_ref, february.customer_name) == (
        "erp-billing",
        "CUST-ACME",
        "Acme Corp",
    )
    assert (february.po_number, february.currency) == ("PO-1001", "USD")
    assert february.total.amount == Decimal("1200.00")
    assert not [r for b in batches for r in b.rejections]


@pytest.mark.service
def test_quarterly_invoicing_groups_consumptions_up_to_the_invoice_date(tryton: TrytonServer) -> None:
    periods = _periods(_pull(_source(tryton)))
    number = tryton.facts["subscriptions"]["b"]
    mine = sorted((k[1], p) for k, p in periods.items() if k[0] == number)

    assert [(start, p.period_end, p.invoice_date, _lines(p)) for start, p in mine] == [
        (
            date(2026, 1, 1),
            date(2026, 1, 31),
            date(2026, 1, 1),
            [("PLAN-ENT", Decimal(2), Decimal("500.00"))],
        ),
        (
            date(2026, 2, 1),
            date(2026, 4, 30),
            date(2026, 4, 1),
            [("PLAN-ENT", Decimal(6), Decimal("500.00"))],
        ),
    ]
    assert mine[1][1].po_number is None


@pytest.mark.service
def test_closed_subscription_is_read_and_draft_one_is_not(tryton: TrytonServer) -> None:
    periods = _periods(_pull(_source(tryton)))
    closed = tryton.facts["subscriptions"]["c"]
    assert tryton.facts["states"]["c"] == "closed"

    mine = sorted((k[1], p) for k, p in periods.items() if k[0] == closed)
    assert [(start, p.period_end, p.customer_ref, p.po_number) for start, p in mine] == [
        (date(2026, 1, 1), date(2026, 1, 31), "CUST-GLOBEX", "PO-2001"),
        (date(2026, 2, 1), date(2026, 2, 28), "CUST-GLOBEX", "PO-2001"),
    ]
    assert all(p.po_number != "PO-DRAFT" for p in periods.values())
    assert {k[0] for k in periods} == set(tryton.facts["subscriptions"].values())


@pytest.mark.service
def test_since_drops_periods_that_ended_before_it(tryton: TrytonServer) -> None:
    periods = _periods(_pull(_source(tryton, since=date(2026, 3, 1))))
    assert periods
    assert min(p.period_end for p in periods.values()) >= date(2026, 3, 1)
    assert (tryton.facts["subscriptions"]["a"], date(2026, 2, 1)) not in periods


@pytest.mark.service
def test_cursor_advances_and_a_later_pull_reads_only_what_tryton_changed() -> None:
    with running_tryton() as own:
        _check_cursor(own)


def _check_cursor(tryton: TrytonServer) -> None:
    source = _source(tryton, overlap_seconds=0)
    first = _pull(source)
    cursor = first[-1].cursor
    assert cursor is not None and "write_date" in cursor

    assert _periods(_pull(source, {"write_date": (datetime.now(UTC) + timedelta(days=1)).isoformat()})) == {}

    before_job = datetime.now(UTC)
    _run_consumption(source, date(2026, 5, 15))
    later = _pull(source, {"write_date": before_job.isoformat()})
    periods = _periods(later)
    acme = tryton.facts["subscriptions"]["a"]
    assert (acme, date(2026, 5, 1)) in periods
    assert _lines(periods[(acme, date(2026, 5, 1))]) == [
        ("PLAN-PRO", Decimal(10), Decimal("100.00")),
        ("ADDON-SSO", Decimal(10), Decimal("20.00")),
    ]
    assert tryton.facts["subscriptions"]["c"] not in {k[0] for k in periods}
    new_cursor = later[-1].cursor
    assert new_cursor is not None
    assert datetime.fromisoformat(new_cursor["write_date"]) > datetime.fromisoformat(cursor["write_date"])


@pytest.mark.service
def test_wrong_password_is_an_authentication_error(tryton: TrytonServer, tmp_path: Any) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    source = _source(tryton, password_file=wrong)
    with pytest.raises(AuthenticationError, match="refused the login"):
        _pull(source)


# -- derivation rules, no server needed ----------------------------------------------------
def test_monthly_rule_anchored_on_the_31st_skips_shorter_months() -> None:
    rules = [{"set_": 1, "freq": "monthly", "interval": 1}]
    assert list(islice(invoice_dates(rules, date(2026, 1, 31)), 4)) == [
        date(2026, 1, 31),
        date(2026, 3, 31),
        date(2026, 5, 31),
        date(2026, 7, 31),
    ]


def test_yearly_and_weekly_rules_merge_without_duplicates() -> None:
    rules = [
        {"set_": 1, "freq": "yearly", "interval": 1},
        {"set_": 1, "freq": "weekly", "interval": 26},
    ]
    assert list(islice(invoice_dates(rules, date(2026, 1, 1)), 4)) == [
        date(2026, 1, 1),
        date(2026, 7, 2),
        date(2026, 12, 31),
        date(2027, 1, 1),
    ]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"freq": "monthly", "interval": 1, "bymonthday": "15"}, "bymonthday"),
        ({"freq": "monthly", "interval": 1, "exclusive": True}, "exclusion rule"),
        ({"freq": "hourly", "interval": 1}, "unknown frequency"),
    ],
)
def test_rules_this_source_does_not_evaluate_are_refused(rule: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedSubscription, match=reason):
        next(invoice_dates([{"set_": 1, **rule}], date(2026, 1, 1)))
