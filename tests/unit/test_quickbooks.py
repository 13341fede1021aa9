"""The quickbooks sink against mocked HTTP (responses): payload, request ids, error mapping, tokens."""

from __future__ import annotations

import json
import stat
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import ValidationError

from adapters.oauth_refresh import RefreshTokenAuth, TokenFile, TokenState
from adapters.quickbooks import QuickBooksConfig, QuickBooksSink, realm_budget
from adapters.quickbooks_payload import (
    PayloadError,
    QuickBooksRefs,
    doc_number_query,
    dumps,
    fresh_request_id,
    invoice_payload,
    quote,
    sales_rates,
)
from connector.errors import (
    AuthenticationError,
    ConfigError,
    RejectedError,
    RetryableError,
    UncertainError,
)
from connector.http import RetryPolicy
from connector.model import Address, InvoiceLine, InvoicePlan, Money, PaymentTerms
from connector.ports import AdapterContext, AdapterKind, Capability
from connector.tax import TaxCodeMap
from tests.support.factories import make_priced_plan, sales_tax, vat_tax

BASE = "https://qbo.example.test"
TOKEN_URL = "https://oauth.example.test/oauth2/v1/tokens/bearer"
REALM = "4620816365"
COMPANY = f"{BASE}/v3/company/{REALM}"
SECRET = "unit-client-secret-xyz"
TID = "1-abc-correlation"


