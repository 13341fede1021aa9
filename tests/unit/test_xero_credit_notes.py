"""Credit notes in the xero sink: the credit note and allocation it sends, and how it finds them."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from adapters.xero import BearerToken, XeroConfig, XeroSink
from adapters.xero_payload import (
    InvoiceMapping,
    PayloadProblem,
    credit_note_payload,
    credit_note_where,
    dumps_exact,
    invoice_payload,
)
from connector.errors import RejectedError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from connector.tax import TaxCodeMap
from tests.support.factories import make_priced_plan, vat_tax

BASE = "https://api.xero.test/api.xro/2.0"
CREDIT_NOTES = f"{BASE}/CreditNotes"
INVOICE_ID = "b7eb1fc9-a0f9-4e8e-9373-6689f5350832"
CREDIT_ID = "7be578f5-63af-45c8-9b00-dcc4732baf0b"
ALLOCATIONS = f"{CREDIT_NOTES}/{CREDIT_ID}/Allocations"
UK_TYPES = {"S:20": "OUTPUT2", "AE": "ECZROUTPUTSERVICES"}
MAPPING = InvoiceMapping(tax_types=TaxCodeMap(UK_TYPES), status="DRAFT")


def invoice_plan(n: int = 1) -> InvoicePlan:
    lines = [("10.03", vat_tax("20"))] * 3 + [("99.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    return make_priced_plan(n, sink="xero", customer_ref="CUST-1", currency="GBP", lines=lines)


def credit_of(invoice: InvoicePlan, remote_id: str = INVOICE_ID) -> InvoicePlan:
    return plan_credit_note(
        invoice, reason="seats cancelled", issue_date=date(2026, 2, 20), remote_id=remote_id
    )


def make_sink(**overrides: Any) -> XeroSink:
    values: dict[str, Any] = {
        "name": "xero",
        "base_url": BASE,
        "tenant_id": "tenant-1",
        "access_token_env": "UNUSED",
        "tax_types": UK_TYPES,
        "per_minute": 60_000,  # the default 60 a minute would pace these calls a second apart
    }
    values.update(overrides)
    retry = RetryPolicy(base_delay=0, sleep=lambda seconds: None)
    return XeroSink(XeroConfig(**values), AdapterContext(), auth=BearerToken("tok-123456"), retry=retry)


def credit_element(plan: InvoicePlan, *, left: str | None = None, **fields: Any) -> dict[str, Any]:
    remaining = plan.total.amount if left is None else Decimal(left)
    base: dict[str, Any] = {
        "Type": "ACCRECCREDIT",
        "CreditNoteID": CREDIT_ID,
        "CreditNoteNumber": plan.invoice_number,
        "Status": "AUTHORISED" if remaining else "PAID",
        "CurrencyCode": plan.currency,
        "Total": plan.total.amount,
        "TotalTax": plan.tax_total.amount,
        "RemainingCredit": remaining,
        "Allocations": [],
        "StatusAttributeString": "OK",
    }
    base.update(fields)
    return base


def body(key: str, *elements: dict[str, Any]) -> str:
    return dumps_exact({"Status": "OK", key: list(elements)})


def allocated(invoice_id: str = INVOICE_ID, amount: str = "135.11") -> str:
    allocation = {
        "Amount": Decimal(amount),
        "Invoice": {"InvoiceID": invoice_id},
        "StatusAttributeString": "OK",
    }
    return body("Allocations", allocation)


def sent(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body, parse_float=Decimal)


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# -- mapping ----------------------------------------------------------------------------
def test_credit_note_is_an_authorised_accreccredit_with_the_invoices_lines_and_tax() -> None:
    invoice = invoice_plan()
    credit = credit_of(invoice)

    payload = credit_note_payload(credit, MAPPING)

    assert (payload["Type"], payload["CreditNoteNumber"]) == ("ACCRECCREDIT", credit.invoice_number)
    assert payload["Status"] == "AUTHORISED", "only an authorised credit note can be allocated"
    assert payload["LineItems"] == invoice_payload(invoice, MAPPING)["LineItems"]
    assert [line["TaxAmount"] for line in payload["LineItems"]] == [
        Decimal("2.00"),
        Decimal("2.01"),
        Decimal("2.01"),
        Decimal(0),
    ]
    assert all(line["LineAmount"] > 0 for line in payload["LineItems"])
    assert payload["LineAmountTypes"] == "Exclusive"
    assert payload["Reference"] == f"{invoice.invoice_number} PO {invoice.po_number}"
    assert (payload["Date"], payload["CurrencyCode"]) == ("2026-02-20", "GBP")
    assert "InvoiceNumber" not in payload and "DueDate" not in payload


def test_plans_a_credit_note_cannot_be_made_of_are_refused() -> None:
    with pytest.raises(PayloadProblem, match="not a credit note"):
        credit_note_payload(invoice_plan(), MAPPING)
    quoted = credit_of(invoice_plan()).model_copy(update={"invoice_number": 'CN-"1"'})
    with pytest.raises(PayloadProblem, match="double quote"):
        credit_note_payload(quoted, MAPPING)


def test_the_lookup_filter_names_the_type_and_each_number() -> None:
    assert credit_note_where(["CN-1", "CN-2"]) == (
        'Type=="ACCRECCREDIT" AND (CreditNoteNumber=="CN-1" OR CreditNoteNumber=="CN-2")'
    )


# -- push -------------------------------------------------------------------------------
@responses.activate
def test_push_creates_then_allocates_the_credit_to_the_invoice_with_idempotency_keys() -> None:
    credit = credit_of(invoice_plan())
    responses.put(CREDIT_NOTES, body=body("CreditNotes", credit_element(credit)))
    responses.put(ALLOCATIONS, body=allocated())

    ref = make_sink().push(credit)

    create, allocate = responses.calls
    assert query(create) == {"summarizeErrors": ["false"], "unitdp": ["4"]}
    assert [e["CreditNoteNumber"] for e in sent(create)["CreditNotes"]] == [credit.invoice_number]
    assert sent(allocate) == {
        "Allocations": [
            {"Amount": Decimal("135.11"), "Invoice": {"InvoiceID": INVOICE_ID}, "Date": "2026-02-20"}
        ]
    }
    keys = [call.request.headers["Idempotency-Key"] for call in (create, allocate)]
    assert all(key.startswith("po-connector-") for key in keys) and keys[0] != keys[1]
    assert (ref.remote_id, ref.invoice_number) == (CREDIT_ID, credit.invoice_number)
    assert (ref.total, ref.tax) == (Money.of("135.11", "GBP"), Money.of("6.02", "GBP"))
    assert not ref.already_existed


@responses.activate
def test_an_allocation_resent_later_carries_the_same_key() -> None:
    credit = credit_of(invoice_plan())
    responses.put(CREDIT_NOTES, body=body("CreditNotes", credit_element(credit)))
    responses.put(ALLOCATIONS, status=503)
    responses.put(CREDIT_NOTES, body=body("CreditNotes", credit_element(credit)))
    responses.put(ALLOCATIONS, body=allocated())

    assert make_sink().push_batch([credit])[0].error is not None
    assert make_sink().push_batch([credit])[0].ref is not None

    keys = [
        c.request.headers["Idempotency-Key"] for c in responses.calls if c.request.url.endswith("Allocations")
    ]
    assert len(keys) == 2 and keys[0] == keys[1]


@responses.activate
def test_a_taken_number_is_looked_up_and_an_unallocated_credit_note_is_only_allocated() -> None:
    credit = credit_of(invoice_plan())
    taken = credit_element(credit, StatusAttributeString="ERROR", HasErrors=True, CreditNoteID="0" * 8)
    taken["ValidationErrors"] = [{"Message": "Credit Note # must be unique."}]
    responses.put(CREDIT_NOTES, body=body("CreditNotes", taken))
    responses.get(CREDIT_NOTES, body=body("CreditNotes", credit_element(credit)))
    responses.put(ALLOCATIONS, body=allocated())

    ref = make_sink().push(credit)

    assert query(responses.calls[1])["where"] == [credit_note_where([credit.invoice_number])]
    assert (ref.remote_id, ref.already_existed) == (CREDIT_ID, True)
    assert len(responses.calls) == 3


@responses.activate
def test_a_taken_number_whose_credit_note_is_allocated_needs_no_second_allocation() -> None:
    credit = credit_of(invoice_plan())
    taken = credit_element(credit, StatusAttributeString="ERROR", HasErrors=True)
    taken["ValidationErrors"] = [{"Message": "Credit Note # must be unique."}]
    done = credit_element(
        credit, left="0", Allocations=[{"Amount": 135.11, "Invoice": {"InvoiceID": INVOICE_ID}}]
    )
    responses.put(CREDIT_NOTES, body=body("CreditNotes", taken))
    responses.get(CREDIT_NOTES, body=body("CreditNotes", done))

    ref = make_sink().push(credit)

    assert ref.already_existed and ref.total == credit.total
    assert [c.request.method for c in responses.calls] == ["PUT", "GET"]


@responses.activate
def test_a_refused_allocation_names_the_credit_note_left_in_xero() -> None:
    credit = credit_of(invoice_plan())
    responses.put(CREDIT_NOTES, body=body("CreditNotes", credit_element(credit)))
    refusal = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [
            {
                "ValidationErrors": [
                    {"Message": "The invoice you are trying to allocate to has already been paid off"}
                ]
            }
        ],
    }
    responses.put(ALLOCATIONS, status=400, json=refusal)

    with pytest.raises(RejectedError) as caught:
        make_sink().push(credit)

    assert CREDIT_ID in caught.value.message and "already been paid off" in caught.value.message
    assert caught.value.provider_code == "ValidationException"


# -- find -------------------------------------------------------------------------------
@responses.activate
def test_find_looks_invoices_and_credit_notes_up_each_where_they_live() -> None:
    invoice, other = invoice_plan(1), invoice_plan(2)
    credit, pending = credit_of(invoice), credit_of(other)
    invoice_found = {
        "Type": "ACCREC",
        "InvoiceID": INVOICE_ID,
        "InvoiceNumber": invoice.invoice_number,
        "CurrencyCode": "GBP",
        "Total": invoice.total.amount,
    }
    responses.get(
        CREDIT_NOTES,
        body=body(
            "CreditNotes",
            credit_element(credit, left="0"),
            credit_element(pending, CreditNoteID="unallocated-one"),
        ),
    )
    responses.get(f"{BASE}/Invoices", body=body("Invoices", invoice_found))

    found = make_sink().find([credit, invoice, pending])

    lookups = {urlsplit(c.request.url).path.rsplit("/", 1)[1]: query(c) for c in responses.calls}
    assert lookups["Invoices"]["InvoiceNumbers"] == [invoice.invoice_number]
    assert lookups["CreditNotes"]["where"] == [
        credit_note_where([credit.invoice_number, pending.invoice_number])
    ]
    assert {key: ref.remote_id for key, ref in found.items()} == {
        credit.idempotency_key: CREDIT_ID,
        invoice.idempotency_key: INVOICE_ID,
    }, "a credit note not yet allocated is not done"
    assert found[credit.idempotency_key].total == credit.total
