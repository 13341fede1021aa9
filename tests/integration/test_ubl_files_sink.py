"""The ubl-files sink on a real directory: exactly one complete, rule-abiding file per invoice."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pydantic import ValidationError

from adapters.ubl import read_total
from adapters.ubl_files import RULES_ENV, UblFilesConfig, UblFilesSink, invoice_file_name
from connector.errors import ConfigError, RejectedError, RetryableError
from connector.model import InvoiceLine, InvoicePlan, Money, Party, RemoteRef
from connector.ports import AdapterContext, AdapterKind, Capability, InvoiceSink
from connector.tax import LineTax, TaxCategory
from tests.support.einvoice import assert_passes_rules, rules_dir
from tests.support.factories import make_buyer, make_seller, vat
from tests.support.shared import shared_fixture

CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
S19 = LineTax(category=TaxCategory.STANDARD, rate=Decimal("19"))


@pytest.fixture(autouse=True)
def every_written_invoice_passes_the_rules(tmp_path: Path) -> Iterator[None]:
    yield
    for path in sorted(tmp_path.rglob("*.xml")):
        content = path.read_bytes()
        if content.startswith(b"<?xml"):
            assert_passes_rules(content)


def make_plan(**overrides: Any) -> InvoicePlan:
    values: dict[str, Any] = {
        "idempotency_key": "a" * 64,
        "invoice_number": "INV-0001",
        "sink": "files",
        "customer_ref": "CUST-1",
        "po_number": "PO-1",
        "po_key": "default/csv/PO-1",
        "po_revision": 1,
        "billing_key": "default/billing/sub-1/2024-01-01",
        "currency": "EUR",
        "issue_date": date(2024, 2, 1),
        "due_date": date(2024, 3, 2),
        "lines": (
            InvoiceLine(
                line_no=1,
                po_line_no=1,
                sku="SEAT",
                quantity=Decimal("4"),
                unit_price=Money.of("25.00", "EUR"),
                tax=S19,
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
        "buyer": make_buyer("FR"),
    }
    values.update(overrides)
    return InvoicePlan(**values)


def make_sink(
    directory: Path,
    base_dir: Path | None = None,
    *,
    supplier: Party | None = None,
    **settings: Any,
) -> UblFilesSink:
    values: dict[str, Any] = {"supplier_name": "Vendor Ltd", "rules_dir": rules_dir()}
    values.update(settings)
    config = UblFilesConfig(name="files", type="ubl-files", directory=directory, **values)
    context = AdapterContext(base_dir=base_dir or Path("."), supplier=supplier or make_seller())
    return UblFilesSink(config, context)


def invoice_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".xml")


def test_sink_declares_the_sink_port_with_lookup(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    assert isinstance(sink, InvoiceSink)
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == frozenset({Capability.LOOKUP, Capability.CREDIT_NOTES, Capability.BATCH_PUSH})
    assert sink.Config is UblFilesConfig
    assert sink.name == "files"


def test_relative_directory_is_created_under_base_dir(tmp_path: Path) -> None:
    sink = make_sink(Path("out/invoices"), base_dir=tmp_path)
    assert sink.directory == tmp_path / "out" / "invoices"
    assert sink.directory.is_dir()


def test_push_writes_one_schema_valid_file(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    plan = make_plan()
    ref = sink.push(plan)
    assert invoice_files(tmp_path) == ["INV-0001.xml"]
    assert list(tmp_path.iterdir()) == [tmp_path / "INV-0001.xml"]
    assert ref.remote_id == "INV-0001.xml"
    assert ref.invoice_number == "INV-0001"
    assert ref.total == plan.total == Money.of("119.00", "EUR")
    assert ref.tax == plan.tax_total == Money.of("19.00", "EUR")
    assert not ref.already_existed
    schema = etree.XMLSchema(etree.parse(str(shared_fixture("ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"))))
    assert schema.validate(etree.parse(str(tmp_path / "INV-0001.xml"))), schema.error_log


def test_pushing_the_same_plan_twice_leaves_one_file(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    first = sink.push(make_plan())
    content = (tmp_path / "INV-0001.xml").read_bytes()
    second = sink.push(make_plan())
    assert invoice_files(tmp_path) == ["INV-0001.xml"]
    assert (tmp_path / "INV-0001.xml").read_bytes() == content
    assert not first.already_existed
    assert second.already_existed
    assert second.remote_id == first.remote_id
    assert second.total == Money.of("119.00", "EUR")
    assert second.tax == Money.of("19.00", "EUR")


def test_second_push_never_overwrites_a_changed_plan(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    sink.push(make_plan())
    amended = make_plan(
        lines=(
            InvoiceLine(
                line_no=1, sku="SEAT", quantity=Decimal("9"), unit_price=Money.of("25", "EUR"), tax=S19
            ),
        )
    )
    ref = sink.push(amended)
    assert ref.already_existed
    assert ref.total == Money.of("119.00", "EUR")
    assert read_total((tmp_path / "INV-0001.xml").read_bytes()) == Money.of("119.00", "EUR")


def test_find_reports_a_file_written_before_a_crash(tmp_path: Path) -> None:
    plan = make_plan()
    make_sink(tmp_path).push(plan)  # written, then the process died before recording it
    restarted = make_sink(tmp_path)
    found = restarted.find([plan, make_plan(idempotency_key="b" * 64, invoice_number="INV-0002")])
    assert list(found) == [plan.idempotency_key]
    ref = found[plan.idempotency_key]
    assert ref.already_existed
    assert ref.remote_id == "INV-0001.xml"
    assert ref.invoice_number == "INV-0001"
    assert ref.total == Money.of("119.00", "EUR")
    assert ref.tax == Money.of("19.00", "EUR")


def test_leftover_temp_file_is_not_counted_as_an_invoice(tmp_path: Path) -> None:
    (tmp_path / ".INV-0001.x1y2z3.tmp").write_bytes(b"<Invoice")  # torn write of a crashed run
    sink = make_sink(tmp_path)
    plan = make_plan()
    assert sink.find([plan]) == {}
    ref = sink.push(plan)
    assert not ref.already_existed
    assert invoice_files(tmp_path) == ["INV-0001.xml"]
    assert read_total((tmp_path / "INV-0001.xml").read_bytes()) == plan.total


def test_concurrent_pushes_of_one_plan_write_exactly_one_file(tmp_path: Path) -> None:
    sinks = [make_sink(tmp_path) for _ in range(8)]
    plan = make_plan()
    barrier = threading.Barrier(len(sinks))
    refs = []
    errors = []

    def push(sink: UblFilesSink) -> None:
        barrier.wait()
        try:
            refs.append(sink.push(plan))
        except Exception as exc:  # collected to fail the test in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(sink,)) for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(os.listdir(tmp_path)) == ["INV-0001.xml"]
    assert sum(not ref.already_existed for ref in refs) == 1
    assert {ref.total for ref in refs} == {plan.total}
    assert read_total((tmp_path / "INV-0001.xml").read_bytes()) == plan.total


def test_pusher_that_loses_the_race_after_checking_reports_the_existing_file(
    tmp_path: Path,
) -> None:
    import adapters.ubl_files as module

    sink, winner = make_sink(tmp_path), make_sink(tmp_path)
    plan = make_plan()
    real_render = module.render_invoice
    raced: list[RemoteRef] = []
    started = threading.Event()

    def render_while_winner_publishes(*args: Any) -> bytes:
        # The loser has already seen no file; the winner publishes before the loser links.
        if not started.is_set():
            started.set()
            raced.append(winner.push(plan))
        return real_render(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "render_invoice", render_while_winner_publishes)
        ref = sink.push(plan)
    assert not raced[0].already_existed
    assert ref.already_existed
    assert ref.total == plan.total
    assert sorted(os.listdir(tmp_path)) == ["INV-0001.xml"]


def test_unsafe_invoice_numbers_get_distinct_safe_file_names(tmp_path: Path) -> None:
    assert invoice_file_name("INV-1.a_b") == "INV-1.a_b.xml"
    slash, colon = invoice_file_name("A/1"), invoice_file_name("A:1")
    assert slash != colon
    assert slash.startswith("A_1-")
    assert invoice_file_name("../etc/passwd").startswith("_._etc_passwd-")
    sink = make_sink(tmp_path)
    sink.push(make_plan(invoice_number="A/1"))
    sink.push(make_plan(idempotency_key="b" * 64, invoice_number="A:1"))
    assert invoice_files(tmp_path) == sorted([slash, colon])


def test_write_failure_is_retryable_and_names_the_path(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)
        with pytest.raises(RetryableError) as caught:
            sink.push(make_plan())
    assert str(tmp_path) in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_unreadable_existing_file_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "INV-0001.xml").write_bytes(b"not xml")
    sink = make_sink(tmp_path)
    found = sink.find([make_plan()])
    assert found["a" * 64].already_existed
    assert found["a" * 64].total is None
    assert sink.push(make_plan()).already_existed
    assert (tmp_path / "INV-0001.xml").read_bytes() == b"not xml"


def test_supplier_country_must_be_iso_alpha2(tmp_path: Path) -> None:
    config = UblFilesConfig(name="f", type="ubl-files", directory=tmp_path, supplier_country="de")
    assert config.supplier_country == "DE"
    with pytest.raises(ValidationError, match="supplier_country"):
        UblFilesConfig(name="f", type="ubl-files", directory=tmp_path, supplier_country="Germany")


def test_untaxed_plan_is_refused_as_tax_unknown_and_nothing_is_written(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    untaxed = make_plan(
        lines=(InvoiceLine(line_no=1, sku="SEAT", quantity=Decimal("4"), unit_price=Money.of("25", "EUR")),)
    )
    with pytest.raises(RejectedError) as caught:
        sink.push(untaxed)
    assert caught.value.provider_code == "tax_unknown"
    assert "INV-0001" in str(caught.value)
    assert "tax_unknown" in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_a_document_breaking_a_rule_is_rejected_with_the_rule_and_not_written(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    reverse_charge = vat("0", "AE", exemption_reason_code="VATEX-EU-AE", exemption_reason="Reverse charge")
    plan = make_plan(
        lines=(
            InvoiceLine(
                line_no=1,
                sku="SEAT",
                quantity=Decimal("4"),
                unit_price=Money.of("25", "EUR"),
                tax=reverse_charge,
            ),
        ),
        # A reverse-charge buyer must be identified by its VAT id (BR-AE-02).
        buyer=make_buyer("FR", vat_id="", endpoint_id="4000001000005", endpoint_scheme="0088"),
    )
    with pytest.raises(RejectedError) as caught:
        sink.push(plan)
    assert "BR-AE-02" in str(caught.value)
    assert "BR-AE-02" in caught.value.provider_code.split()
    assert "reverse charge" in str(caught.value).lower()
    assert os.listdir(tmp_path) == []
    assert sink.find([plan]) == {}


def test_rule_warnings_are_logged_and_the_invoice_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Between German parties the seller's telephone should hold digits (DE-R-027, a warning).
    sink = make_sink(tmp_path, supplier=make_seller(contact_telephone="ask for Kim"))
    plan = make_plan(
        buyer=make_buyer("DE"),
        bill_to=None,
    )
    with caplog.at_level(logging.WARNING, logger="po_connector"):
        ref = sink.push(plan)
    assert not ref.already_existed
    assert invoice_files(tmp_path) == ["INV-0001.xml"]
    assert "DE-R-027" in caplog.text


def test_validation_can_be_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink(tmp_path / "out", rules_dir=None)
    assert not sink.validates
    with caplog.at_level(logging.WARNING, logger="po_connector"):
        sink.check_ready()
    assert "validation is off" in caplog.text
    sink.push(make_plan())
    assert invoice_files(tmp_path / "out") == ["INV-0001.xml"]


def test_rules_dir_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RULES_ENV, str(rules_dir()))
    assert UblFilesConfig(name="f", directory=tmp_path).rules_dir == rules_dir()
    monkeypatch.delenv(RULES_ENV)
    assert UblFilesConfig(name="f", directory=tmp_path).rules_dir is None


def test_relative_rules_dir_resolves_against_the_config_folder(tmp_path: Path) -> None:
    base = rules_dir().parent
    sink = make_sink(tmp_path, base_dir=base, rules_dir=Path(rules_dir().name))
    assert sink.rules_dir == base / rules_dir().name
    sink.check_ready()
    sink.push(make_plan())
    assert invoice_files(tmp_path) == ["INV-0001.xml"]


@pytest.mark.parametrize("broken", ["missing", "empty"])
def test_unusable_rules_dir_is_a_configuration_error_naming_it(tmp_path: Path, broken: str) -> None:
    rules = tmp_path / "rules"
    if broken == "empty":
        rules.mkdir()
    sink = make_sink(tmp_path / "out", rules_dir=rules)
    with pytest.raises(ConfigError) as caught:
        sink.check_ready()
    assert "rules_dir" in str(caught.value)
    assert str(rules) in str(caught.value)
    with pytest.raises(ConfigError):
        sink.push(make_plan())
    assert os.listdir(tmp_path / "out") == []


def test_supplier_comes_from_the_supplier_section(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, supplier=make_seller(legal_name="Cloudlytics Europe GmbH"))
    sink.push(make_plan())
    root = etree.parse(str(tmp_path / "INV-0001.xml")).getroot()
    names = root.xpath(
        "//cac:AccountingSupplierParty//cac:PartyLegalEntity/cbc:RegistrationName/text()",
        namespaces={"cac": CAC, "cbc": CBC},
    )
    assert names == ["Cloudlytics Europe GmbH"]


def fallback_config(directory: Path, rules: Path | None) -> UblFilesConfig:
    return UblFilesConfig(
        name="files",
        directory=directory,
        rules_dir=rules,
        supplier_name="Vendor Ltd",
        supplier_id="HRB 999",
        supplier_street="1 High St",
        supplier_city="London",
        supplier_postal_code="EC1A 1BB",
        supplier_country="GB",
        supplier_email="ar@vendor.example",
    )


def test_sink_supplier_settings_remain_the_fallback(tmp_path: Path) -> None:
    sink = UblFilesSink(fallback_config(tmp_path, None), AdapterContext())
    assert sink.supplier.legal_name == "Vendor Ltd"
    assert sink.supplier.legal_registration_id == "HRB 999"
    assert sink.supplier.country == "GB"
    assert sink.supplier.contact_email == "ar@vendor.example"
    sink.push(make_plan())
    document = tmp_path / "INV-0001.xml"
    root = etree.parse(str(document)).getroot()
    party = "//cac:AccountingSupplierParty/cac:Party/"
    ns = {"cac": CAC, "cbc": CBC}
    assert root.xpath(party + "cac:PartyLegalEntity/cbc:CompanyID/text()", namespaces=ns) == ["HRB 999"]
    country = party + "cac:PostalAddress/cac:Country/cbc:IdentificationCode/text()"
    assert root.xpath(country, namespaces=ns) == ["GB"]
    # The old settings have no electronic address or VAT id, so this file cannot pass the rules.
    document.unlink()


def test_fallback_supplier_without_electronic_address_is_rejected_when_validating(tmp_path: Path) -> None:
    sink = UblFilesSink(fallback_config(tmp_path, rules_dir()), AdapterContext())
    with pytest.raises(RejectedError) as caught:
        sink.push(make_plan())
    assert "PEPPOL-EN16931-R020" in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_validating_sink_without_a_seller_electronic_address_is_not_ready(tmp_path: Path) -> None:
    sink = UblFilesSink(fallback_config(tmp_path, rules_dir()), AdapterContext())
    with pytest.raises(ConfigError, match=r"endpoint_id.*\[supplier\]"):
        sink.check_ready()
    make_sink(tmp_path / "ok").check_ready()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_invoice_files_are_readable_by_the_group_by_default(tmp_path: Path) -> None:
    make_sink(tmp_path).push(make_plan())
    assert _mode(tmp_path / "INV-0001.xml") == 0o640


@pytest.mark.parametrize("setting", ["0644", "644", 0o644])
def test_the_invoice_file_mode_is_configurable(tmp_path: Path, setting: str | int) -> None:
    make_sink(tmp_path, file_mode=setting).push(make_plan())
    assert _mode(tmp_path / "INV-0001.xml") == 0o644


@pytest.mark.parametrize(
    ("setting", "says"), [("0666", "every user write"), ("rw-r", "octal"), ("0040", "owner")]
)
def test_a_file_mode_others_could_write_or_the_owner_cannot_read_is_refused(
    tmp_path: Path, setting: str, says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        UblFilesConfig(name="files", type="ubl-files", directory=tmp_path, file_mode=setting)


def test_spooled_documents_are_group_readable_too(tmp_path: Path) -> None:
    from adapters.cxml_spool import CxmlSpool

    spool = CxmlSpool(tmp_path / "spool")
    assert spool.store("payload-1@buyer", b"<cXML/>")
    assert _mode(spool.path_of("payload-1@buyer")) == 0o640


def test_a_batch_writes_each_file_and_syncs_the_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink(tmp_path / "out", rules_dir=None)
    synced: list[int] = []
    monkeypatch.setattr(sink, "_sync_directory", lambda: synced.append(1))
    plans = [make_plan(invoice_number=f"INV-B-{n}", idempotency_key=f"k{n}") for n in range(3)]
    outcomes = sink.push_batch([*plans, make_plan(invoice_number="", idempotency_key="bad")])
    assert [o.ref is not None for o in outcomes] == [True, True, True, False]
    assert isinstance(outcomes[3].error, RejectedError)
    assert synced == [1]
    assert invoice_files(tmp_path / "out") == [invoice_file_name(p.invoice_number) for p in plans]
    again = sink.push_batch(plans)  # nothing new: found, not written, nothing to sync
    assert all(o.ref is not None and o.ref.already_existed for o in again) and synced == [1]


def test_a_failed_directory_sync_leaves_the_batch_uncertain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.errors import UncertainError

    sink = make_sink(tmp_path / "out", rules_dir=None)

    def broken() -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(sink, "_sync_directory", broken)
    outcomes = sink.push_batch(
        [make_plan(invoice_number=f"INV-U-{n}", idempotency_key=f"u{n}") for n in range(2)]
    )
    assert all(isinstance(o.error, UncertainError) and o.ref is None for o in outcomes)