def make_plan(number: int = 1, **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": f"{number:064x}",
        "invoice_number": f"INV-{number}",
        "sink": "qbo",
        "customer_ref": "CUST-1",
        "customer_name": "Acme Corp",
        "po_number": "PO-4711",
        "po_key": "default/coupa/4711",
        "po_revision": 1,
        "billing_key": "default/billing/sub-1/2024-01-01",
        "currency": "USD",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "payment_terms": PaymentTerms(code="NET30", net_days=30),
        "bill_to": Address(
            name="Acme AP",
            lines=("1 Main St", "Floor 2"),
            city="Springfield",
            region="IL",
            postal_code="62701",
            country="US",
        ),
        "lines": (
            InvoiceLine(
                line_no=1,
                sku="SEAT",
                description="Seats",
                quantity=Decimal("1.5"),
                unit_price=Money.of("33.333", "USD"),
                service_start=date(2024, 1, 1),
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "memo": "January seats",
    }
    values.update(overrides)
    return InvoicePlan(**values)


REFS = QuickBooksRefs(
    customer_refs={"CUST-1": "58"},
    item_refs={"SEAT": "7"},
    terms_refs={"NET30": "3"},
    po_field_id="2",
    po_field_name="Customer PO",
)


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> QuickBooksSink:
    monkeypatch.setenv("QBO_UNIT_SECRET", SECRET)
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
        item_refs={"SEAT": "7"},
        terms_refs={"NET30": "3"},
        per_minute=60_000,
    )
    retry = RetryPolicy(max_attempts=3, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(config, AdapterContext(), retry=retry)


def token_body(n: int) -> dict[str, Any]:
    return {
        "access_token": f"access-{n}",
        "refresh_token": f"refresh-{n}",
        "expires_in": 3600,
        "token_type": "bearer",
    }


def fault(kind: str, code: str, message: str, detail: str = "") -> dict[str, Any]:
    return {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind}}


def invoice_json(number: str, ident: str = "130", total: str = "50.00", customer: str = "58") -> str:
    return (
        f'{{"Id":"{ident}","DocNumber":"{number}","TotalAmt":{total},"SyncToken":"0",'
        f'"CustomerRef":{{"value":"{customer}"}},"CurrencyRef":{{"value":"USD"}}}}'
    )


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# -- payload ---------------------------------------------------------------------------------


def test_payload_maps_the_plan_onto_the_invoice_entity() -> None:
    payload = invoice_payload(make_plan(), REFS)
    assert payload["DocNumber"] == "INV-1"
    assert payload["CustomerRef"] == {"value": "58", "name": "Acme Corp"}
    assert payload["SalesTermRef"] == {"value": "3"}
    assert (payload["TxnDate"], payload["DueDate"]) == ("2024-02-01", "2024-03-02")
    assert payload["CustomField"] == [
        {"DefinitionId": "2", "Name": "Customer PO", "Type": "StringType", "StringValue": "PO-4711"}
    ]
    assert payload["BillAddr"] == {
        "Line1": "Acme AP",
        "Line2": "1 Main St",
        "Line3": "Floor 2",
        "City": "Springfield",
        "CountrySubDivisionCode": "IL",
        "PostalCode": "62701",
        "Country": "US",
    }
    [line] = payload["Line"]
    assert line["DetailType"] == "SalesItemLineDetail"
    assert line["SalesItemLineDetail"]["ItemRef"] == {"value": "7"}
    assert line["SalesItemLineDetail"]["ServiceDate"] == "2024-01-01"
    assert payload["CurrencyRef"] == {"value": "USD"}
    assert payload["PrivateNote"] == "January seats"


def test_decimals_are_written_as_json_numbers_from_their_digits() -> None:
    text = dumps(invoice_payload(make_plan(), REFS))
    assert '"Qty":1.5' in text
    assert '"UnitPrice":33.333' in text
    assert '"Amount":50.00' in text
    assert json.loads(text, parse_float=Decimal)["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == Decimal(
        "33.333"
    )
    assert dumps({"a": Decimal("1E+2"), "b": Decimal("0.0000001")}) == '{"a":100,"b":0.0000001}'


def test_encoder_refuses_floats_and_non_finite_amounts() -> None:
    with pytest.raises(PayloadError):
        dumps({"Amount": 1.5})
    with pytest.raises(PayloadError):
        dumps({"Amount": Decimal("NaN")})


def test_doc_number_longer_than_21_characters_is_refused() -> None:
    with pytest.raises(PayloadError, match="at most 21"):
        invoice_payload(make_plan(invoice_number="INV-2024-0000000000001"), REFS)


def test_unmapped_customer_and_sku_fall_back_to_the_ref_itself_and_the_default_item() -> None:
    payload = invoice_payload(
        make_plan(
            customer_ref="99",
            lines=(
                InvoiceLine(line_no=1, sku="OTHER", quantity=Decimal(1), unit_price=Money.of("1", "USD")),
            ),
        ),
        REFS,
    )
    assert payload["CustomerRef"]["value"] == "99"
    assert payload["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}


def test_request_ids_are_deterministic_uuids_within_quickbooks_limits() -> None:
    assert len(fresh_request_id()) == 36  # within both the single (50) and batch (36) limits
    assert fresh_request_id() != fresh_request_id()


def test_query_literals_escape_quotes_and_backslashes() -> None:
    assert quote("O'Neil\\7") == "'O\\'Neil\\\\7'"
    assert doc_number_query(["B", "A", "A"]) == "select * from Invoice where DocNumber in ('A','B')"
    assert doc_number_query(["A"]) == "select * from Invoice where DocNumber = 'A'"


# -- config ----------------------------------------------------------------------------------


def test_config_refuses_batches_over_30_and_non_numeric_realms(tmp_path: Path) -> None:
    base = {
        "name": "q",
        "realm_id": REALM,
        "client_id": "c",
        "client_secret_env": "X",
        "refresh_token_file": tmp_path / "t",
    }
    with pytest.raises(ValidationError, match="batch_size"):
        QuickBooksConfig(**{**base, "batch_size": 31})
    with pytest.raises(ValidationError, match="realm"):
        QuickBooksConfig(**{**base, "realm_id": "acme"})
    with pytest.raises(ValidationError, match="client_secret"):
        QuickBooksConfig(**{**base, "client_secret_env": None})


def test_sink_declares_its_port_and_shares_one_budget_per_realm(sink: QuickBooksSink) -> None:
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == {
        Capability.LOOKUP,
        Capability.BATCH_PUSH,
        Capability.NATIVE_IDEMPOTENCY,
        Capability.CREDIT_NOTES,
    }
    concurrency, rate = realm_budget(BASE, REALM, 10, 500)
    assert concurrency is realm_budget(BASE, REALM, 10, 500)[0]
    assert concurrency.limit == 10
    assert rate.rate == pytest.approx(500 / 60)


# -- push ------------------------------------------------------------------------------------


def test_push_sends_requestid_and_minorversion_and_reads_the_remote_total(sink: QuickBooksSink) -> None:
    plan = make_plan()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            body=f'{{"Invoice":{invoice_json("INV-1")}}}',
            headers={"intuit_tid": TID},
        )
        ref = sink.push(plan)
        call = mocked.calls[-1]
    assert set(query_of(call)) == {"requestid", "minorversion"} and query_of(call)["minorversion"] == ["75"]
    assert call.request.headers["Authorization"] == "Bearer access-1"
    assert call.request.headers["Content-Type"] == "application/json"
    assert ref.remote_id == "130"
    assert ref.total == Money.of("50.00", "USD")
    assert ref.correlation_id == TID


def test_throttled_create_is_retried_with_the_same_requestid(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=429,
            json=fault("SERVICE", "3001", "message=ThrottleExceeded; errorCode=003001"),
        )
        mocked.add(responses.POST, f"{COMPANY}/invoice", body=f'{{"Invoice":{invoice_json("INV-1")}}}')
        sink.push(make_plan())
        writes = [c for c in mocked.calls if "/invoice" in c.request.url]
    assert len(writes) == 2
    assert query_of(writes[0])["requestid"] == query_of(writes[1])["requestid"]


def test_persistent_throttling_is_retryable_with_the_60_second_pause(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=429,
            headers={"intuit_tid": TID},
            json=fault("SERVICE", "003001", "message=ThrottleExceeded"),
        )
        with pytest.raises(RetryableError) as caught:
            sink.push(make_plan())
    assert caught.value.retry_after == 60.0
    assert caught.value.correlation_id == TID


def test_validation_fault_is_rejected_with_provider_message_code_and_tid(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=400,
            headers={"intuit_tid": TID},
            json=fault("ValidationFault", "6210", "Account Period Closed", "The period is closed"),
        )
        with pytest.raises(RejectedError) as caught:
            sink.push(make_plan())
    error = caught.value
    assert (error.provider_code, error.correlation_id, error.status) == ("6210", TID, 400)
    assert "Account Period Closed: The period is closed" in str(error)
    assert TID in str(error)


def test_fault_in_a_200_answer_is_still_a_rejection(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=200,
            json=fault("ValidationFault", "6000", "A business validation error has occurred"),
        )
        with pytest.raises(RejectedError, match="business validation"):
            sink.push(make_plan())


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_on_create_is_uncertain_but_on_lookup_retryable(
    sink: QuickBooksSink, status: int
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=status,
            json=fault("SystemFault", "10000", "An application error has occurred"),
        )
        mocked.add(responses.GET, f"{COMPANY}/query", status=status, body="oops")
        with pytest.raises(UncertainError):
            sink.push(make_plan())
        with pytest.raises(RetryableError):
            sink.find([make_plan()])
        assert len([c for c in mocked.calls if "/invoice" in c.request.url]) == 1  # never re-sent blindly
        assert len([c for c in mocked.calls if "/query" in c.request.url]) == 3


def test_undecodable_2xx_to_a_create_is_uncertain(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, f"{COMPANY}/invoice", status=200, body="<html>gateway</html>")
        with pytest.raises(UncertainError):
            sink.push(make_plan())


def test_too_long_doc_number_is_rejected_before_any_call(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        with pytest.raises(RejectedError, match="at most 21"):
            sink.push(make_plan(invoice_number="X" * 22))
        assert len(mocked.calls) == 0
        assert sink.find([make_plan(invoice_number="X" * 22)]) == {}
        assert len(mocked.calls) == 0


def test_duplicate_doc_number_resolves_to_the_existing_invoice(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=400,
            json=fault("ValidationFault", "6140", "Duplicate Document Number Error"),
        )
        mocked.add(
            responses.GET,
            f"{COMPANY}/query",
            body=f'{{"QueryResponse":{{"Invoice":[{invoice_json("INV-1", "88", "50.00")}]}}}}',
        )
        ref = sink.push(make_plan())
    assert (ref.remote_id, ref.already_existed) == ("88", True)


def test_duplicate_doc_number_of_another_customer_is_rejected(sink: QuickBooksSink) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=400,
            json=fault("ValidationFault", "6140", "Duplicate Document Number Error"),
        )
        mocked.add(
            responses.GET,
            f"{COMPANY}/query",
            body=f'{{"QueryResponse":{{"Invoice":[{invoice_json("INV-1", customer="12")}]}}}}',
        )
        with pytest.raises(RejectedError, match="Duplicate Document Number"):
            sink.push(make_plan())


def test_401_refreshes_once_then_is_an_authentication_error(sink: QuickBooksSink, tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, TOKEN_URL, json=token_body(2))
        mocked.add(
            responses.POST,
            f"{COMPANY}/invoice",
            status=401,
            json=fault("AuthenticationFault", "3200", "message=AuthenticationFailed"),
        )
        with pytest.raises(AuthenticationError):
            sink.push(make_plan())
        tokens = [c for c in mocked.calls if c.request.url == TOKEN_URL]
        writes = [c for c in mocked.calls if "/invoice" in c.request.url]
    assert len(tokens) == 2 and len(writes) == 2
    assert query_of(writes[0])["requestid"] == query_of(writes[1])["requestid"]
    assert "refresh_token=refresh-1" in str(tokens[1].request.body)  # the rotated one
    assert json.loads((tmp_path / "token.json").read_text())["refresh_token"] == "refresh-2"


# -- find ------------------------------------------------------------------------------------


def test_find_looks_up_in_chunks_of_30_and_maps_by_doc_number(sink: QuickBooksSink) -> None:
    plans = [make_plan(n) for n in range(1, 66)]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(
            responses.GET,
            f"{COMPANY}/query",
            headers={"intuit_tid": TID},
            body=f'{{"QueryResponse":{{"Invoice":[{invoice_json("INV-7", "9", "12.5")}]}}}}',
        )
        mocked.add(responses.GET, f"{COMPANY}/query", body='{"QueryResponse":{}}')
        mocked.add(responses.GET, f"{COMPANY}/query", body='{"QueryResponse":{}}')
        found = sink.find(plans)
        queries = [query_of(c)["query"][0] for c in mocked.calls if "/query" in c.request.url]
    assert len(queries) == 3
    assert all(q.count("'") <= 60 for q in queries)
    assert sum(q.count("'") for q in queries) == 130
    ref = found[make_plan(7).idempotency_key]
    assert (ref.remote_id, ref.total, ref.already_existed, ref.correlation_id) == (
        "9",
        Money.of("12.5", "USD"),
        True,
        TID,
    )
    assert list(found) == [make_plan(7).idempotency_key]


# -- batch -----------------------------------------------------------------------------------


def test_batch_maps_per_item_results_by_bid(sink: QuickBooksSink) -> None:
    plans = [make_plan(n) for n in range(1, 5)]
    answer = {
        "BatchItemResponse": [
            {"bId": "b3", "Fault": fault("SystemFault", "10000", "An application error")["Fault"]},
            {"bId": "b0", "Invoice": {"Id": "1", "DocNumber": "INV-1", "TotalAmt": "50.00"}},
            {"bId": "b1", "Fault": fault("ValidationFault", "2500", "Invalid Reference Id")["Fault"]},
        ]
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, f"{COMPANY}/batch", json=answer, headers={"intuit_tid": TID})
        outcomes = sink.push_batch(plans)
        call = mocked.calls[-1]
    body = json.loads(call.request.body)
    assert [item["bId"] for item in body["BatchItemRequest"]] == ["b0", "b1", "b2", "b3"]
    assert all(item["operation"] == "create" for item in body["BatchItemRequest"])
    assert len(query_of(call)["requestid"][0]) <= 36
    assert outcomes[0].ref is not None and outcomes[0].ref.remote_id == "1"
    assert isinstance(outcomes[1].error, RejectedError) and outcomes[1].error.provider_code == "2500"
    assert isinstance(outcomes[2].error, UncertainError)  # no result for b2
    assert isinstance(outcomes[3].error, UncertainError)  # SystemFault: may or may not be written


def test_batch_resend_after_transient_item_faults_gets_a_fresh_requestid(sink: QuickBooksSink) -> None:
    plans = [make_plan(1)]
    failed = {"BatchItemResponse": [{"bId": "b0", "Fault": fault("SystemFault", "10000", "error")["Fault"]}]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, f"{COMPANY}/batch", json=failed)
        sink.push_batch(plans)
        sink.push_batch(plans)
        ids = [query_of(c)["requestid"][0] for c in mocked.calls if "/batch" in c.request.url]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_whole_batch_failure_is_each_items_error_and_bad_plans_never_leave(sink: QuickBooksSink) -> None:
    plans = [make_plan(n) for n in range(1, 4)] + [make_plan(9, invoice_number="Y" * 30)]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, f"{COMPANY}/batch", status=500, body="")
        outcomes = sink.push_batch(plans)
        [call] = [c for c in mocked.calls if "/batch" in c.request.url]
    assert len(json.loads(call.request.body)["BatchItemRequest"]) == 3
    assert [type(o.error) for o in outcomes] == [UncertainError] * 3 + [RejectedError]


