"""The cXML InvoiceDetailRequest: DTD validity, what it echoes, and how buyer answers are read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import responses
from lxml import etree

from adapters.cxml_invoice import CxmlInvoiceConfig, CxmlInvoiceSink
from adapters.cxml_invoice_document import (
    DOCTYPE,
    CxmlStatus,
    describe_tax,
    is_already_used,
    payload_id,
    read_archived,
    read_status,
    split_vat_id,
    tax_location,
)
from connector.errors import AuthenticationError, RejectedError, UncertainError
from connector.http import RetryPolicy
from connector.model import Address, InvoiceLine, InvoicePlan, Money, Party, PaymentTerms
from connector.ports import AdapterContext, AdapterKind, Capability, InvoiceSink
from connector.tax import LineTax
from tests.support.factories import make_buyer, make_priced_plan, make_seller, make_taxed_plan, sales_tax, vat
from tests.support.shared import shared_fixture

URL = "https://acme.coupahost.com/cxml/invoices"
SECRET = "cxml-unit-secret-4242"
WHEN = datetime(2024, 2, 2, 9, 30, tzinfo=UTC)


def make_plan(number: str = "INV-0000000000AB", **overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": "f" * 64,
        "invoice_number": number,
        "sink": "coupa-invoices",
        "customer_ref": "ACME",
        "customer_name": "Acme Corp",
        "po_number": "6112",
        "po_key": "default/coupa/6112",
        "po_revision": 2,
        "billing_key": "default/billing/sub-1/2024-01-01",
        "currency": "USD",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "payment_terms": PaymentTerms(code="NET30", net_days=30),
        "bill_to": Address(
            name="Acme Corp AP",
            lines=("1 Main St",),
            city="Springfield",
            region="IL",
            postal_code="62701",
            country="US",
            email="ap@acme.test",
        ),
        "lines": (
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="SEAT",
                supplier_part_id="SKU-SEAT-01",
                description="Seats",
                quantity=Decimal("12"),
                unit_of_measure="EA",
                unit_price=Money.of("19.99", "USD"),
                service_start=date(2024, 1, 1),
                service_end=date(2024, 1, 31),
            ),
            InvoiceLine(
                line_no=2,
                po_line_no=2,
                sku="SUPPORT",
                quantity=Decimal("1.5"),
                unit_of_measure="MON",
                unit_price=Money.of("100.125", "USD"),
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "memo": "PO 6112, January",
    }
    values.update(overrides)
    return InvoicePlan(**values)


def make_sink(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    context: AdapterContext | None = None,
    **overrides: Any,
) -> CxmlInvoiceSink:
    monkeypatch.setenv("CXML_SECRET", SECRET)
    values: dict[str, Any] = {
        "name": "coupa-invoices",
        "url": URL,
        "from_domain": "DUNS",
        "from_identity": "supplier-duns",
        "to_domain": "NetworkID",
        "to_identity": "buyer-network-id",
        "sender_domain": "DUNS",
        "sender_identity": "supplier-duns",
        "shared_secret_env": "CXML_SECRET",
        "archive_dir": tmp_path / "archive",
    }
    values.update(overrides)
    return CxmlInvoiceSink(
        CxmlInvoiceConfig(**values),
        context or AdapterContext(),
        retry=RetryPolicy(max_attempts=2, sleep=lambda s: None),
    )


def invoice_dtd() -> etree.DTD:
    return etree.DTD(str(shared_fixture("cxml/InvoiceDetail-1.2.037.dtd")))


def parse(document: bytes) -> etree._Element:
    return etree.fromstring(
        document, etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    )


def answer(code: int, text: str, detail: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?><cXML payloadID="1@buyer" timestamp="2024-02-02T10:00:00+00:00">'
        f'<Response><Status code="{code}" text="{text}">{detail}</Status></Response></cXML>'
    ).encode()


def test_sink_declares_the_sink_port_with_lookup_and_credit_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    assert isinstance(sink, InvoiceSink)
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == frozenset({Capability.LOOKUP, Capability.CREDIT_NOTES})
    assert sink.Config is CxmlInvoiceConfig


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bill_to": None, "payment_terms": None, "memo": ""},
        {
            "currency": "JPY",
            "lines": (
                InvoiceLine(
                    line_no=1,
                    po_line_no=4,
                    sku="SEAT",
                    quantity=Decimal("3"),
                    unit_price=Money.of("1200", "JPY"),
                ),
            ),
        },
    ],
    ids=["full", "minimal", "zero-decimal-currency"],
)
def test_document_is_valid_against_the_invoice_detail_dtd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> None:
    document = make_sink(tmp_path, monkeypatch).render(make_plan(**overrides), timestamp=WHEN)
    dtd = invoice_dtd()
    root = parse(document)
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n" + DOCTYPE.encode())


def test_document_echoes_invoice_po_lines_and_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan()
    root = parse(make_sink(tmp_path, monkeypatch, deployment_mode="test").render(plan, timestamp=WHEN))

    assert root.get("payloadID") == payload_id(plan)
    assert root.get("timestamp") == "2024-02-02T09:30:00+00:00"
    assert root.findtext("Header/Sender/Credential/SharedSecret") == SECRET
    assert root.find("Request").get("deploymentMode") == "test"
    head = root.find("Request/InvoiceDetailRequest/InvoiceDetailRequestHeader")
    assert (head.get("invoiceID"), head.get("purpose"), head.get("operation")) == (
        plan.invoice_number,
        "standard",
        "new",
    )
    assert head.get("invoiceDate") == "2024-02-01T00:00:00+00:00"
    assert head.find("PaymentTerm").get("payInNumberOfDays") == "30"
    assert head.findtext("InvoicePartner/Contact/PostalAddress/City") == "Springfield"
    reference = root.find(".//InvoiceDetailOrderInfo/OrderReference")
    assert reference.get("orderID") == "6112"
    assert reference.find("DocumentReference").get("payloadID") == "6112"
    items = root.findall(".//InvoiceDetailItem")
    assert [(i.get("invoiceLineNumber"), i.get("quantity"), i.findtext("UnitOfMeasure")) for i in items] == [
        ("1", "12", "EA"),
        ("2", "1.5", "MON"),
    ]
    assert [i.find("InvoiceDetailItemReference").get("lineNumber") for i in items] == ["1", "2"]
    assert [i.findtext("InvoiceDetailItemReference/ItemID/SupplierPartID") for i in items] == [
        "SKU-SEAT-01",
        "SUPPORT",
    ]
    assert [i.findtext("UnitPrice/Money") for i in items] == ["19.99", "100.125"]
    assert [i.findtext("SubtotalAmount/Money") for i in items] == ["239.88", "150.19"]
    assert items[0].findtext("Extrinsic[@name='serviceStartDate']") == "2024-01-01"
    summary = root.find(".//InvoiceDetailSummary")
    assert summary.findtext("SubtotalAmount/Money") == "390.07"
    assert summary.findtext("Tax/Money") == "0.00"
    assert summary.findtext("NetAmount/Money") == summary.findtext("DueAmount/Money") == "390.07"
    assert summary.find("DueAmount/Money").get("currency") == "USD"


def test_payload_id_is_the_same_for_every_send_of_a_plan() -> None:
    assert payload_id(make_plan()) == payload_id(make_plan())
    assert payload_id(make_plan()) != payload_id(make_plan("INV-0000000000AC", idempotency_key="e" * 64))


@pytest.mark.parametrize(
    ("status", "already"),
    [
        (
            CxmlStatus(
                417, "Invalid attributes", "Invoice number INV-1 has already been used for this supplier"
            ),
            True,
        ),
        (CxmlStatus(417, "invoice number has already been used for this supplier"), True),
        (CxmlStatus(417, "Invalid order/document reference", "Could not find order header 6112"), False),
        (CxmlStatus(200, "OK", "invoice number already used"), False),
        (
            CxmlStatus(417, "Invoice number INV-1 refused: PO-7 line 1 has already been submitted in full"),
            False,
        ),
        (CxmlStatus(417, "Possible duplicate invoice: same amount as INV-0"), False),
    ],
)
def test_already_used_answer_is_recognised(status: CxmlStatus, already: bool) -> None:
    assert is_already_used(status) is already


def test_read_status_refuses_entity_declarations() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE cXML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<cXML><Response><Status code="200" text="&b;"/></Response></cXML>'
    )
    assert read_status(bomb) is None
    assert read_status(answer(201, "Accepted")) == CxmlStatus(201, "Accepted", "")


@responses.activate
def test_accepted_invoice_is_posted_as_text_xml_and_archived_without_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    plan = make_plan()
    responses.post(URL, body=answer(200, "OK"), content_type="text/xml")

    ref = sink.push(plan)

    request = responses.calls[0].request
    assert request.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert parse(request.body).get("payloadID") == ref.remote_id == payload_id(plan)
    assert (ref.total, ref.already_existed) == (Money.of("390.07", "USD"), False)
    archived = sink.archive_path(plan).read_bytes()
    assert SECRET.encode() not in archived
    assert parse(archived).findtext("Header/Sender/Credential/SharedSecret") == "***"
    assert sink.find([plan, make_plan("INV-NOT-SENT", idempotency_key="0" * 64)]) == {
        plan.idempotency_key: ref.model_copy(update={"already_existed": True})
    }


@responses.activate
@pytest.mark.parametrize("http_status", [417, 200])
def test_duplicate_number_answer_resolves_as_already_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    plan = make_plan()
    detail = f"Invoice number {plan.invoice_number} has already been used for this supplier"
    responses.post(
        URL, status=http_status, body=answer(417, "Invalid attributes", detail), content_type="text/xml"
    )

    ref = sink.push(plan)

    assert ref.already_existed
    assert plan.idempotency_key in sink.find([plan])


@responses.activate
@pytest.mark.parametrize("http_status", [401, 200])
def test_refused_credentials_are_an_authentication_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(
        URL, status=http_status, body=answer(401, "Unauthorized", "bad credentials"), content_type="text/xml"
    )

    with pytest.raises(AuthenticationError, match="401 Unauthorized: bad credentials"):
        sink.push(make_plan())
    assert sink.find([make_plan()]) == {}


@responses.activate
def test_other_buyer_refusal_is_rejected_with_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(
        URL,
        status=417,
        body=answer(417, "Invalid order/document reference", "Could not find order header 6112"),
    )

    with pytest.raises(RejectedError, match="Could not find order header 6112") as caught:
        sink.push(make_plan())
    assert caught.value.provider_code == "417"


@responses.activate
@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (500, answer(500, "Unexpected server error")),
        (200, answer(500, "Unexpected server error")),
        (502, b"<html>bad gateway</html>"),
        (200, b"OK"),
    ],
    ids=["http-500", "status-500-in-200", "gateway-html", "undecodable-200"],
)
def test_server_errors_and_unreadable_answers_are_uncertain_and_sent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_status: int, body: bytes
) -> None:
    sink = make_sink(tmp_path, monkeypatch)
    responses.post(URL, status=http_status, body=body)

    with pytest.raises(UncertainError):
        sink.push(make_plan())
    assert len(responses.calls) == 1
    assert sink.find([make_plan()]) == {}


def test_an_already_used_answer_naming_another_number_is_a_rejection() -> None:
    from adapters.cxml_invoice_document import named_number

    assert named_number(CxmlStatus(417, "Invoice number INV-9 has already been used")) == "INV-9"
    assert named_number(CxmlStatus(417, "invoice number has already been used for this supplier")) is None


# -- tax ---------------------------------------------------------------------------------------
DETAIL_PATH = "Request/InvoiceDetailRequest"
AE = vat("0", "AE", exemption_reason_code="VATEX-EU-AE")
EXEMPT = vat("0", "E", exemption_reason="Exempt medical service, Article 132(1)(c)")
NY = sales_tax("8.875", "US-NY")


def taxed_plans() -> dict[str, InvoicePlan]:
    """The taxed plans every document check runs over."""
    return {
        "de-standard-19": make_taxed_plan(taxes=(vat("19"),)),
        "reverse-charge": make_taxed_plan(taxes=(AE,), buyer=make_buyer("FR")),
        "exempt": make_taxed_plan(taxes=(EXEMPT,)),
        "us-ny-sales-tax": make_priced_plan(
            currency="USD", lines=(("100.00", NY), ("33.33", NY)), sink="coupa-invoices"
        ),
        "mixed-rates-remainder": make_priced_plan(
            currency="EUR",
            lines=(
                ("10.03", vat("19")),
                ("10.03", vat("19")),
                ("20.06", vat("19")),
                ("5.55", vat("7")),
                ("99.00", AE),
            ),
        ),
        "jpy": make_priced_plan(
            currency="JPY",
            lines=(("105", vat("10")), ("105", vat("10")), ("210", vat("10")), ("1001", vat("8"))),
        ),
    }


def render_taxed(
    plan: InvoicePlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seller: Party | None = None
) -> etree._Element:
    sink = make_sink(tmp_path, monkeypatch, context=AdapterContext(supplier=seller))
    document = sink.render(plan, timestamp=WHEN)
    root = parse(document)
    dtd = invoice_dtd()
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    return root


def amount(element: etree._Element, path: str) -> Decimal:
    money = element.find(path)
    assert money is not None, path
    return Decimal(money.text)


@pytest.mark.parametrize("case", list(taxed_plans()))
def test_taxed_document_is_valid_and_its_tax_sums_to_the_cent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    plan = taxed_plans()[case]
    root = render_taxed(plan, tmp_path, monkeypatch, seller=make_seller())

    indicator = root.find(f"{DETAIL_PATH}/InvoiceDetailRequestHeader/InvoiceDetailLineIndicator")
    assert indicator.get("isTaxInLine") == "yes"
    items = root.findall(".//InvoiceDetailItem")
    assert len(items) == len(plan.lines)
    for item, line in zip(items, plan.lines, strict=True):
        assert item.find("Tax/Money").get("currency") == plan.currency
        details = item.findall("Tax/TaxDetail")
        assert len(details) == 1
        assert amount(details[0], "TaxAmount/Money") == amount(item, "Tax/Money")
        assert amount(details[0], "TaxableAmount/Money") == line.amount.amount
    line_tax = sum((amount(item, "Tax/Money") for item in items), Decimal(0))
    summary = root.find(f"{DETAIL_PATH}/InvoiceDetailSummary")
    assert line_tax == amount(summary, "Tax/Money") == plan.tax_total.amount
    # each breakdown group: its lines' shares sum to its once-rounded tax exactly
    groups = summary.findall("Tax/TaxDetail")
    assert len(groups) == len(plan.tax_breakdown)
    for group, detail in zip(plan.tax_breakdown, groups, strict=True):
        assert amount(detail, "TaxAmount/Money") == group.tax_amount
        assert amount(detail, "TaxableAmount/Money") == group.taxable_amount
        in_group = [
            item
            for item, line in zip(items, plan.lines, strict=True)
            if line.tax is not None
            and (line.tax.category, line.tax.percent, line.tax.jurisdiction)
            == (group.category, group.rate or Decimal(0), group.jurisdiction)
        ]
        assert sum((amount(item, "Tax/Money") for item in in_group), Decimal(0)) == group.tax_amount
    assert amount(summary, "SubtotalAmount/Money") == plan.net_total.amount
    assert amount(summary, "SubtotalAmount/Money") + amount(summary, "Tax/Money") == amount(
        summary, "DueAmount/Money"
    )
    assert amount(summary, "NetAmount/Money") == amount(summary, "DueAmount/Money") == plan.total.amount
    assert [child.tag for child in summary] == ["SubtotalAmount", "Tax", "NetAmount", "DueAmount"]


def test_german_standard_rate_line_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = render_taxed(make_taxed_plan(taxes=(vat("19"),)), tmp_path, monkeypatch)

    item = root.find(".//InvoiceDetailItem")
    assert item.findtext("SubtotalAmount/Money") == "200.00"
    assert item.findtext("Tax/Money") == "38.00"
    assert item.findtext("Tax/Description") == "VAT standard rate 19%"
    detail = item.find("Tax/TaxDetail")
    assert dict(detail.attrib) == {"purpose": "tax", "category": "vat", "percentageRate": "19"}
    assert (detail.findtext("TaxableAmount/Money"), detail.findtext("TaxAmount/Money")) == ("200.00", "38.00")
    assert detail.find("Description") is None and detail.find("TaxLocation") is None
    summary = root.find(".//InvoiceDetailSummary")
    assert [
        summary.findtext(f"{name}/Money") for name in ("SubtotalAmount", "Tax", "NetAmount", "DueAmount")
    ] == [
        "200.00",
        "38.00",
        "238.00",
        "238.00",
    ]
    assert summary.find("Tax/TaxDetail").get("percentageRate") == "19"


def test_reverse_charge_line_states_its_reason_and_vatex_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = render_taxed(make_taxed_plan(taxes=(AE,), buyer=make_buyer("FR")), tmp_path, monkeypatch)

    for detail in (
        root.find(".//InvoiceDetailItem/Tax/TaxDetail"),
        root.find(".//InvoiceDetailSummary/Tax/TaxDetail"),
    ):
        assert (detail.get("category"), detail.get("percentageRate")) == ("vat", "0")
        assert detail.findtext("TaxAmount/Money") == "0.00"
        assert (
            detail.findtext("Description")
            == "Reverse charge: the customer accounts for the VAT (VATEX-EU-AE)"
        )
        assert detail.find("TaxExemption").get("exemptCode") == "VATEX-EU-AE"
        # Description comes after TaxAmount, TaxExemption last, as the DTD orders them
        assert [child.tag for child in detail] == [
            "TaxableAmount",
            "TaxAmount",
            "Description",
            "TaxExemption",
        ]
    assert root.findtext(".//InvoiceDetailItem/Tax/Description") == "VAT reverse charge 0%"
    assert root.findtext(".//InvoiceDetailSummary/DueAmount/Money") == "200.00"


def test_exempt_line_states_the_plans_exemption_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = render_taxed(make_taxed_plan(taxes=(EXEMPT,)), tmp_path, monkeypatch)

    detail = root.find(".//InvoiceDetailItem/Tax/TaxDetail")
    assert detail.get("exemptDetail") == "exempt"
    assert detail.findtext("Description") == "Exempt medical service, Article 132(1)(c)"
    assert detail.find("TaxExemption") is None  # no code stated, none invented
    assert root.findtext(".//InvoiceDetailSummary/Tax/Money") == "0.00"


def test_us_sales_tax_names_the_state_and_puts_the_remainder_on_the_largest_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = taxed_plans()["us-ny-sales-tax"]
    root = render_taxed(plan, tmp_path, monkeypatch)

    items = root.findall(".//InvoiceDetailItem")
    # 100.00 x 8.875% = 8.875 -> 8.88 and 33.33 x 8.875% = 2.958 -> 2.96 per line is 11.84, but
    # the group's 133.33 x 8.875% = 11.833 -> 11.83: the cent comes off the largest line.
    assert [item.findtext("Tax/Money") for item in items] == ["8.87", "2.96"]
    detail = items[0].find("Tax/TaxDetail")
    assert (detail.get("category"), detail.get("percentageRate")) == ("sales", "8.875")
    assert detail.findtext("TaxLocation") == "NY"
    assert items[0].findtext("Tax/Description") == "Sales tax US-NY 8.875%"
    summary = root.find(".//InvoiceDetailSummary")
    assert (summary.findtext("Tax/Money"), summary.findtext("DueAmount/Money")) == ("11.83", "145.16")
    assert summary.findtext("Tax/TaxDetail/TaxLocation") == "NY"


def test_mixed_rates_distribute_each_groups_remainder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = taxed_plans()["mixed-rates-remainder"]
    root = render_taxed(plan, tmp_path, monkeypatch)

    shares = [item.findtext("Tax/Money") for item in root.findall(".//InvoiceDetailItem")]
    # 19%: 1.91 + 1.91 + 3.81 = 7.63 per line, the group's 40.12 x 19% = 7.62: the largest line
    # gives the cent back; 7%: 0.39; AE: 0.
    assert shares == ["1.91", "1.91", "3.80", "0.39", "0.00"]
    summary = root.find(".//InvoiceDetailSummary")
    assert [d.findtext("TaxAmount/Money") for d in summary.findall("Tax/TaxDetail")] == [
        "0.00",
        "0.39",
        "7.62",
    ]
    assert summary.findtext("Tax/Money") == "8.01"
    assert (
        summary.findtext("Tax/Description")
        == "VAT reverse charge 0%; VAT standard rate 7%; VAT standard rate 19%"
    )


def test_yen_amounts_have_no_decimals_and_sum_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = render_taxed(taxed_plans()["jpy"], tmp_path, monkeypatch)

    # 10%: 10.5 -> 11, 11, 21 = 43 per line, the group's 420 x 10% = 42; 8%: 1001 x 8% = 80
    assert [item.findtext("Tax/Money") for item in root.findall(".//InvoiceDetailItem")] == [
        "11",
        "11",
        "20",
        "80",
    ]
    summary = root.find(".//InvoiceDetailSummary")
    assert [summary.findtext(f"{name}/Money") for name in ("SubtotalAmount", "Tax", "DueAmount")] == [
        "1421",
        "122",
        "1543",
    ]
    assert summary.find("DueAmount/Money").get("currency") == "JPY"


def test_seller_vat_id_goes_on_a_remit_to_partner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = render_taxed(make_taxed_plan(), tmp_path, monkeypatch, seller=make_seller("DE"))

    partners = root.findall(f"{DETAIL_PATH}/InvoiceDetailRequestHeader/InvoicePartner")
    assert [p.find("Contact").get("role") for p in partners] == ["billTo", "remitTo"]
    remit = partners[1]
    assert remit.findtext("Contact/Name") == "Cloudlytics GmbH"
    assert remit.findtext("Contact/PostalAddress/City") == "Berlin"
    assert [(r.get("domain"), r.get("identifier")) for r in remit.findall("IdReference")] == [
        ("taxPrefix", "DE"),
        ("taxNumber", "123456789"),
    ]


def test_seller_without_a_vat_id_adds_no_remit_to_partner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = taxed_plans()["us-ny-sales-tax"]
    root = render_taxed(plan, tmp_path, monkeypatch, seller=make_seller("US"))

    roles = [c.get("role") for c in root.iterfind(".//InvoicePartner/Contact")]
    assert roles == ["billTo"]


@pytest.mark.parametrize(
    ("vat_id", "country", "split"),
    [
        ("DE123456789", "DE", ("DE", "123456789")),
        ("GB 123 4567 89", "GB", ("GB", "123 4567 89")),
        ("ATU12345678", "AT", ("AT", "U12345678")),
        ("CHE-123.456.789 MWST", "CH", ("CHE", "123.456.789 MWST")),
        ("123456789", "DE", ("DE", "123456789")),
    ],
)
def test_vat_id_is_split_into_tax_prefix_and_number(
    vat_id: str, country: str, split: tuple[str, str]
) -> None:
    assert split_vat_id(vat_id, country) == split


def test_untaxed_plan_keeps_a_zero_summary_tax_and_no_line_tax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = parse(make_sink(tmp_path, monkeypatch).render(make_plan(), timestamp=WHEN))

    assert root.find(".//InvoiceDetailLineIndicator").get("isTaxInLine") is None
    assert root.find(".//InvoiceDetailItem/Tax") is None
    tax = root.find(".//InvoiceDetailSummary/Tax")
    assert (tax.findtext("Money"), tax.findtext("Description"), tax.find("TaxDetail")) == (
        "0.00",
        "No tax",
        None,
    )


@responses.activate
def test_taxed_push_and_archive_report_gross_and_tax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink(tmp_path, monkeypatch, context=AdapterContext(supplier=make_seller()))
    plan = taxed_plans()["mixed-rates-remainder"]
    responses.post(URL, body=answer(200, "OK"), content_type="text/xml")

    ref = sink.push(plan)

    assert (ref.total, ref.tax) == (Money.of("152.68", "EUR"), Money.of("8.01", "EUR"))
    assert (ref.total, ref.tax) == (plan.total, plan.tax_total)
    found = sink.find([plan])[plan.idempotency_key]
    assert (found.total, found.tax) == (plan.total, plan.tax_total)
    archived = read_archived(sink.archive_path(plan).read_bytes(), document="archive")
    assert (archived.total, archived.tax) == (plan.total, plan.tax_total)


@pytest.mark.parametrize(
    ("tax", "description"),
    [
        (vat("19"), "VAT standard rate 19%"),
        (vat("0", "Z"), "VAT zero rated 0%"),
        (vat("", "O", exemption_reason="Not in scope"), "VAT outside the scope of tax 0%"),
        (sales_tax("8.875", "US-NY"), "Sales tax US-NY 8.875%"),
        (sales_tax("0", "US-OR"), "Sales tax US-OR exempt 0%"),
    ],
)
def test_tax_descriptions_name_scheme_category_and_rate(tax: LineTax, description: str) -> None:
    assert describe_tax(tax) == description


def test_tax_location_is_the_state_of_a_us_jurisdiction() -> None:
    assert [tax_location(j) for j in ("US-NY", "us-ca", "US-NY-NYC", "CA-ON")] == [
        "NY",
        "CA",
        "NY-NYC",
        "CA-ON",
    ]
