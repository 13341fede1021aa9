"""The xero sink's mapping and its handling of Xero's answers, with HTTP mocked by `responses`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import ValidationError

from adapters.xero import BearerToken, XeroConfig, XeroSink
from adapters.xero_payload import (
    InvoiceMapping,
    PayloadProblem,
    dumps_exact,
    invoice_payload,
    line_tax_amounts,
    parse_xero_date,
    request_key,
    validation_messages,
)
from connector.errors import AuthenticationError, ConfigError, RejectedError, RetryableError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoiceLine, InvoicePlan, Money
from connector.ports import AdapterContext, BatchInvoiceSink, Capability
from connector.tax import TaxCodeMap
from tests.support.factories import make_priced_plan, vat_tax

BASE = "https://api.xero.test/api.xro/2.0"
INVOICES = f"{BASE}/Invoices"
CONTACT_ID = "35d8ce51-059c-4e28-9160-25dc7375785b"


def make_plan(n: int = 1, **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": f"{n:064x}",
        "invoice_number": f"PC-{n:05d}",
        "sink": "xero",
        "customer_ref": "CUST-1",
        "po_number": f"PO-{n}",
        "po_key": f"default/coupa/{n}",
        "po_revision": 1,
        "billing_key": f"default/billing/sub-{n}/2024-01-01",
        "currency": "EUR",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "lines": (
            InvoiceLine(line_no=1, sku="SEAT", quantity=Decimal("3"), unit_price=Money.of("19.99", "EUR")),
            InvoiceLine(
                line_no=2,
                sku="SUPPORT",
                description="Support, January",
                quantity=Decimal("1.5"),
                unit_price=Money.of("100.1234", "EUR"),
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
    }
    values.update(overrides)
    return InvoicePlan(**values)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_sink(sleeps: Sleeps | None = None, **overrides: Any) -> XeroSink:
    values: dict[str, Any] = {
        "name": "xero",
        "base_url": BASE,
        "tenant_id": "tenant-1",
        "access_token_env": "UNUSED",
        "contact_ids": {"CUST-9": CONTACT_ID},
        "item_codes": {"SEAT": "SEAT-STD"},
    }
    values.update(overrides)
    retry = RetryPolicy(base_delay=0, sleep=sleeps if sleeps is not None else Sleeps())
    return XeroSink(XeroConfig(**values), AdapterContext(), auth=BearerToken("tok-123456"), retry=retry)


def element(plan: InvoicePlan, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Type": "ACCREC",
        "InvoiceID": f"id-{plan.invoice_number}",
        "InvoiceNumber": plan.invoice_number,
        "CurrencyCode": plan.currency,
        "Total": plan.total.amount,
        "Date": "/Date(1706745600000+0000)/",
        "StatusAttributeString": "OK",
    }
    base.update(fields)
    return base


def answer(*elements: dict[str, Any]) -> str:
    """An answer body with amounts as JSON numbers, the way Xero writes them."""
    return dumps_exact({"Status": "OK", "Invoices": list(elements)})


def sent(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body, parse_float=Decimal)


# -- mapping ----------------------------------------------------------------------------
def test_payload_maps_plan_to_an_accrec_invoice_with_exact_decimals() -> None:
    payload = invoice_payload(make_plan(), InvoiceMapping(item_codes={"SEAT": "SEAT-STD"}))

    assert payload["Type"] == "ACCREC"
    assert payload["InvoiceNumber"] == "PC-00001" and payload["Reference"] == "PO-1"
    assert payload["Contact"] == {"ContactNumber": "CUST-1"}
    assert (payload["Date"], payload["DueDate"], payload["CurrencyCode"]) == (
        "2024-02-01",
        "2024-03-02",
        "EUR",
    )
    assert payload["Status"] == "AUTHORISED" and payload["LineAmountTypes"] == "Exclusive"
    first, second = payload["LineItems"]
    assert first == {
        "Description": "SEAT",
        "Quantity": Decimal("3"),
        "UnitAmount": Decimal("19.99"),
        "AccountCode": "200",
        "LineAmount": Decimal("59.97"),
        "ItemCode": "SEAT-STD",
    }
    assert second["Description"] == "Support, January" and "ItemCode" not in second
    assert second["LineAmount"] == Decimal("150.19")
    text = dumps_exact(payload)
    assert '"UnitAmount":100.1234' in text and '"LineAmount":150.19' in text


def test_mapped_customer_is_sent_by_contact_id_and_status_is_configurable() -> None:
    mapping = InvoiceMapping(contact_ids={"CUST-9": CONTACT_ID}, status="DRAFT")

    payload = invoice_payload(make_plan(customer_ref="CUST-9"), mapping)

    assert payload["Contact"] == {"ContactID": CONTACT_ID} and payload["Status"] == "DRAFT"


def test_dumps_exact_never_goes_through_float() -> None:
    value = {"a": Decimal("12345678901234567.8901"), "b": [Decimal("0.10"), 1, "x", None, True]}

    assert dumps_exact(value) == '{"a":12345678901234567.8901,"b":[0.10,1,"x",null,true]}'
    assert json.loads(dumps_exact(value), parse_float=Decimal)["a"] == Decimal("12345678901234567.8901")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"invoice_number": "PC,1"}, "contains a comma"),
        ({"invoice_number": "N" * 256}, "1 to 255 characters"),
        (
            {
                "lines": (
                    InvoiceLine(
                        line_no=1, sku="S", quantity=Decimal(1), unit_price=Money.of("0.12345", "EUR")
                    ),
                )
            },
            "UnitAmount 0.12345 has more than 4 decimals",
        ),
    ],
)
def test_plans_xero_cannot_hold_are_refused_naming_the_field(
    overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(PayloadProblem, match=fragment):
        invoice_payload(make_plan(**overrides), InvoiceMapping())


def test_request_key_is_stable_for_a_batch_and_differs_between_batches() -> None:
    body = dumps_exact({"Invoices": []})

    key = request_key(["a", "b"], body)

    assert key == request_key(["a", "b"], body) and len(key) <= 128
    assert key != request_key(["b", "a"], body)
    assert key != request_key(["a", "b"], body + " ")


def test_xero_dates_are_read_in_both_forms() -> None:
    assert parse_xero_date("/Date(1518685950940+0000)/") == datetime(
        2018, 2, 15, 9, 12, 30, 940000, tzinfo=UTC
    )
    assert parse_xero_date("2024-02-01T00:00:00") == datetime(2024, 2, 1, tzinfo=UTC)


def test_validation_messages_include_those_filed_under_contact_and_lines() -> None:
    item = {
        "ValidationErrors": [{"Message": "top"}],
        "Contact": {"ValidationErrors": [{"Message": "Contact Name cannot be empty."}]},
        "LineItems": [{"ValidationErrors": [{"Message": "line"}]}, {}],
    }

    assert validation_messages(item) == ["top", "Contact Name cannot be empty.", "line"]


# -- config -----------------------------------------------------------------------------
def test_config_refuses_a_contact_id_that_is_not_a_guid() -> None:
    with pytest.raises(ValidationError, match="not a Xero ContactID"):
        XeroConfig(name="x", tenant_id="t", access_token_env="E", contact_ids={"C": "42"})


def test_config_needs_a_way_to_authenticate_and_at_most_50_per_batch() -> None:
    with pytest.raises(ValidationError, match="missing client_id"):
        XeroConfig(name="x", tenant_id="t")
    with pytest.raises(ValidationError, match="batch_size"):
        XeroConfig(name="x", tenant_id="t", access_token_env="E", batch_size=51)


def test_sink_declares_its_port_and_capabilities() -> None:
    sink = make_sink()

    assert isinstance(sink, BatchInvoiceSink)
    assert XeroSink.capabilities == {
        Capability.LOOKUP,
        Capability.BATCH_PUSH,
        Capability.NATIVE_IDEMPOTENCY,
        Capability.CREDIT_NOTES,
    }


# -- push -------------------------------------------------------------------------------
@responses.activate
def test_push_sends_tenant_auth_and_idempotency_key_and_reports_xeros_total() -> None:
    plan = make_plan()
    responses.put(
        INVOICES, body=answer(element(plan, Total=Decimal("209.98"))), headers={"Xero-Correlation-Id": "c-1"}
    )
    responses.put(INVOICES, body=answer(element(plan, Total=Decimal("209.98"))))

    ref = make_sink().push(plan)
    make_sink().push(plan)

    first, second = responses.calls
    assert first.request.headers["xero-tenant-id"] == "tenant-1"
    assert first.request.headers["Authorization"] == "Bearer tok-123456"
    assert first.request.headers["Idempotency-Key"] == second.request.headers["Idempotency-Key"]
    assert parse_qs(urlsplit(first.request.url).query) == {"summarizeErrors": ["false"], "unitdp": ["4"]}
    assert sent(first)["Invoices"][0]["InvoiceNumber"] == "PC-00001"
    assert ref.remote_id == "id-PC-00001" and ref.correlation_id == "c-1" and not ref.already_existed
    assert ref.total == Money.of("209.98", "EUR")
    assert isinstance(ref.total.amount, Decimal)


@responses.activate
def test_batch_outcomes_per_element_ok_rejected_and_taken_number_resolved_by_lookup() -> None:
    ok, bad, taken = make_plan(1), make_plan(2), make_plan(3)
    responses.put(
        INVOICES,
        body=answer(
            element(ok),
            element(
                bad,
                StatusAttributeString="ERROR",
                ValidationErrors=[{"Message": "Account code '200' is not valid"}],
            ),
            element(
                taken,
                StatusAttributeString="ERROR",
                ValidationErrors=[{"Message": "Invoice # must be unique."}],
            ),
        ),
    )
    responses.get(INVOICES, body=answer(element(taken, InvoiceID="existing", Total=Decimal("1.00"))))

    outcomes = make_sink().push_batch([ok, bad, taken])

    assert outcomes[0].ref is not None and outcomes[0].ref.remote_id == "id-PC-00001"
    assert isinstance(outcomes[1].error, RejectedError)
    assert "Account code '200' is not valid" in outcomes[1].error.message
    assert outcomes[2].ref is not None and outcomes[2].ref.remote_id == "existing"
    assert outcomes[2].ref.already_existed and outcomes[2].ref.total == Money.of("1.00", "EUR")
    lookup = parse_qs(urlsplit(responses.calls[1].request.url).query)
    assert lookup["InvoiceNumbers"] == ["PC-00003"] and lookup["page"] == ["1"]


@responses.activate
def test_locally_impossible_plan_is_rejected_without_a_call_and_neighbours_go_on() -> None:
    good = make_plan(1)
    responses.put(INVOICES, body=answer(element(good)))

    outcomes = make_sink().push_batch([make_plan(2, invoice_number="A,B"), good])

    assert isinstance(outcomes[0].error, RejectedError) and outcomes[1].ref is not None
    assert [i["InvoiceNumber"] for i in sent(responses.calls[0])["Invoices"]] == ["PC-00001"]


@responses.activate
def test_two_plans_with_one_number_in_a_batch_reject_the_second() -> None:
    first = make_plan(1)
    responses.put(INVOICES, body=answer(element(first)))

    outcomes = make_sink().push_batch([first, make_plan(2, invoice_number=first.invoice_number)])

    assert outcomes[0].ref is not None
    assert isinstance(outcomes[1].error, RejectedError) and "also used by plan" in outcomes[1].error.message


@responses.activate
def test_server_error_on_put_is_uncertain_and_not_resent() -> None:
    responses.put(INVOICES, status=500, body="{}")

    with pytest.raises(UncertainError):
        make_sink().push(make_plan())
    assert len(responses.calls) == 1


@responses.activate
def test_unreadable_2xx_on_put_is_uncertain() -> None:
    responses.put(INVOICES, body='{"Invoices": [')

    with pytest.raises(UncertainError, match="unreadable"):
        make_sink().push(make_plan())


@responses.activate
def test_answer_for_fewer_invoices_than_sent_is_uncertain_for_all() -> None:
    plans = [make_plan(1), make_plan(2)]
    responses.put(INVOICES, body=answer(element(plans[0])))

    outcomes = make_sink().push_batch(plans)

    assert all(isinstance(o.error, UncertainError) for o in outcomes)


@responses.activate
def test_whole_request_validation_exception_is_rejected_with_xeros_messages() -> None:
    responses.put(
        INVOICES,
        status=400,
        json={
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": [{"ValidationErrors": [{"Message": "The Idempotency-Key was already used"}]}],
        },
    )

    outcomes = make_sink().push_batch([make_plan(1), make_plan(2)])

    for outcome in outcomes:
        assert isinstance(outcome.error, RejectedError)
        assert outcome.error.provider_code == "ValidationException"
        assert "Idempotency-Key was already used" in outcome.error.message


@responses.activate
def test_minute_limit_waits_retry_after_then_succeeds() -> None:
    plan = make_plan()
    limited = {"Retry-After": "7", "X-Rate-Limit-Problem": "minute", "X-MinLimit-Remaining": "0"}
    responses.put(INVOICES, status=429, headers=limited)
    responses.put(INVOICES, body=answer(element(plan)), headers={"X-MinLimit-Remaining": "41"})
    sleeps = Sleeps()
    sink = make_sink(sleeps)

    ref = sink.push(plan)

    assert ref.remote_id == "id-PC-00001" and sleeps == [7.0]
    assert sink.limits.minute_remaining == 41


@responses.activate
def test_daily_limit_parks_at_once() -> None:
    headers = {"Retry-After": "66975", "X-Rate-Limit-Problem": "day", "X-DayLimit-Remaining": "0"}
    responses.put(INVOICES, status=429, headers=headers)
    sleeps = Sleeps()
    sink = make_sink(sleeps)

    with pytest.raises(RetryableError) as caught:
        sink.push(make_plan())

    assert caught.value.park and caught.value.retry_after == 66975 and caught.value.provider_code == "day"
    assert sleeps == [] and len(responses.calls) == 1
    assert sink.limits.day_remaining == 0


@responses.activate
def test_refused_token_raises_authentication_error() -> None:
    responses.put(INVOICES, status=401, json={"Title": "Unauthorized", "Detail": "TokenExpired"})

    with pytest.raises(AuthenticationError):
        make_sink().push(make_plan())


# -- find -------------------------------------------------------------------------------
@responses.activate
def test_find_ignores_bills_and_pages_past_100() -> None:
    plan = make_plan(5)
    bills = [element(plan, Type="ACCPAY", InvoiceID=f"bill-{i}") for i in range(120)]
    responses.get(INVOICES, body=answer(element(plan, Total=Decimal("12.5")), *bills[:99]))
    responses.get(INVOICES, body=answer(*bills[99:]))

    found = make_sink().find([plan, make_plan(6)])

    assert list(found) == [plan.idempotency_key]
    ref = found[plan.idempotency_key]
    assert ref.remote_id == "id-PC-00005" and ref.already_existed and ref.total == Money.of("12.50", "EUR")
    pages = [parse_qs(urlsplit(c.request.url).query)["page"] for c in responses.calls]
    assert pages == [["1"], ["2"]]
    query = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert query["InvoiceNumbers"] == ["PC-00005,PC-00006"]
    assert query["Statuses"] == ["DRAFT,SUBMITTED,AUTHORISED,PAID,VOIDED,DELETED"]


@responses.activate
def test_find_batches_numbers_into_several_lookups() -> None:
    responses.get(INVOICES, body=answer())

    make_sink().find([make_plan(n) for n in range(120)])

    sizes = [
        len(parse_qs(urlsplit(c.request.url).query)["InvoiceNumbers"][0].split(",")) for c in responses.calls
    ]
    assert sizes == [50, 50, 20]


# -- OAuth ------------------------------------------------------------------------------
@responses.activate
def test_refused_access_token_is_refreshed_once_and_the_put_resent_with_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_SECRET", "client-secret-xyz")
    monkeypatch.setenv("XERO_FIRST_REFRESH", "refresh-0")
    token_url = "https://identity.xero.test/connect/token"
    responses.post(
        token_url, json={"access_token": "access-1", "expires_in": 1800, "refresh_token": "refresh-1"}
    )
    responses.post(
        token_url, json={"access_token": "access-2", "expires_in": 1800, "refresh_token": "refresh-2"}
    )
    plan = make_plan()
    responses.put(INVOICES, status=401, json={"Title": "Unauthorized", "Detail": "TokenExpired"})
    responses.put(INVOICES, body=answer(element(plan)))
    config = XeroConfig(
        name="xero",
        base_url=BASE,
        tenant_id="tenant-1",
        token_url=token_url,
        client_id="client-1",
        client_secret_env="XERO_SECRET",
        refresh_token_file=Path("xero-token.json"),
        refresh_token_env="XERO_FIRST_REFRESH",
    )
    sink = XeroSink(config, AdapterContext(base_dir=tmp_path), retry=RetryPolicy(sleep=Sleeps()))

    ref = sink.push(plan)

    assert ref.remote_id == "id-PC-00001"
    puts = [c.request for c in responses.calls if c.request.method == "PUT"]
    assert [r.headers["Authorization"] for r in puts] == ["Bearer access-1", "Bearer access-2"]
    assert puts[0].headers["Idempotency-Key"] == puts[1].headers["Idempotency-Key"]
    token_file = tmp_path / "xero-token.json"
    assert json.loads(token_file.read_text())["refresh_token"] == "refresh-2"
    assert token_file.stat().st_mode & 0o777 == 0o600


@responses.activate
def test_find_warns_when_the_existing_invoice_is_dated_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    plan = make_plan(5)  # issued 2024-02-01
    responses.get(INVOICES, body=answer(element(plan, Date="/Date(1709251200000+0000)/")))  # 2024-03-01

    with caplog.at_level("WARNING", logger="po_connector"):
        found = make_sink().find([plan])

    assert plan.idempotency_key in found
    assert "dated 2024-03-01, the plan says 2024-02-01" in caplog.text


# -- tax --------------------------------------------------------------------------------
UK = InvoiceMapping(tax_types=TaxCodeMap({"S:20": "OUTPUT2", "AE": "ECZROUTPUTSERVICES"}))
AE = vat_tax("0", "AE", reason="VATEX-EU-AE")


def taxed(lines: list[tuple[str, Any]]) -> InvoicePlan:
    return make_priced_plan(sink="xero", customer_ref="CUST-9", currency="GBP", lines=lines)


def test_line_tax_amounts_put_the_groups_remainder_on_its_largest_line() -> None:
    plan = taxed(
        [("10.03", vat_tax("20")), ("10.04", vat_tax("20")), ("10.02", vat_tax("20")), ("99.00", AE)]
    )
    amounts = line_tax_amounts(plan)
    # per line 2.01 + 2.01 + 2.00 = 6.02 vs the group's 30.09 x 20% = 6.02: nothing to move
    assert amounts == {1: Decimal("2.01"), 2: Decimal("2.01"), 3: Decimal("2.00"), 4: Decimal("0.00")}
    three = taxed([("10.03", vat_tax("20")), ("10.03", vat_tax("20")), ("20.06", vat_tax("20"))])
    amounts = line_tax_amounts(three)
    assert amounts == {1: Decimal("2.01"), 2: Decimal("2.01"), 3: Decimal("4.00")}  # 4.01 - 0.01
    assert sum(amounts.values()) == three.tax_total.amount == Decimal("8.02")


def test_line_tax_amounts_use_the_billing_stated_amounts_when_every_line_states_one() -> None:
    stated = taxed([("10.03", vat_tax("20", amount="2.00")), ("10.03", vat_tax("20", amount="2.02"))])
    assert line_tax_amounts(stated) == {1: Decimal("2.00"), 2: Decimal("2.02")}
    partly = taxed([("10.03", vat_tax("20", amount="2.00")), ("10.03", vat_tax("20"))])
    assert line_tax_amounts(partly) == {1: Decimal("2.00"), 2: Decimal("2.01")}  # group 4.01 computed


def test_taxed_payload_is_exclusive_with_tax_type_and_amount_per_line() -> None:
    mapping = InvoiceMapping(tax_types=UK.tax_types, line_amount_types="Inclusive")
    payload = invoice_payload(taxed([("10.03", vat_tax("20")), ("50.00", AE)]), mapping)
    assert payload["LineAmountTypes"] == "Exclusive"
    assert [(line["TaxType"], line["TaxAmount"]) for line in payload["LineItems"]] == [
        ("OUTPUT2", Decimal("2.01")),
        ("ECZROUTPUTSERVICES", Decimal("0.00")),
    ]
    untaxed = invoice_payload(make_plan(), mapping)
    assert untaxed["LineAmountTypes"] == "Inclusive"
    assert all("TaxType" not in line and "TaxAmount" not in line for line in untaxed["LineItems"])


def test_unmapped_treatment_is_a_payload_problem_with_its_code() -> None:
    with pytest.raises(PayloadProblem) as caught:
        invoice_payload(taxed([("10.00", vat_tax("5"))]), UK)
    assert caught.value.code == "tax_code_unmapped"
    assert "line 1" in str(caught.value) and "S:5" in str(caught.value)


def test_push_reports_xeros_total_and_total_tax_and_refuses_unmapped_plans_without_a_call() -> None:
    sink = make_sink(tax_types={"S:20": "OUTPUT2"})
    plan = taxed([("10.03", vat_tax("20"))] * 3)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.PUT,
            INVOICES,
            body=answer(element(plan, Total=Decimal("36.11"), TotalTax=Decimal("6.02"), CurrencyCode="GBP")),
        )
        ref = sink.push(plan)
        [unmapped] = sink.push_batch([taxed([("1.00", AE)])])
        assert len(mocked.calls) == 1
        body = sent(mocked.calls[0])
    assert ref.total == Money.of("36.11", "GBP") and ref.tax == Money.of("6.02", "GBP")
    assert sum(line["TaxAmount"] for line in body["Invoices"][0]["LineItems"]) == Decimal("6.02")
    assert isinstance(unmapped.error, RejectedError)
    assert unmapped.error.provider_code == "tax_code_unmapped"


def test_check_names_tax_types_that_are_not_active_revenue_rates() -> None:
    sink = make_sink(tax_types={"S:20": "OUTPUT2", "S:5": "INPUT2", "E": "TAX009"})
    rates = {
        "TaxRates": [
            {"TaxType": "OUTPUT2", "Status": "ACTIVE", "CanApplyToRevenue": True},
            {"TaxType": "INPUT2", "Status": "ACTIVE", "CanApplyToRevenue": False},
            {"TaxType": "TAX009", "Status": "DELETED", "CanApplyToRevenue": True},
        ]
    }
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, f"{BASE}/TaxRates", json=rates)
        with pytest.raises(ConfigError) as caught:
            sink.check()
    text = str(caught.value)
    assert "'INPUT2' (for S:5)" in text and "'TAX009' (for E)" in text and "'OUTPUT2' (for" not in text


@pytest.mark.parametrize(
    ("tax_types", "names"),
    [
        ({"Q:20": "OUTPUT2"}, ["tax_types['Q:20'] = 'OUTPUT2'"]),
        ({"S:20": "output2"}, ["tax_types['S:20'] = 'output2'", "upper-case"]),
        ({"S:x": "OUTPUT2"}, ["tax_types['S:x']", "not a number"]),
    ],
)
def test_tax_types_config_errors_name_the_key_and_value(tax_types: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        XeroConfig(name="xero", tenant_id="t", access_token_env="X", tax_types=tax_types)
    for name in names:
        assert name in str(caught.value)
