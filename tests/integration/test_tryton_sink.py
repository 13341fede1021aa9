"""The tryton invoice sink against a real trytond: posted invoices, lookups, exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.tryton_sink import TrytonSink
from connector.errors import AuthenticationError, ConfigError, RejectedError
from connector.model import Money
from tests.support.factories import sales_tax, vat
from tests.support.tryton import TrytonServer, running_tryton
from tests.support.tryton_sinks import (
    amounts,
    deliver,
    invoice_taxes,
    invoices_of,
    plan_for,
    sink_for,
    sink_like,
    taxed_plan,
)

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def tryton() -> Iterator[TrytonServer]:
    with running_tryton() as server:
        yield server


@pytest.fixture(scope="module")
def sink(tryton: TrytonServer) -> TrytonSink:
    return sink_for(tryton)


def test_push_creates_a_posted_invoice_with_the_po_as_reference(sink: TrytonSink) -> None:
    plan = plan_for()
    ref = sink.push(plan)

    assert ref.already_existed is False
    assert ref.invoice_number == plan.invoice_number
    assert ref.total == Money.of("200.00", "USD") == plan.total
    (invoice,) = invoices_of(sink, plan.po_number)
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
    plan, other = plan_for(), plan_for()
    ref = sink.push(plan)

    found = sink.find([plan, other])

    assert set(found) == {plan.idempotency_key}
    assert found[plan.idempotency_key].remote_id == ref.remote_id
    assert found[plan.idempotency_key].total == Money.of("200.00", "USD")
    assert found[plan.idempotency_key].already_existed is True


def test_delivering_the_same_plan_twice_creates_one_invoice(sink: TrytonSink) -> None:
    plan = plan_for()
    first = deliver(sink, plan)
    second = deliver(sink_like(sink), plan)

    assert first == second
    assert len(invoices_of(sink, plan.po_number)) == 1


def test_push_itself_looks_up_before_creating(sink: TrytonSink) -> None:
    plan = plan_for()
    first = sink.push(plan)
    again = sink.push(plan)

    assert again.remote_id == first.remote_id and again.already_existed is True
    assert len(invoices_of(sink, plan.po_number)) == 1


def test_crash_after_remote_create_before_local_record_leaves_one_invoice(sink: TrytonSink) -> None:
    plan = plan_for()
    sink.push(plan)  # the answer is lost: the outbox row still says "pushing"

    restarted = sink_like(sink)
    found = restarted.find([plan])
    assert plan.idempotency_key in found
    deliver(restarted, plan)
    assert len(invoices_of(sink, plan.po_number)) == 1


def test_crash_between_create_and_post_is_finished_by_the_next_push(sink: TrytonSink) -> None:
    plan = plan_for()
    (draft_id,) = sink.rpc.model("account.invoice", "create", [sink._invoice_values(plan)], write=True)

    restarted = sink_like(sink)
    assert restarted.find([plan]) == {}
    ref = restarted.push(plan)

    assert ref.remote_id == str(draft_id)
    (invoice,) = invoices_of(sink, plan.po_number)
    assert invoice["state"] == "posted"


def test_unknown_customer_is_rejected_and_nothing_is_created(sink: TrytonSink) -> None:
    plan = plan_for(customer_ref="CUST-NOBODY")
    with pytest.raises(RejectedError, match="CUST-NOBODY"):
        sink.push(plan)
    assert invoices_of(sink, plan.po_number) == []


def test_unknown_product_is_rejected_with_its_code(sink: TrytonSink) -> None:
    plan = plan_for()
    plan = plan.model_copy(update={"lines": (plan.lines[0].model_copy(update={"sku": "NO-SUCH-SKU"}),)})
    with pytest.raises(RejectedError, match="NO-SUCH-SKU"):
        sink.push(plan)


def test_tryton_refusal_carries_its_message_and_leaves_no_draft(sink: TrytonSink) -> None:
    plan = plan_for(issue_date=date(2001, 3, 1), due_date=date(2001, 3, 31))
    with pytest.raises(RejectedError, match="Tryton refused") as refused:
        sink.push(plan)
    assert "2001" in str(refused.value) or "period" in str(refused.value).lower()
    assert invoices_of(sink, plan.po_number) == []


def test_an_expired_session_is_replaced_by_a_new_login() -> None:
    with running_tryton(TRYTOND_SESSION__TIMEOUT="1") as short_sessions:
        sink = sink_for(short_sessions)
        plan = plan_for()
        assert sink.find([plan]) == {}
        time.sleep(1.5)
        ref = sink.push(plan)  # posting needs a fresh session: Tryton answers 401 first

        assert sink.find([plan])[plan.idempotency_key].remote_id == ref.remote_id
        assert sink.rpc.logins >= 2


def test_wrong_password_is_an_authentication_error(tryton: TrytonServer, tmp_path: Path) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    with pytest.raises(AuthenticationError, match="refused the login"):
        sink_for(tryton, password_file=wrong).find([plan_for()])


# -- tax ---------------------------------------------------------------------------------------
TAXES = {
    "S:19": "VAT 19%",
    "S:20": "VAT 20%",
    "AE": "Reverse charge",
    "E": "Exempt",
    "SALES_TAX:US-NY": "NY sales tax 8.875%",
}


@pytest.fixture(scope="module")
def taxed_sink(tryton: TrytonServer) -> TrytonSink:
    return sink_for(tryton, taxes=TAXES)


def _line_taxes(sink: TrytonSink, invoice_id: str) -> dict[str, list[int]]:
    rows = sink.rpc.search_read(
        "account.invoice.line", [("invoice", "=", int(invoice_id))], ["product.code", "taxes"]
    )
    return {row["product."]["code"]: row["taxes"] for row in rows}


def test_a_taxed_plan_is_posted_with_the_plans_net_tax_and_gross(
    tryton: TrytonServer, taxed_sink: TrytonSink
) -> None:
    plan = taxed_plan(("PLAN-PRO", "2", "100.00", vat("19")))
    ref = taxed_sink.push(plan)

    assert plan.net_total == Money.of("200.00", "USD") and plan.tax_total == Money.of("38.00", "USD")
    assert amounts(taxed_sink, ref.remote_id) == (
        "posted",
        plan.net_total.amount,
        plan.tax_total.amount,
        plan.total.amount,
    )
    assert ref.total == plan.total and ref.tax == plan.tax_total
    taxes = tryton.facts["taxes"]
    assert _line_taxes(taxed_sink, ref.remote_id) == {"PLAN-PRO": [taxes["VAT 19%"]]}
    found = taxed_sink.find([plan])[plan.idempotency_key]
    assert (found.total, found.tax) == (plan.total, plan.tax_total)


def test_mixed_rates_and_a_reverse_charge_line_carry_their_own_tryton_taxes(
    tryton: TrytonServer, taxed_sink: TrytonSink
) -> None:
    reverse = vat("0", "AE", exemption_reason_code="VATEX-EU-AE", exemption_reason="Reverse charge")
    plan = taxed_plan(
        ("PLAN-PRO", "3", "33.33", vat("19")),
        ("PLAN-ENT", "1", "500.00", vat("20")),
        ("ADDON-SSO", "7", "20.00", reverse),
    )
    ref = taxed_sink.push(plan)

    state, untaxed, tax, total = amounts(taxed_sink, ref.remote_id)
    assert state == "posted"
    assert (untaxed, tax, total) == (plan.net_total.amount, plan.tax_total.amount, plan.total.amount)
    assert plan.tax_total == Money.of("119.00", "USD")  # 19.00 (99.99 x 19%) + 100.00 + 0
    taxes = tryton.facts["taxes"]
    assert _line_taxes(taxed_sink, ref.remote_id) == {
        "PLAN-PRO": [taxes["VAT 19%"]],
        "PLAN-ENT": [taxes["VAT 20%"]],
        "ADDON-SSO": [taxes["Reverse charge"]],
    }
    held = invoice_taxes(taxed_sink, ref.remote_id)
    assert {tax_id: (row["base"], row["amount"]) for tax_id, row in held.items()} == {
        taxes["VAT 19%"]: (Decimal("99.99"), Decimal("19.00")),
        taxes["VAT 20%"]: (Decimal("500.00"), Decimal("100.00")),
        taxes["Reverse charge"]: (Decimal("140.00"), Decimal("0.00")),
    }
    assert "Reverse charge" in held[taxes["Reverse charge"]]["legal_notice"]


def test_where_tryton_rounds_otherwise_the_books_hold_the_plans_tax_and_the_invoice_posts(
    tryton: TrytonServer, taxed_sink: TrytonSink
) -> None:
    # 1.50 x 19% = 0.285: the plan rounds half up (0.29), Tryton half to even (0.28).
    plan = taxed_plan(("ADDON-SSO", "1", "1.50", vat("19")), ("PLAN-PRO", "10", "40.00", sales_tax("8.875")))
    ref = taxed_sink.push(plan)

    assert plan.tax_total == Money.of("35.79", "USD")  # 0.29 + 35.50
    assert amounts(taxed_sink, ref.remote_id) == (
        "posted",
        Decimal("401.50"),
        Decimal("35.79"),
        Decimal("437.29"),
    )
    assert ref.tax == plan.tax_total and ref.total == plan.total
    row = invoice_taxes(taxed_sink, ref.remote_id)[tryton.facts["taxes"]["VAT 19%"]]
    assert (row["base"], row["amount"], row["manual"]) == (Decimal("1.50"), Decimal("0.29"), False)


def test_a_taxed_draft_left_by_a_crash_gets_the_plans_tax_when_the_next_push_posts_it(
    taxed_sink: TrytonSink,
) -> None:
    plan = taxed_plan(("ADDON-SSO", "1", "1.50", vat("19")))
    (draft_id,) = taxed_sink.rpc.model(
        "account.invoice", "create", [taxed_sink._invoice_values(plan)], write=True
    )
    assert amounts(taxed_sink, str(draft_id))[2] == Decimal("0.28")  # Tryton's own computation

    ref = sink_like(taxed_sink).push(plan)

    assert ref.remote_id == str(draft_id)
    assert amounts(taxed_sink, ref.remote_id) == (
        "posted",
        Decimal("1.50"),
        Decimal("0.29"),
        Decimal("1.79"),
    )


def test_an_unmapped_treatment_is_refused_before_any_call(tryton: TrytonServer) -> None:
    sink = sink_for(tryton, taxes={"S:19": "VAT 19%"})
    plan = taxed_plan(("PLAN-PRO", "1", "100.00", vat("20")))
    with pytest.raises(RejectedError, match="tax_code_unmapped") as refused:
        sink.push(plan)
    assert refused.value.provider_code == "tax_code_unmapped"
    assert "S:20" in str(refused.value)
    assert sink.rpc.calls == 0
    assert invoices_of(sink_for(tryton), plan.po_number) == []


def test_a_line_at_another_rate_than_its_tryton_tax_is_refused_and_nothing_is_created(
    tryton: TrytonServer,
) -> None:
    sink = sink_for(tryton, taxes={"S": "VAT 19%"})
    plan = taxed_plan(("PLAN-PRO", "1", "100.00", vat("20")))
    with pytest.raises(RejectedError, match="tax_rate_mismatch") as refused:
        sink.push(plan)
    assert refused.value.provider_code == "tax_rate_mismatch"
    assert invoices_of(sink, plan.po_number) == []


def test_a_configured_tax_tryton_lacks_stops_the_sink_naming_key_and_name(tryton: TrytonServer) -> None:
    sink = sink_for(tryton, taxes={"S:19": "VAT 19%", "AE": "Reverse charge (EU)"})
    plan = taxed_plan(("PLAN-PRO", "1", "100.00", vat("19")))
    with pytest.raises(ConfigError, match=r"taxes\['AE'\] = 'Reverse charge \(EU\)': Tryton has no sale tax"):
        sink.push(plan)
    assert invoices_of(sink, plan.po_number) == []


def test_check_names_missing_taxes_and_rate_mismatches(tryton: TrytonServer) -> None:
    sink_for(tryton, taxes=TAXES).check()  # all present at their rates

    wrong = sink_for(
        tryton,
        taxes={
            "S:19": "VAT 7%",
            "S:20": "VAT 20%",
            "E": "VAT 19%",
            "Z": "Zero rated",
            "SALES_TAX:US-TX": "Input VAT 19%",  # a purchase tax: not offered to customer invoices
        },
    )
    with pytest.raises(ConfigError) as found:
        wrong.check()
    message = str(found.value)
    assert "taxes['S:19'] = 'VAT 7%': the Tryton tax is 7%, the treatment 19%" in message
    assert "taxes['E'] = 'VAT 19%': the Tryton tax is 19%, the treatment 0%" in message
    assert "taxes['Z'] = 'Zero rated': Tryton has no sale tax of that name" in message
    assert "taxes['SALES_TAX:US-TX'] = 'Input VAT 19%': Tryton has no sale tax" in message
    assert "S:20" not in message
