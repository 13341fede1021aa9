"""Credit notes in a real trytond: posted negative, linked to the invoice they credit, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from adapters.tryton_sink import TrytonSink
from connector.errors import RejectedError
from connector.model import InvoicePlan, Money
from connector.planning import plan_credit_note
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

TAXES = {"S:19": "VAT 19%", "SALES_TAX:US-CA": "CA sales tax 7.25%"}


@pytest.fixture(scope="module")
def tryton() -> Iterator[TrytonServer]:
    with running_tryton() as server:
        yield server


@pytest.fixture(scope="module")
def sink(tryton: TrytonServer) -> TrytonSink:
    return sink_for(tryton, taxes=TAXES)


def _credit(invoice: InvoicePlan, remote_id: str) -> InvoicePlan:
    return plan_credit_note(invoice, reason="seats cancelled", issue_date=date.today(), remote_id=remote_id)


def _taxed_invoice() -> InvoicePlan:
    # 1.50 x 19% = 0.285: the plan rounds half up (0.29), Tryton half to even (0.28).
    return taxed_plan(
        ("ADDON-SSO", "1", "1.50", vat("19")),
        ("PLAN-PRO", "3", "33.33", sales_tax("7.25", "US-CA")),
    )


def _credit_notes_of(sink: TrytonSink, invoice_id: str) -> list[dict[str, Any]]:
    """The credit notes Tryton links to an invoice (their lines' origin is its lines)."""
    return sink.rpc.search_read(
        "account.invoice",
        [("origin_invoices", "=", int(invoice_id))],
        ["state", "number", "description", "reference", "comment", "amount_to_pay", "invoice_date"],
    )


def _lines(sink: TrytonSink, invoice_id: str) -> list[tuple[str, Decimal, Decimal, list[int], Any]]:
    rows = sink.rpc.search_read(
        "account.invoice.line",
        [("invoice", "=", int(invoice_id))],
        ["product.code", "quantity", "unit_price", "taxes", "origin"],
    )
    return [
        (row["product."]["code"], Decimal(row["quantity"]), row["unit_price"], row["taxes"], row["origin"])
        for row in rows
    ]


def test_a_taxed_invoices_credit_note_is_posted_negative_and_linked_to_it(
    tryton: TrytonServer, sink: TrytonSink
) -> None:
    invoice = _taxed_invoice()
    pushed = sink.push(invoice)
    credit = _credit(invoice, pushed.remote_id)

    ref = sink.push(credit)

    assert (credit.net_total, credit.tax_total) == (Money.of("101.49", "USD"), Money.of("7.54", "USD"))
    assert ref.already_existed is False and ref.invoice_number == credit.invoice_number
    assert (ref.total, ref.tax) == (credit.total, credit.tax_total) == (pushed.total, pushed.tax)
    (note,) = _credit_notes_of(sink, pushed.remote_id)
    assert str(note["id"]) == ref.remote_id
    assert note["state"] == "posted" and note["number"]
    assert note["description"].split()[:3] == [credit.invoice_number, "credits", invoice.invoice_number]
    assert note["reference"] == invoice.po_number
    assert note["comment"] == credit.memo and note["invoice_date"] == credit.issue_date
    assert amounts(sink, ref.remote_id) == (
        "posted",
        Decimal("-101.49"),
        Decimal("-7.54"),
        Decimal("-109.03"),
    )
    taxes = tryton.facts["taxes"]
    invoice_lines = _lines(sink, pushed.remote_id)
    assert [(code, taxed) for code, _, _, taxed, _ in invoice_lines] == [
        ("ADDON-SSO", [taxes["VAT 19%"]]),
        ("PLAN-PRO", [taxes["CA sales tax 7.25%"]]),
    ]
    # Each line negates the invoice's, with its taxes, and names the line it credits.
    assert _lines(sink, ref.remote_id) == [
        (code, -quantity, price, taxed, f"account.invoice.line,{line_id}")
        for (code, quantity, price, taxed, _), line_id in zip(
            invoice_lines, _line_ids(sink, pushed.remote_id), strict=True
        )
    ]
    held = invoice_taxes(sink, ref.remote_id)
    assert {tax_id: (row["base"], row["amount"], row["manual"]) for tax_id, row in held.items()} == {
        taxes["VAT 19%"]: (Decimal("-1.50"), Decimal("-0.29"), False),  # the plan's, not Tryton's -0.28
        taxes["CA sales tax 7.25%"]: (Decimal("-99.99"), Decimal("-7.25"), False),
    }
    # Tryton does not reconcile the two: each stays open on the receivable, netting to zero.
    (credited,) = sink.rpc.model(
        "account.invoice", "read", [int(pushed.remote_id)], ["state", "amount_to_pay"]
    )
    assert (credited["state"], credited["amount_to_pay"]) == ("posted", Decimal("109.03"))
    assert note["amount_to_pay"] == Decimal("-109.03")


def _line_ids(sink: TrytonSink, invoice_id: str) -> list[int]:
    rows = sink.rpc.search_read("account.invoice.line", [("invoice", "=", int(invoice_id))], [])
    return [int(row["id"]) for row in rows]


def test_find_finds_invoices_and_credit_notes_in_one_list(sink: TrytonSink) -> None:
    invoice, other, pending = _taxed_invoice(), plan_for(), plan_for()
    credit = _credit(invoice, sink.push(invoice).remote_id)
    other_ref = sink.push(other)
    credit_ref = sink.push(credit)
    unpushed_credit = _credit(pending, "")

    found = sink.find([credit, other, invoice, pending, unpushed_credit])

    assert set(found) == {credit.idempotency_key, other.idempotency_key, invoice.idempotency_key}
    assert found[credit.idempotency_key].remote_id == credit_ref.remote_id
    assert found[other.idempotency_key].remote_id == other_ref.remote_id
    assert (found[credit.idempotency_key].total, found[credit.idempotency_key].tax) == (
        credit.total,
        credit.tax_total,
    )
    assert found[credit.idempotency_key].already_existed is True


def test_a_crash_after_the_credit_note_is_posted_before_it_is_recorded_leaves_one(sink: TrytonSink) -> None:
    invoice = _taxed_invoice()
    invoice_id = sink.push(invoice).remote_id
    credit = _credit(invoice, invoice_id)
    first = sink.push(credit)  # the answer is lost: the outbox row still says "pushing"

    restarted = sink_like(sink)
    assert deliver(restarted, credit) == first.remote_id
    again = restarted.push(credit)  # and push itself looks up before creating

    assert again.remote_id == first.remote_id and again.already_existed is True
    assert len(_credit_notes_of(sink, invoice_id)) == 1
    assert len(invoices_of(sink, invoice.po_number)) == 2  # the invoice and its one credit note


def test_a_crash_between_create_and_post_is_finished_by_the_retry_with_the_plans_tax(
    sink: TrytonSink,
) -> None:
    invoice = taxed_plan(("ADDON-SSO", "1", "1.50", vat("19")))
    invoice_id = sink.push(invoice).remote_id
    credit = _credit(invoice, invoice_id)
    (draft_id,) = sink.rpc.model("account.invoice", "create", [sink._invoice_values(credit)], write=True)
    assert amounts(sink, str(draft_id))[2] == Decimal("-0.28")  # Tryton's own computation

    restarted = sink_like(sink)
    assert restarted.find([credit]) == {}  # a draft is not delivered
    ref = restarted.push(credit)

    assert ref.remote_id == str(draft_id)
    assert amounts(sink, ref.remote_id) == ("posted", Decimal("-1.50"), Decimal("-0.29"), Decimal("-1.79"))
    assert (ref.total, ref.tax) == (Money.of("1.79", "USD"), Money.of("0.29", "USD"))
    assert [row["id"] for row in _credit_notes_of(sink, invoice_id)] == [draft_id]


def test_without_a_recorded_id_the_credited_invoice_is_found_by_its_number(sink: TrytonSink) -> None:
    invoice = plan_for()  # untaxed
    invoice_id = sink.push(invoice).remote_id

    ref = sink.push(_credit(invoice, ""))

    (note,) = _credit_notes_of(sink, invoice_id)
    assert str(note["id"]) == ref.remote_id
    assert amounts(sink, ref.remote_id) == ("posted", Decimal("-200.00"), Decimal("0"), Decimal("-200.00"))
    assert ref.total == invoice.total and ref.tax == Money.of("0", "USD")


def test_a_credit_note_naming_another_invoice_is_refused_and_nothing_is_created(sink: TrytonSink) -> None:
    invoice, unrelated = plan_for(), plan_for()
    sink.push(invoice)
    unrelated_id = sink.push(unrelated).remote_id

    with pytest.raises(RejectedError, match=f"Tryton invoice {unrelated_id} is not that invoice") as refused:
        sink.push(_credit(invoice, unrelated_id))
    assert refused.value.provider_code == "credited_invoice_not_found"
    with pytest.raises(RejectedError, match="Tryton has no invoice") as missing:
        sink.push(_credit(plan_for(), ""))
    assert missing.value.provider_code == "credited_invoice_not_found"
    assert len(invoices_of(sink, invoice.po_number)) == 1
    assert _credit_notes_of(sink, unrelated_id) == []
