"""NetSuite credit memos against recorded REST answers: the transform from the credited invoice,
its body, and the lookup that finds invoices and credit memos each as their own type."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import responses
from responses import matchers

from adapters.netsuite import decimal_json
from connector.errors import RejectedError, UncertainError
from connector.model import InvoicePlan, Money
from connector.planning import plan_credit_note
from tests.support.factories import make_priced_plan, vat_tax
from tests.unit.test_netsuite import BASE, make_plan, make_sink, ns_error
from tests.unit.test_netsuite_tax import TAX_CODES

SUITEQL = f"{BASE}/query/v1/suiteql"
ITEMS = {"SKU-1": "501", "SKU-2": "502", "SKU-3": "503"}


def credit_of(invoice: InvoicePlan, remote_id: str = "4711") -> InvoicePlan:
    return plan_credit_note(
        invoice, reason="seats cancelled", issue_date=date(2024, 2, 20), remote_id=remote_id
    )


def exact(payload: Any) -> Any:
    """A body part as it goes on the wire and comes back: Decimals as exact JSON numbers."""
    return json.loads(decimal_json(payload), parse_float=Decimal)


def transform_url(source: str = "4711") -> str:
    return f"{BASE}/record/v1/invoice/{source}/!transform/creditMemo"


def created(memo_id: str = "5120") -> dict[str, Any]:
    return {"status": 204, "headers": {"Location": f"{BASE}/record/v1/creditMemo/{memo_id}"}}


@responses.activate
def test_credit_note_is_one_transform_of_the_credited_invoice(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(monkeypatch, subsidiary="3", currency_ids={"USD": "1"})
    invoice = make_plan()
    credit = credit_of(invoice)
    responses.post(transform_url(), match=[matchers.query_param_matcher({"replace": "item"})], **created())

    ref = sink.push(credit)

    assert (ref.remote_id, ref.invoice_number, ref.total) == ("5120", credit.invoice_number, None)
    body = json.loads(responses.calls[0].request.body, parse_float=Decimal)
    assert body["externalId"] == body["tranId"] == credit.invoice_number
    assert body["entity"] == {"id": "101"}
    assert body["tranDate"] == "2024-02-20"
    assert body["memo"] == f"Credit note for invoice {invoice.invoice_number}: seats cancelled"
    assert body["otherRefNum"] == "PO-778"
    invoice_lines = sink.invoice_body(invoice)["item"]["items"]
    assert body["item"]["items"] == exact(invoice_lines)
    assert [line["amount"] for line in body["item"]["items"]] == [Decimal("239.88"), Decimal("250.00")]
    # the transform takes these from the invoice and sets createdFrom itself; nothing is due
    for field in ("createdFrom", "currency", "subsidiary", "terms", "dueDate"):
        assert field not in body
    assert len(responses.calls) == 1


@responses.activate
def test_taxed_credit_note_states_the_invoices_tax_and_replaces_both_sublists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(monkeypatch, customer_ids={"CUST-ACME": "101"}, item_ids=ITEMS, tax_codes=TAX_CODES)
    invoice = make_priced_plan(currency="GBP", lines=[("10.03", vat_tax("20"))] * 3)
    credit = credit_of(invoice)
    responses.post(
        transform_url(), match=[matchers.query_param_matcher({"replace": "item,taxDetails"})], **created()
    )

    sink.push(credit)

    body = json.loads(responses.calls[0].request.body, parse_float=Decimal)
    assert body["taxDetailsOverride"] is True
    taxes = body["taxDetails"]["items"]
    assert sorted(t["taxAmount"] for t in taxes) == [Decimal("2.00"), Decimal("2.01"), Decimal("2.01")]
    assert sum(t["taxAmount"] for t in taxes) == credit.tax_total.amount == Decimal("6.02")
    assert {t["taxDetailsReference"] for t in taxes} == {
        line["taxDetailsReference"] for line in body["item"]["items"]
    }
    assert taxes == exact(sink.invoice_body(invoice)["taxDetails"]["items"])


@responses.activate
def test_credit_without_the_invoices_internal_id_names_it_by_external_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(monkeypatch)
    invoice = make_plan()
    responses.post(transform_url(f"eid:{invoice.invoice_number}"), **created())

    assert sink.push(credit_of(invoice, remote_id="")).remote_id == "5120"


@responses.activate
def test_credit_naming_an_id_that_is_not_an_internal_id_is_rejected_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(RejectedError, match="is not an internal id"):
        make_sink(monkeypatch).push(credit_of(make_plan(), remote_id="4711/../9"))
    assert len(responses.calls) == 0


@responses.activate
def test_server_error_on_the_transform_is_uncertain_and_not_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    responses.post(transform_url(), status=502)
    with pytest.raises(UncertainError):
        make_sink(monkeypatch).push(credit_of(make_plan()))
    assert len(responses.calls) == 1


@responses.activate
def test_refused_transform_of_a_credit_memo_that_exists_resolves_as_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(monkeypatch)
    credit = credit_of(make_plan())
    responses.post(transform_url(), **ns_error(400, "A record with this external ID exists.", "USER_ERROR"))
    row = {"id": "5120", "externalid": credit.invoice_number, "type": "CustCred", "foreigntotal": "-489.88"}
    responses.post(SUITEQL, json={"items": [row], "hasMore": False})

    ref = sink.push(credit)

    assert (ref.remote_id, ref.total, ref.already_existed) == ("5120", Money.of("489.88", "USD"), True)
    query = json.loads(responses.calls[1].request.body)["q"]
    assert f"type = 'CustCred' AND externalid IN ('{credit.invoice_number}')" in query


@responses.activate
def test_refused_transform_without_a_credit_memo_stays_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    detail = "Invalid Field Value 999 for the following field: entity"
    responses.post(transform_url(), **ns_error(400, detail, "USER_ERROR"))
    responses.post(SUITEQL, json={"items": [], "hasMore": False})

    with pytest.raises(RejectedError, match=detail):
        make_sink(monkeypatch).push(credit_of(make_plan()))

    responses.post(
        transform_url("4712"), **ns_error(404, "The record instance does not exist.", "NONEXISTENT_ID")
    )
    with pytest.raises(RejectedError, match="404 NONEXISTENT_ID"):
        make_sink(monkeypatch).push(credit_of(make_plan(), remote_id="4712"))
    assert [c.request.url.split("?")[0] for c in responses.calls] == [
        transform_url(),
        SUITEQL,
        transform_url("4712"),
    ]


@responses.activate
def test_read_back_of_a_credit_memo_reports_its_positive_total_and_tax(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(
        monkeypatch,
        read_back=True,
        customer_ids={"CUST-ACME": "101"},
        item_ids=ITEMS,
        tax_codes=TAX_CODES,
    )
    credit = credit_of(make_priced_plan(currency="GBP", lines=[("10.03", vat_tax("20"))] * 3))
    responses.post(transform_url(), **created())
    responses.get(
        f"{BASE}/record/v1/creditMemo/eid:{credit.invoice_number}",
        body='{"id": "5120", "total": 36.11, "taxTotal": 6.02, "createdFrom": {"id": "4711"}}',
    )

    ref = sink.push(credit)

    assert (ref.total, ref.tax) == (Money.of("36.11", "GBP"), Money.of("6.02", "GBP"))
    assert (ref.total, ref.tax) == (credit.total, credit.tax_total)


@responses.activate
def test_find_looks_up_invoices_and_credit_notes_as_their_own_types_in_one_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = make_sink(monkeypatch)
    invoice = make_plan()
    credit = credit_of(invoice)
    other = make_plan("INV-00000000000B")
    rows = [
        {"id": "4711", "externalid": invoice.invoice_number, "type": "CustInvc", "foreigntotal": "489.88"},
        {"id": "5120", "externalid": credit.invoice_number, "type": "CustCred", "foreigntotal": "-489.88"},
        # a credit memo someone keyed with an invoice's number is not that invoice
        {"id": "5121", "externalid": other.invoice_number, "type": "CustCred", "foreigntotal": "-1.00"},
    ]
    responses.post(SUITEQL, json={"items": rows, "hasMore": False})

    found = sink.find([invoice, credit, other])

    (call,) = responses.calls
    assert "type IN ('CustCred', 'CustInvc')" in json.loads(call.request.body)["q"]
    assert set(found) == {invoice.idempotency_key, credit.idempotency_key}
    assert found[invoice.idempotency_key].remote_id == "4711"
    memo = found[credit.idempotency_key]
    assert (memo.remote_id, memo.invoice_number, memo.total) == ("5120", credit.invoice_number, credit.total)
    assert memo.already_existed
