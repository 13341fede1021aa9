"""The cXML invoice sink over real HTTP against a buyer endpoint that checks the DTD and numbers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

import adapters.cxml_invoice_document
from adapters.cxml_invoice import CxmlInvoiceConfig, CxmlInvoiceSink
from adapters.cxml_invoice_document import read_status
from connector.errors import AuthenticationError, RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money
from connector.ports import AdapterContext
from tests.sandboxes.base import Fault
from tests.sandboxes.cxml_buyer import INVOICE_PATH, CxmlBuyerSandbox
from tests.support.factories import make_buyer, make_seller, make_taxed_plan, sales_tax, vat
from tests.support.shared import shared_fixture
from tests.unit.test_cxml_invoice import make_plan

SECRET = "buyer-shared-secret"


@pytest.fixture
def buyer() -> Iterator[CxmlBuyerSandbox]:
    box = CxmlBuyerSandbox(
        shared_secret=SECRET,
        dtd_path=shared_fixture("cxml/InvoiceDetail-1.2.037.dtd"),
        orders={"6112": {1, 2}, "PO-1": {1, 2, 3}},
    )
    with box:
        yield box


def make_sink(
    buyer: CxmlBuyerSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    context: AdapterContext | None = None,
    **overrides: Any,
) -> CxmlInvoiceSink:
    monkeypatch.setenv("BUYER_SECRET", SECRET)
    values: dict[str, Any] = {
        "name": "acme-invoices",
        "url": f"{buyer.url}{INVOICE_PATH}",
        "from_domain": "DUNS",
        "from_identity": "supplier-duns",
        "to_domain": "NetworkID",
        "to_identity": "buyer-network-id",
        "sender_domain": "DUNS",
        "sender_identity": "supplier-duns",
        "shared_secret_env": "BUYER_SECRET",
        "archive_dir": tmp_path / "sent",
        "read_timeout": 1.0,
    }
    values.update(overrides)
    return CxmlInvoiceSink(
        CxmlInvoiceConfig(**values),
        context or AdapterContext(),
        retry=RetryPolicy(max_attempts=2, sleep=lambda s: None),
    )


def test_buyer_accepts_the_invoice_and_records_what_it_echoes(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch, deployment_mode="test")
    plan = make_plan()

    ref = sink.push(plan)

    assert not ref.already_existed
    recorded = buyer.invoices[plan.invoice_number]
    assert recorded["po_number"] == "6112"
    assert recorded["deployment_mode"] == "test"
    assert [(line["po_line"], line["part"], line["uom"]) for line in recorded["lines"]] == [
        ("1", "SKU-SEAT-01", "EA"),
        ("2", "SUPPORT", "MON"),
    ]
    assert (recorded["due_amount"], recorded["currency"]) == (Decimal("390.07"), "USD")
    assert ref.total is not None and ref.total.amount == recorded["due_amount"]


def test_second_send_of_the_same_number_is_answered_as_already_delivered(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_plan()
    make_sink(buyer, tmp_path / "first", monkeypatch).push(plan)

    again = make_sink(buyer, tmp_path / "second", monkeypatch).push(plan)

    assert again.already_existed
    assert len(buyer.invoices) == 1
    assert buyer.count("POST", INVOICE_PATH) == 2


def test_wrong_shared_secret_is_an_authentication_error(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_SECRET", "not-the-buyer-secret")
    sink = make_sink(buyer, tmp_path, monkeypatch, shared_secret_env="WRONG_SECRET")

    with pytest.raises(AuthenticationError, match="401 Unauthorized"):
        sink.push(make_plan())
    assert buyer.invoices == {}
    assert sink.find([make_plan()]) == {}


def test_unknown_po_line_is_rejected_with_the_buyer_text(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    plan = make_plan(po_number="9999")

    with pytest.raises(RejectedError, match="Could not find order header 9999"):
        sink.push(plan)


def test_fault_after_delivery_is_uncertain_then_the_resend_resolves_it(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    plan = make_plan()
    buyer.faults.queue(Fault("status", 500, when="after"))

    with pytest.raises(UncertainError):
        sink.push(plan)
    assert plan.invoice_number in buyer.invoices
    # Nothing proves delivery yet, so find() must not claim it: the resend decides.
    assert sink.find([plan]) == {}

    ref = sink.push(plan)

    assert ref.already_existed
    assert len(buyer.invoices) == 1
    assert (
        sink.find([plan])[plan.idempotency_key].remote_id == buyer.invoices[plan.invoice_number]["payload_id"]
    )


def test_fault_before_delivery_is_resent_as_new(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    plan = make_plan()
    buyer.faults.queue(Fault("reset", when="before"))

    with pytest.raises(UncertainError):
        sink.push(plan)
    assert sink.find([plan]) == {}

    assert not sink.push(plan).already_existed
    assert len(buyer.invoices) == 1


def test_answers_without_http_status_codes_are_read_from_the_cxml_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CxmlBuyerSandbox(shared_secret=SECRET, http_status_mirrors_code=False) as box:
        sink = make_sink(box, tmp_path, monkeypatch)
        plan = make_plan()
        assert not sink.push(plan).already_existed
        assert sink.push(plan).already_existed
        monkeypatch.setenv("WRONG_SECRET", "nope-nope")
        with pytest.raises(AuthenticationError, match="401"):
            make_sink(box, tmp_path / "other", monkeypatch, shared_secret_env="WRONG_SECRET").push(
                make_plan("INV-2")
            )


# -- tax ---------------------------------------------------------------------------------------
def vat_plan() -> InvoicePlan:
    """PO-1 with a 19% line, a 7% line and a reverse-charged line."""
    return make_taxed_plan(
        taxes=(vat("19"), vat("7"), vat("0", "AE", exemption_reason_code="VATEX-EU-AE")),
        price="33.33",
        quantity="3",
        buyer=make_buyer("FR"),
    )


def sales_tax_plan() -> InvoicePlan:
    """PO-1 with three equal New York lines whose per-line rounding is a cent over the group's."""
    ny = sales_tax("8.875", "US-NY")
    return make_taxed_plan(
        taxes=(ny, ny, ny), currency="USD", price="33.33", quantity="1", buyer=make_buyer("US")
    )


