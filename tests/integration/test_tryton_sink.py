"""The tryton invoice sink against a real trytond: posted invoices, lookups, exactly once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.tryton_sink import TrytonSink, TrytonSinkConfig
from connector.errors import AuthenticationError, RejectedError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money
from connector.ports import AdapterContext
from tests.support.factories import make_plan
from tests.support.tryton import TrytonServer, running_tryton

pytestmark = pytest.mark.service

FAST = RetryPolicy(max_attempts=2, sleep=lambda seconds: None)
_numbers = itertools.count(101)


@pytest.fixture(scope="module")
def tryton() -> Iterator[TrytonServer]:
    with running_tryton() as server:
        yield server


@pytest.fixture(scope="module")
def sink(tryton: TrytonServer) -> TrytonSink:
    return _sink(tryton)


def _sink(server: TrytonServer, **extra: Any) -> TrytonSink:
    config = TrytonSinkConfig(name="erp", **server.config(**extra))
    return TrytonSink(config, AdapterContext(), retry=FAST)


def _plan(**changes: Any) -> InvoicePlan:
    """A plan of its own PO number (the module shares one database), issued today."""
    plan = make_plan(next(_numbers), sink="erp")
    return plan.model_copy(update={"issue_date": date.today(), **changes})


def _invoices(sink: TrytonSink, po_number: str) -> list[dict[str, Any]]:
    return sink.rpc.search_read(
        "account.invoice",
        [("reference", "=", po_number)],
        ["state", "number", "description", "total_amount", "party.code", "payment_term.name", "invoice_date"],
    )


def _deliver(sink: TrytonSink, plan: InvoicePlan) -> str:
    """What the core does for one outbox row: look up first, push only when absent."""
    found = sink.find([plan])
    if plan.idempotency_key in found:
        return found[plan.idempotency_key].remote_id
    return sink.push(plan).remote_id


def test_push_creates_a_posted_invoice_with_the_po_as_reference(sink: TrytonSink) -> None:
    plan = _plan()
    ref = sink.push(plan)

    assert ref.already_existed is False
    assert ref.invoice_number == plan.invoice_number
    assert ref.total == Money.of("200.00", "USD") == plan.total
    (invoice,) = _invoices(sink, plan.po_number)
    assert str(invoice["id"]) == ref.remote_id
    assert invoice["state"] == "posted"
    assert invoice["number"]
    assert invoice["description"].split()[0] == plan.invoice_number
    assert invoice["party."]["code"] == "CUST-ACME"
    assert invoice["payment_term."]["name"] == "Net 30 days"
    assert invoice["invoice_date"] == plan.issue_date
    (line,) = sink.rpc.search_read(
        "account.invoice.line",
        [("invoice", "=", invoice["id"])],
        ["product.code", "quantity", "unit_price", "description"],
    )
    assert (line["product."]["code"], line["quantity"], line["unit_price"]) == (
        "PLAN-PRO",
        2,
        Decimal("100.00"),
    )


def test_find_reports_the_pushed_invoice_with_its_remote_total(sink: TrytonSink) -> None:
    plan, other = _plan(), _plan()
    ref = sink.push(plan)

    found = sink.find([plan, other])

    assert set(found) == {plan.idempotency_key}
    assert found[plan.idempotency_key].remote_id == ref.remote_id
    assert found[plan.idempotency_key].total == Money.of("200.00", "USD")
    assert found[plan.idempotency_key].already_existed is True


def test_delivering_the_same_plan_twice_creates_one_invoice(sink: TrytonSink) -> None:
    plan = _plan()
    first = _deliver(sink, plan)
    second = _deliver(_sink_like(sink), plan)

    assert first == second
    assert len(_invoices(sink, plan.po_number)) == 1


def test_push_itself_looks_up_before_creating(sink: TrytonSink) -> None:
    plan = _plan()
    first = sink.push(plan)
    again = sink.push(plan)

    assert again.remote_id == first.remote_id and again.already_existed is True
    assert len(_invoices(sink, plan.po_number)) == 1


def test_crash_after_remote_create_before_local_record_leaves_one_invoice(sink: TrytonSink) -> None:
    plan = _plan()
    sink.push(plan)  # the answer is lost: the outbox row still says "pushing"

    restarted = _sink_like(sink)
    found = restarted.find([plan])
    assert plan.idempotency_key in found
    _deliver(restarted, plan)
    assert len(_invoices(sink, plan.po_number)) == 1


def test_crash_between_create_and_post_is_finished_by_the_next_push(sink: TrytonSink) -> None:
    plan = _plan()
    (draft_id,) = sink.rpc.model("account.invoice", "create", [sink._invoice_values(plan)], write=True)

    restarted = _sink_like(sink)
    assert restarted.find([plan]) == {}
    ref = restarted.push(plan)

    assert ref.remote_id == str(draft_id)
    (invoice,) = _invoices(sink, plan.po_number)
    assert invoice["state"] == "posted"


def test_unknown_customer_is_rejected_and_nothing_is_created(sink: TrytonSink) -> None:
    plan = _plan(customer_ref="CUST-NOBODY")
    with pytest.raises(RejectedError, match="CUST-NOBODY"):
        sink.push(plan)
    assert _invoices(sink, plan.po_number) == []


def test_unknown_product_is_rejected_with_its_code(sink: TrytonSink) -> None:
    plan = _plan()
    plan = plan.model_copy(update={"lines": (plan.lines[0].model_copy(update={"sku": "NO-SUCH-SKU"}),)})
    with pytest.raises(RejectedError, match="NO-SUCH-SKU"):
        sink.push(plan)


def test_tryton_refusal_carries_its_message_and_leaves_no_draft(sink: TrytonSink) -> None:
    plan = _plan(issue_date=date(2001, 3, 1), due_date=date(2001, 3, 31))
    with pytest.raises(RejectedError, match="Tryton refused") as refused:
        sink.push(plan)
    assert "2001" in str(refused.value) or "period" in str(refused.value).lower()
    assert _invoices(sink, plan.po_number) == []


def test_an_expired_session_is_replaced_by_a_new_login() -> None:
    with running_tryton(TRYTOND_SESSION__TIMEOUT="1") as short_sessions:
        sink = _sink(short_sessions)
        plan = _plan()
        assert sink.find([plan]) == {}
        time.sleep(1.5)
        ref = sink.push(plan)  # posting needs a fresh session: Tryton answers 401 first

        assert sink.find([plan])[plan.idempotency_key].remote_id == ref.remote_id
        assert sink.rpc.logins >= 2


def test_wrong_password_is_an_authentication_error(tryton: TrytonServer, tmp_path: Path) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    with pytest.raises(AuthenticationError, match="refused the login"):
        _sink(tryton, password_file=wrong).find([_plan()])


def _sink_like(sink: TrytonSink) -> TrytonSink:
    """A fresh sink (new process, new login) for the same database."""
    return TrytonSink(sink.config, AdapterContext(), retry=FAST)
