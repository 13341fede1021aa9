"""The ubl-files sink on a real directory: exactly one complete file per invoice."""

from __future__ import annotations

import os
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pydantic import ValidationError

from adapters.ubl import read_total
from adapters.ubl_files import UblFilesConfig, UblFilesSink, invoice_file_name
from connector.errors import RetryableError
from connector.model import InvoiceLine, InvoicePlan, Money, RemoteRef
from connector.ports import AdapterContext, AdapterKind, Capability, InvoiceSink
from tests.support.shared import shared_fixture


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
            ),
        ),
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 1, 31),
    }
    values.update(overrides)
    return InvoicePlan(**values)


def make_sink(directory: Path, base_dir: Path | None = None) -> UblFilesSink:
    config = UblFilesConfig(name="files", type="ubl-files", directory=directory, supplier_name="Vendor Ltd")
    return UblFilesSink(config, AdapterContext(base_dir=base_dir or Path(".")))


def invoice_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".xml")


def test_sink_declares_the_sink_port_with_lookup(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    assert isinstance(sink, InvoiceSink)
    assert sink.kind is AdapterKind.SINK
    assert sink.capabilities == frozenset({Capability.LOOKUP})
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
    assert ref.total == plan.total == Money.of("100.00", "EUR")
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
    assert second.total == Money.of("100.00", "EUR")


def test_second_push_never_overwrites_a_changed_plan(tmp_path: Path) -> None:
    sink = make_sink(tmp_path)
    sink.push(make_plan())
    amended = make_plan(
        lines=(InvoiceLine(line_no=1, sku="SEAT", quantity=Decimal("9"), unit_price=Money.of("25", "EUR")),)
    )
    ref = sink.push(amended)
    assert ref.already_existed
    assert ref.total == Money.of("100.00", "EUR")
    assert read_total((tmp_path / "INV-0001.xml").read_bytes()) == Money.of("100.00", "EUR")


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
    assert ref.total == Money.of("100.00", "EUR")


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