def test_batches_are_split_at_batch_size(sink: QuickBooksSink) -> None:
    plans = [make_plan(n) for n in range(1, 62)]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, f"{COMPANY}/batch", json={"BatchItemResponse": []})
        sink.push_batch(plans)
        sizes = [
            len(json.loads(c.request.body)["BatchItemRequest"])
            for c in mocked.calls
            if "/batch" in c.request.url
        ]
    assert sizes == [30, 30, 1]


# -- OAuth refresh ---------------------------------------------------------------------------


def test_token_file_is_replaced_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"refresh_token": "old"}')
    path.chmod(0o644)
    TokenFile(path).write(TokenState(refresh_token="new", access_token="a", access_expires_at=1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenFile(path).read() == TokenState(refresh_token="new", access_token="a", access_expires_at=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_refresh_rotates_and_persists_and_sends_client_credentials(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    auth = RefreshTokenAuth(
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret=SECRET,
        token_file=path,
        initial_refresh_token="refresh-0",
        scopes=("com.intuit.quickbooks.accounting",),
    )
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.POST, TOKEN_URL, json=token_body(2))
        assert auth.access_token() == "access-1"
        assert auth.access_token() == "access-1"  # cached
        auth.invalidate()
        assert auth.access_token() == "access-2"
        first, second = (parse_qs(str(c.request.body)) for c in mocked.calls)
        assert mocked.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert first["refresh_token"] == ["refresh-0"] and second["refresh_token"] == ["refresh-1"]
    assert first["scope"] == ["com.intuit.quickbooks.accounting"]
    assert json.loads(path.read_text())["refresh_token"] == "refresh-2"


def test_invalid_grant_is_an_authentication_error_without_the_token(tmp_path: Path) -> None:
    auth = RefreshTokenAuth(
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret=SECRET,
        token_file=tmp_path / "t.json",
        initial_refresh_token="refresh-secret-0",
    )
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_grant"})
        with pytest.raises(AuthenticationError) as caught:
            auth.access_token()
    assert "invalid_grant" in str(caught.value)
    assert "refresh-secret-0" not in str(caught.value) and SECRET not in str(caught.value)
    assert not (tmp_path / "t.json").exists()


def test_missing_refresh_token_is_a_config_error(tmp_path: Path) -> None:
    from connector.errors import ConfigError

    with pytest.raises(ConfigError, match="no refresh token"):
        RefreshTokenAuth(
            token_url=TOKEN_URL, client_id="cid", client_secret=SECRET, token_file=tmp_path / "absent.json"
        )


# -- tax ---------------------------------------------------------------------------------------
UK_REFS = QuickBooksRefs(tax_mode="global", tax_codes=TaxCodeMap({"S:20": "2", "AE": "14"}))
US_REFS = QuickBooksRefs(tax_mode="us")


def uk_plan() -> InvoicePlan:
    lines = [("10.03", vat_tax("20"))] * 3 + [("200.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))]
    return make_priced_plan(sink="qbo", customer_ref="CUST-1", currency="GBP", lines=lines)


def us_plan() -> InvoicePlan:
    lines = [("100.00", sales_tax("8.875")), ("50.00", sales_tax("0"))]
    return make_priced_plan(sink="qbo", customer_ref="CUST-1", currency="USD", lines=lines)


def test_untaxed_plan_payload_carries_no_tax_fields_in_any_tax_mode() -> None:
    for refs in (REFS, US_REFS, UK_REFS):
        payload = invoice_payload(make_plan(), refs)
        assert "TxnTaxDetail" not in payload and "GlobalTaxCalculation" not in payload
        assert "TaxCodeRef" not in payload["Line"][0]["SalesItemLineDetail"]


def test_us_payload_marks_lines_tax_or_non_and_states_the_plans_total_tax() -> None:
    payload = invoice_payload(us_plan(), US_REFS)
    assert [line["SalesItemLineDetail"]["TaxCodeRef"] for line in payload["Line"]] == [
        {"value": "TAX"},
        {"value": "NON"},
    ]
    assert payload["TxnTaxDetail"] == {"TotalTax": Decimal("8.88")}
    assert "GlobalTaxCalculation" not in payload
    with_code = invoice_payload(us_plan(), QuickBooksRefs(tax_mode="us", txn_tax_code="7"))
    assert with_code["TxnTaxDetail"] == {"TxnTaxCodeRef": {"value": "7"}, "TotalTax": Decimal("8.88")}


def test_global_payload_has_a_tax_code_per_line_and_a_tax_line_per_rate() -> None:
    payload = invoice_payload(uk_plan(), UK_REFS, {"2": "4", "14": "16"})
    assert payload["GlobalTaxCalculation"] == "TaxExcluded"
    codes = [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in payload["Line"]]
    assert codes == ["2", "2", "2", "14"]
    detail = payload["TxnTaxDetail"]
    assert detail["TotalTax"] == Decimal("6.02")
    assert [(t["Amount"], t["TaxLineDetail"]["TaxRateRef"]["value"]) for t in detail["TaxLine"]] == [
        (Decimal("0"), "16"),
        (Decimal("6.02"), "4"),
    ]
    assert detail["TaxLine"][1]["TaxLineDetail"]["NetAmountTaxable"] == Decimal("30.09")
    assert '"TaxPercent":20' in dumps(payload)


def test_global_payload_leaves_the_tax_to_quickbooks_when_a_rate_id_is_unknown() -> None:
    payload = invoice_payload(uk_plan(), UK_REFS, {"2": "4"})  # code 14 has no single sales rate
    assert "TxnTaxDetail" not in payload
    assert payload["GlobalTaxCalculation"] == "TaxExcluded"


def test_unmapped_treatment_and_missing_tax_mode_are_payload_errors_with_the_problem_code() -> None:
    with pytest.raises(PayloadError) as caught:
        invoice_payload(uk_plan(), QuickBooksRefs(tax_mode="global", tax_codes=TaxCodeMap({"S": "2"})))
    assert caught.value.code == "tax_code_unmapped"
    assert "Line 4" in str(caught.value) and "AE" in str(caught.value)
    with pytest.raises(PayloadError) as unset:
        invoice_payload(uk_plan(), REFS)
    assert unset.value.code == "tax_code_unmapped" and "tax_mode" in str(unset.value)


def test_sales_rates_keep_codes_with_one_sales_rate_only() -> None:
    codes = [
        {"Id": "2", "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": "4"}}]}},
        {"Id": "3", "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": "5"}}] * 2}},
        {"Id": "9", "SalesTaxRateList": {}},
    ]
    assert sales_rates(codes) == {"2": "4"}


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"tax_mode": "global", "tax_codes": {"X:20": "2"}}, ["tax_codes['X:20'] = '2'", "'X'"]),
        ({"tax_mode": "global", "tax_codes": {"S:200": "2"}}, ["tax_codes['S:200'] = '2'", "out of range"]),
        ({"tax_mode": "global", "tax_codes": {"S:20": " "}}, ["tax_codes['S:20']", "empty"]),
        ({"tax_mode": "global"}, ["needs tax_codes"]),
        ({"tax_mode": "us", "tax_codes": {"S:20": "2"}}, ['tax_codes is for tax_mode = "global"']),
        ({"txn_tax_code": "7"}, ["txn_tax_code '7'"]),
        ({"tax_mode": "eu"}, ["tax_mode"]),
    ],
)
def test_tax_config_errors_name_the_key_and_value(
    tmp_path: Path, overrides: dict[str, Any], names: list[str]
) -> None:
    values: dict[str, Any] = {
        "name": "qbo",
        "realm_id": REALM,
        "client_id": "cid",
        "client_secret_env": "X",
        "refresh_token_file": tmp_path / "t.json",
    }
    with pytest.raises(ValidationError) as caught:
        QuickBooksConfig(**values, **overrides)
    for name in names:
        assert name in str(caught.value)


