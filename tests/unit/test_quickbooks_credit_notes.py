"""Credit notes in the quickbooks sink: the CreditMemo it writes and how it finds them (HTTP mocked)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from adapters.quickbooks import QuickBooksConfig, QuickBooksSink
from adapters.quickbooks_payload import (
    PayloadError,
    QuickBooksRefs,
    credit_memo_payload,
    doc_number_query,
    invoice_payload,
)
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money
from connector.planning import plan_credit_note
from connector.ports import AdapterContext
from connector.tax import TaxCodeMap
from tests.support.factories import make_priced_plan, sales_tax, vat_tax

BASE = "https://qbo.example.test"
TOKEN_URL = "https://oauth.example.test/oauth2/v1/tokens/bearer"
REALM = "4620816365"
COMPANY = f"{BASE}/v3/company/{REALM}"
TID = "1-abc-correlation"
UK_REFS = QuickBooksRefs(
    customer_refs={"CUST-1": "58"}, tax_mode="global", tax_codes=TaxCodeMap({"S:20": "2", "AE": "14"})
)
US_REFS = QuickBooksRefs(customer_refs={"CUST-1": "58"}, tax_mode="us", terms_refs={"NET30": "3"})
UK_RATES = {"2": "4", "14": "16"}


def uk_invoice(n: int = 1) -> InvoicePlan:
    lines = [("10.03", vat_tax("20"))] * 3 + [("200.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    return make_priced_plan(n, sink="qbo", customer_ref="CUST-1", currency="GBP", lines=lines)


def us_invoice(n: int = 1) -> InvoicePlan:
    lines = [("100.00", sales_tax("8.875")), ("50.00", sales_tax("0"))]
    return make_priced_plan(n, sink="qbo", customer_ref="CUST-1", currency="USD", lines=lines)


def credit_of(invoice: InvoicePlan, remote_id: str = "130") -> InvoicePlan:
    return plan_credit_note(
        invoice, reason="seats cancelled", issue_date=date(2026, 2, 20), remote_id=remote_id
    )


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> QuickBooksSink:
    monkeypatch.setenv("QBO_UNIT_SECRET", "unit-client-secret-xyz")
    monkeypatch.setenv("QBO_UNIT_REFRESH", "refresh-0")
    config = QuickBooksConfig(
        name="qbo",
        base_url=BASE,
        realm_id=REALM,
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret_env="QBO_UNIT_SECRET",
        refresh_token_file=tmp_path / "token.json",
        refresh_token_env="QBO_UNIT_REFRESH",
        customer_refs={"CUST-1": "58"},
        tax_mode="us",
        per_minute=60_000,
    )
    retry = RetryPolicy(max_attempts=3, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(config, AdapterContext(), retry=retry)


def token() -> dict[str, Any]:
    return {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "expires_in": 3600,
        "token_type": "bearer",
    }


def row(number: str, ident: str, total: str, tax: str = "8.88", customer: str = "58") -> str:
    return (
        f'{{"Id":"{ident}","DocNumber":"{number}","TotalAmt":{total},"CustomerRef":{{"value":"{customer}"}},'
        f'"CurrencyRef":{{"value":"USD"}},"TxnTaxDetail":{{"TotalTax":{tax}}}}}'
    )


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# -- payload ---------------------------------------------------------------------------------


def test_credit_memo_carries_the_invoices_lines_and_tax_positive_under_its_own_number() -> None:
    invoice = uk_invoice()
    credit = credit_of(invoice)
    memo = credit_memo_payload(credit, UK_REFS, UK_RATES)
    billed = invoice_payload(invoice, UK_REFS, UK_RATES)

    assert memo["DocNumber"] == credit.invoice_number != billed["DocNumber"]
    assert memo["DocNumber"].startswith("CN-") and len(memo["DocNumber"]) == 15
    assert memo["Line"] == billed["Line"]
    assert all(line["Amount"] > 0 for line in memo["Line"])
    assert memo["GlobalTaxCalculation"] == "TaxExcluded"
    assert memo["TxnTaxDetail"] == billed["TxnTaxDetail"]
    assert memo["TxnTaxDetail"]["TotalTax"] == credit.tax_total.amount == Decimal("6.02")
    assert (memo["CustomerRef"]["value"], memo["TxnDate"]) == ("58", "2026-02-20")


def test_credit_memo_names_the_credited_invoice_and_has_no_due_date_or_terms() -> None:
    invoice = us_invoice()
    memo = credit_memo_payload(credit_of(invoice), US_REFS)

    assert invoice.invoice_number in memo["CustomerMemo"]["value"]
    assert "seats cancelled" in memo["CustomerMemo"]["value"]
    assert invoice.invoice_number in memo["PrivateNote"]
    assert "DueDate" not in memo and "SalesTermRef" not in memo
    assert "SalesTermRef" in invoice_payload(invoice, US_REFS)  # the invoice does carry its terms
    assert memo["TxnTaxDetail"] == {"TotalTax": Decimal("8.88")}
    assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in memo["Line"]] == ["TAX", "NON"]


def test_a_custom_memo_without_the_invoice_number_still_gets_it() -> None:
    credit = credit_of(us_invoice()).model_copy(update={"memo": "Goodwill"})
    memo = credit_memo_payload(credit, US_REFS)
    assert credit.credits is not None
    assert memo["PrivateNote"].startswith(f"Credit note for invoice {credit.credits.invoice_number}")
    assert memo["PrivateNote"].endswith("; Goodwill")


def test_an_invoice_plan_is_not_a_credit_memo() -> None:
    with pytest.raises(PayloadError, match="not a credit note"):
        credit_memo_payload(us_invoice(), US_REFS)


def test_lookup_queries_name_their_entity() -> None:
    assert doc_number_query(["CN-1"], "CreditMemo") == "select * from CreditMemo where DocNumber = 'CN-1'"
    assert doc_number_query(["A", "B"], "CreditMemo").startswith(
        "select * from CreditMemo where DocNumber in"
    )
    with pytest.raises(ValueError, match="Bill"):
        doc_number_query(["A"], "Bill")


# -- push and find ---------------------------------------------------------------------------


def test_push_posts_a_credit_memo_with_requestid_and_minorversion(sink: QuickBooksSink) -> None:
    credit = credit_of(us_invoice())
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token())
        mocked.add(
            responses.POST,
            f"{COMPANY}/creditmemo",
            body=f'{{"CreditMemo":{row(credit.invoice_number, "140", "158.88")}}}',
            headers={"intuit_tid": TID},
        )
        ref = sink.push(credit)
        call = mocked.calls[-1]
    assert set(query_of(call)) == {"requestid", "minorversion"} and query_of(call)["minorversion"] == ["75"]
    body = json.loads(call.request.body, parse_float=Decimal)
    assert body["DocNumber"] == credit.invoice_number and body["TxnTaxDetail"]["TotalTax"] == Decimal("8.88")
    assert (ref.remote_id, ref.invoice_number, ref.correlation_id) == ("140", credit.invoice_number, TID)
    assert ref.total == Money.of("158.88", "USD") == credit.total
    assert ref.tax == Money.of("8.88", "USD") == credit.tax_total


def test_duplicate_credit_memo_number_resolves_by_a_credit_memo_lookup(sink: QuickBooksSink) -> None:
    credit = credit_of(us_invoice())
    duplicate = {"Fault": {"Error": [{"Message": "Duplicate Document Number Error", "code": "6140"}]}}
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token())
        mocked.add(responses.POST, f"{COMPANY}/creditmemo", status=400, json=duplicate)
        mocked.add(
            responses.GET,
            f"{COMPANY}/query",
            body=f'{{"QueryResponse":{{"CreditMemo":[{row(credit.invoice_number, "141", "158.88")}]}}}}',
        )
        ref = sink.push(credit)
        query = query_of(mocked.calls[-1])["query"][0]
    assert query == f"select * from CreditMemo where DocNumber = '{credit.invoice_number}'"
    assert (ref.remote_id, ref.already_existed) == ("141", True)


def test_find_looks_each_plan_up_where_it_lives_in_one_mixed_list(sink: QuickBooksSink) -> None:
    invoice, other = us_invoice(1), us_invoice(2)
    credit = credit_of(invoice)
    # An invoice carrying the credit note's number is not the credit note, and vice versa.
    invoices = f"[{row(invoice.invoice_number, '130', '158.88')},{row(credit.invoice_number, '7', '1')}]"
    memos = f"[{row(credit.invoice_number, '140', '158.88')},{row(other.invoice_number, '8', '1')}]"
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token())
        mocked.add(responses.GET, f"{COMPANY}/query", body=f'{{"QueryResponse":{{"Invoice":{invoices}}}}}')
        mocked.add(responses.GET, f"{COMPANY}/query", body=f'{{"QueryResponse":{{"CreditMemo":{memos}}}}}')
        found = sink.find([credit, invoice, other])
        queries = [query_of(c)["query"][0] for c in mocked.calls if "/query" in c.request.url]
    assert queries == [
        doc_number_query([invoice.invoice_number, other.invoice_number], "Invoice"),
        doc_number_query([credit.invoice_number], "CreditMemo"),
    ]
    assert {key: ref.remote_id for key, ref in found.items()} == {
        invoice.idempotency_key: "130",
        credit.idempotency_key: "140",
    }
    assert found[credit.idempotency_key].total == credit.total


def test_a_batch_creates_invoices_and_credit_memos_side_by_side(sink: QuickBooksSink) -> None:
    invoice = us_invoice(2)
    credit = credit_of(us_invoice(1))
    answer = (
        '{"BatchItemResponse":['
        f'{{"bId":"b1","CreditMemo":{row(credit.invoice_number, "150", "158.88")}}},'
        f'{{"bId":"b0","Invoice":{row(invoice.invoice_number, "151", "158.88")}}}]}}'
    )
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token())
        mocked.add(responses.POST, f"{COMPANY}/batch", body=answer)
        outcomes = sink.push_batch([invoice, credit])
        items = json.loads(mocked.calls[-1].request.body)["BatchItemRequest"]
    assert [sorted(set(item) - {"bId", "operation"}) for item in items] == [["Invoice"], ["CreditMemo"]]
    assert items[1]["CreditMemo"]["DocNumber"] == credit.invoice_number
    assert [(o.idempotency_key, o.ref.remote_id if o.ref else None) for o in outcomes] == [
        (invoice.idempotency_key, "151"),
        (credit.idempotency_key, "150"),
    ]
