"""The cXML invoice sink over real HTTP against a buyer endpoint that checks the DTD and numbers."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.cxml_invoice import CxmlInvoiceConfig, CxmlInvoiceSink
from connector.errors import AuthenticationError, RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.ports import AdapterContext
from tests.sandboxes.base import Fault
from tests.sandboxes.cxml_buyer import INVOICE_PATH, CxmlBuyerSandbox
from tests.support.shared import shared_fixture
from tests.unit.test_cxml_invoice import make_plan

SECRET = "buyer-shared-secret"


@pytest.fixture
def buyer() -> Iterator[CxmlBuyerSandbox]:
    box = CxmlBuyerSandbox(
        shared_secret=SECRET,
        dtd_path=shared_fixture("cxml/InvoiceDetail-1.2.037.dtd"),
        orders={"6112": {1, 2}},
    )
    with box:
        yield box


def make_sink(
    buyer: CxmlBuyerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any
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
        CxmlInvoiceConfig(**values), AdapterContext(), retry=RetryPolicy(max_attempts=2, sleep=lambda s: None)
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