def test_taxed_invoice_is_accepted_and_the_buyer_holds_the_plans_net_tax_and_gross(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller("DE")))
    plan = vat_plan()

    ref = sink.push(plan)

    recorded = buyer.invoices[plan.invoice_number]
    # 99.99 at 19% = 19.00, at 7% = 7.00, reverse charge 0: 26.00 on 299.97 net
    assert (recorded["subtotal"], recorded["tax"], recorded["due_amount"], recorded["currency"]) == (
        Decimal("299.97"),
        Decimal("26.00"),
        Decimal("325.97"),
        "EUR",
    )
    assert recorded["subtotal"] == plan.net_total.amount
    assert recorded["tax"] == plan.tax_total.amount
    assert recorded["due_amount"] == plan.total.amount
    assert [line["tax"] for line in recorded["lines"]] == [Decimal("19.00"), Decimal("7.00"), Decimal("0.00")]
    assert recorded["supplier_tax_id"] == "DE123456789"
    assert (ref.total, ref.tax) == (plan.total, plan.tax_total)
    found = sink.find([plan])[plan.idempotency_key]
    assert (found.total, found.tax) == (Money(amount=recorded["due_amount"], currency="EUR"), plan.tax_total)


def test_sales_tax_lines_carry_the_groups_rounding_so_the_buyer_accepts_them(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller("US")))
    plan = sales_tax_plan()

    ref = sink.push(plan)

    recorded = buyer.invoices[plan.invoice_number]
    # 2.958 -> 2.96 per line is 8.88; the group's 99.99 x 8.875% = 8.874 -> 8.87
    assert [line["tax"] for line in recorded["lines"]] == [Decimal("2.95"), Decimal("2.96"), Decimal("2.96")]
    assert (recorded["tax"], recorded["due_amount"]) == (Decimal("8.87"), Decimal("108.86"))
    assert (recorded["tax"], recorded["due_amount"]) == (plan.tax_total.amount, plan.total.amount)
    assert recorded["supplier_tax_id"] == ""  # a US seller has no VAT id to state
    assert (ref.total, ref.tax) == (plan.total, plan.tax_total)


def test_buyer_refuses_line_tax_that_does_not_sum_to_the_invoice_tax(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    plan = sales_tax_plan()
    shares = adapters.cxml_invoice_document.plan_line_taxes

    def per_line_rounding_only(plan: InvoicePlan) -> dict[int, Money]:
        # what a renderer that rounds each line and forgets the group's remainder would send
        return {
            number: money + Money.of("0.01", money.currency) if number == 1 else money
            for number, money in shares(plan).items()
        }

    monkeypatch.setattr(adapters.cxml_invoice_document, "plan_line_taxes", per_line_rounding_only)

    with pytest.raises(
        RejectedError, match=re.escape("Line tax amounts sum to 8.88 USD, the invoice tax is 8.87 USD")
    ) as caught:
        sink.push(plan)
    assert caught.value.provider_code == "417"
    assert buyer.invoices == {}
    assert sink.find([plan]) == {}


def test_buyer_refuses_a_due_amount_that_is_not_subtotal_plus_tax(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(buyer, tmp_path, monkeypatch)
    plan = vat_plan()
    root = etree.fromstring(sink.render(plan, timestamp=datetime(2026, 11, 2, tzinfo=UTC)))
    for name in ("NetAmount", "DueAmount"):  # the net total sent as due, tax left out
        root.find(f".//InvoiceDetailSummary/{name}/Money").text = "299.97"
    document = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", doctype=adapters.cxml_invoice_document.DOCTYPE
    )

    answer = requests.post(
        f"{buyer.url}{INVOICE_PATH}", data=document, headers={"Content-Type": "text/xml"}, timeout=5
    )

    status = read_status(answer.content)
    assert status is not None and (status.code, status.text) == (417, "Invalid attributes")
    assert (
        status.detail == "Subtotal 299.97 EUR plus tax 26.00 EUR is 325.97 EUR, the due amount is 299.97 EUR"
    )
    assert buyer.invoices == {}