def taxed_sink(sink: QuickBooksSink, **overrides: Any) -> QuickBooksSink:
    config = sink.config.model_copy(update={"tax_mode": "global", "tax_codes": {"S:20": "2", "AE": "14"}})
    config = QuickBooksConfig.model_validate({**config.model_dump(), **overrides})
    retry = RetryPolicy(max_attempts=3, base_delay=0.0, sleep=lambda seconds: None)
    return QuickBooksSink(config, AdapterContext(), retry=retry)


TAX_CODES = (
    '{"QueryResponse":{"TaxCode":['
    '{"Id":"2","Active":true,"SalesTaxRateList":{"TaxRateDetail":[{"TaxRateRef":{"value":"4"}}]}},'
    '{"Id":"14","Active":false,"SalesTaxRateList":{"TaxRateDetail":[{"TaxRateRef":{"value":"16"}}]}}'
    "]}}"
)


def test_push_reads_the_tax_codes_once_and_reports_the_remote_total_and_tax(sink: QuickBooksSink) -> None:
    taxed = taxed_sink(sink)
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.GET, f"{COMPANY}/query", body=TAX_CODES)
        answer = '{"Invoice":{"Id":"9","DocNumber":"X","TotalAmt":236.12,"TxnTaxDetail":{"TotalTax":6.03}}}'
        mocked.add(responses.POST, f"{COMPANY}/invoice", body=answer)
        mocked.add(responses.POST, f"{COMPANY}/invoice", body=answer)
        first = taxed.push(uk_plan())
        taxed.push(uk_plan())
        assert query_of(mocked.calls[1])["query"] == ["select * from TaxCode startposition 1 maxresults 1000"]
        assert len([c for c in mocked.calls if "/query" in c.request.url]) == 1
        body = json.loads(mocked.calls[2].request.body, parse_float=Decimal)
    assert first.total == Money.of("236.12", "GBP") and first.tax == Money.of("6.03", "GBP")
    assert [t["TaxLineDetail"]["TaxRateRef"]["value"] for t in body["TxnTaxDetail"]["TaxLine"]] == ["16", "4"]


def test_check_names_configured_tax_codes_the_company_lacks_or_has_made_inactive(
    sink: QuickBooksSink,
) -> None:
    taxed = taxed_sink(sink, tax_codes={"S:20": "2", "AE": "14", "Z": "6"})
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, TOKEN_URL, json=token_body(1))
        mocked.add(responses.GET, f"{COMPANY}/query", body=TAX_CODES)
        with pytest.raises(ConfigError) as caught:
            taxed.check()
    assert "'14' (for AE)" in str(caught.value) and "'6' (for Z)" in str(caught.value)
    assert "'2' (for" not in str(caught.value)
