"""The NetSuite sink's tax: SuiteTax Tax Details with the override, tax codes checked for doctor."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import responses
from pydantic import ValidationError

from adapters.netsuite import NetSuiteConfig, NetSuiteSink
from connector.errors import ConfigError, RejectedError
from connector.http import RetryPolicy
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from tests.support.factories import make_priced_plan, sales_tax, vat_tax

BASE = "https://1234567.suitetalk.api.netsuite.com/services/rest"
TAX_CODES = {"S:20": "20", "AE": "30", "SALES_TAX:US-NY": "11"}


def make_sink(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> NetSuiteSink:
    monkeypatch.setenv("NS_TOKEN", "ns-unit-token")
    values: dict[str, Any] = {
        "name": "ns",
        "base_url": BASE,
        "access_token_env": "NS_TOKEN",
        "customer_ids": {"CUST-ACME": "101"},
        "item_ids": {"SKU-1": "501", "SKU-2": "502", "SKU-3": "503"},
        "tax_codes": TAX_CODES,
    }
    values.update(overrides)
    return NetSuiteSink(
        NetSuiteConfig(**values), AdapterContext(), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None)
    )


def three_lines_at_twenty_percent() -> InvoicePlan:
    # 3 x 10.03 at 20%: 2.006 per line rounds to 2.01, but the group's tax is 30.09 x 20% = 6.02.
    return make_priced_plan(currency="GBP", lines=[("10.03", vat_tax("20"))] * 3)


def test_a_taxed_plan_states_its_tax_per_line_with_the_override_on(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = three_lines_at_twenty_percent()
    body = make_sink(monkeypatch).invoice_body(plan)

    assert body["taxDetailsOverride"] is True
    references = [line["taxDetailsReference"] for line in body["item"]["items"]]
    assert references == ["L1", "L2", "L3"]
    taxes = body["taxDetails"]["items"]
    assert [tax["taxDetailsReference"] for tax in taxes] == references
    assert {tax["taxCode"]["id"] for tax in taxes} == {"20"}
    assert [tax["taxBasis"] for tax in taxes] == [Decimal("10.03")] * 3
    assert all(tax["taxRate"] == Decimal(20) for tax in taxes)
    # The lines' tax sums to the plan's tax exactly, the remainder on one line.
    assert sum(tax["taxAmount"] for tax in taxes) == plan.tax_total.amount == Decimal("6.02")
    assert sorted(tax["taxAmount"] for tax in taxes) == [Decimal("2.00"), Decimal("2.01"), Decimal("2.01")]


def test_billing_stated_line_tax_is_carried_as_stated(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_priced_plan(
        currency="USD",
        lines=[("2000.00", sales_tax("8.875", "US-NY", amount="177.50"))],
    )
    body = make_sink(monkeypatch).invoice_body(plan)

    (tax,) = body["taxDetails"]["items"]
    assert tax["taxCode"] == {"id": "11"}
    assert tax["taxAmount"] == Decimal("177.50")


def test_reverse_charge_line_is_sent_with_its_zero_rate_code(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_priced_plan(currency="EUR", lines=[("500.00", vat_tax("0", "AE", reason="VATEX-EU-AE"))])
    (tax,) = make_sink(monkeypatch).invoice_body(plan)["taxDetails"]["items"]
    assert tax["taxCode"] == {"id": "30"}
    assert tax["taxAmount"] == Decimal(0)


def test_an_untaxed_plan_sends_no_tax_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_priced_plan(currency="GBP", lines=[("10.00", vat_tax("20"))])
    untaxed = InvoicePlan.model_validate(
        {**plan.model_dump(), "lines": [{**line.model_dump(), "tax": None} for line in plan.lines]}
    )
    body = make_sink(monkeypatch).invoice_body(untaxed)
    assert "taxDetailsOverride" not in body
    assert "taxDetails" not in body
    assert all("taxDetailsReference" not in line for line in body["item"]["items"])


@responses.activate
def test_a_treatment_without_a_tax_code_is_rejected_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_priced_plan(currency="GBP", lines=[("10.00", vat_tax("5"))])
    sink = make_sink(monkeypatch)
    with pytest.raises(RejectedError) as caught:
        sink.push(plan)
    assert caught.value.provider_code == "tax_code_unmapped"
    assert "line 1" in str(caught.value) and "S:5" in str(caught.value) and "tax_codes" in str(caught.value)
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("codes", "wanted"),
    [
        ({"X:20": "20"}, "'X' is not a tax category"),
        ({"S:20": "VAT20"}, "internal id of a salesTaxItem"),
        ({"S:abc": "20"}, "is not a number"),
    ],
)
def test_config_refuses_bad_tax_code_entries(codes: dict[str, str], wanted: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NetSuiteConfig(name="ns", base_url=BASE, access_token_env="NS_TOKEN", tax_codes=codes)
    assert wanted in str(caught.value)


def _tax_code(code: str, **fields: Any) -> None:
    responses.get(f"{BASE}/record/v1/salesTaxItem/{code}", json={"id": code, "isInactive": False, **fields})


@responses.activate
def test_check_passes_when_every_tax_code_is_active_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    _tax_code("20", name="UK 20%", rate=20)
    _tax_code("30", name="EU RC", rate="0.0%")
    _tax_code("11", name="NY", rate=8.875)
    make_sink(monkeypatch).check()
    assert len(responses.calls) == 3


@responses.activate
def test_check_names_each_missing_inactive_or_mis_rated_tax_code(monkeypatch: pytest.MonkeyPatch) -> None:
    responses.get(
        f"{BASE}/record/v1/salesTaxItem/20",
        status=404,
        json={
            "status": 404,
            "o:errorDetails": [{"detail": "no such record", "o:errorCode": "NONEXISTENT_ID"}],
        },
    )
    _tax_code("30", name="EU RC", rate=0, isInactive=True)
    _tax_code("11", name="NY old", rate=8.5)
    with pytest.raises(ConfigError) as caught:
        make_sink(monkeypatch).check()
    text = str(caught.value)
    assert "tax_codes['S:20'] = '20' is not a tax code" in text
    assert "tax_codes['AE'] = '30' (EU RC) is inactive" in text
    assert "tax_codes['SALES_TAX:US-NY'] = '11' (NY old) is 8.5%" not in text  # no rate in the key
    assert text.startswith("ns: ")


@responses.activate
def test_check_finds_a_code_whose_rate_is_not_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    _tax_code("20", name="UK reduced", rate=5)
    with pytest.raises(ConfigError, match=r"tax_codes\['S:20'\] = '20' \(UK reduced\) is 5%, not 20%"):
        make_sink(monkeypatch, tax_codes={"S:20": "20"}).check()


@responses.activate
def test_check_without_tax_codes_asks_suiteql(monkeypatch: pytest.MonkeyPatch) -> None:
    responses.post(f"{BASE}/query/v1/suiteql", json={"items": [], "hasMore": False})
    make_sink(monkeypatch, tax_codes={}).check()
    (call,) = responses.calls
    assert "externalid IN ('')" in json.loads(call.request.body)["q"]
