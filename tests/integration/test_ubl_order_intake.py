"""UBL Order, OrderChange and OrderCancellation through the `cxml` source's folder, and inspect."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from adapters.cxml_source import CxmlSource, CxmlSourceConfig
from connector.inspecting import inspect_file
from connector.model import POStatus
from connector.ports import AdapterContext, PullContext, SourceBatch

DATA = Path(__file__).resolve().parents[1] / "data" / "ubl"
DOCUMENTS = ["order.xml", "order-change.xml", "order-cancellation.xml"]


def folder_source(tmp_path: Path, names: list[str]) -> CxmlSource:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for day, name in enumerate(names, start=1):
        shutil.copy(DATA / name, inbox / name)
        moment = datetime(2026, 3, day, tzinfo=UTC).timestamp()
        os.utime(inbox / name, (moment, moment))
    config = CxmlSourceConfig.model_validate({"name": "peppol", "type": "cxml", "folder": "inbox"})
    return CxmlSource(config, AdapterContext(tenant="acme", base_dir=tmp_path))


def pull(source: CxmlSource, processed: set[str]) -> list[SourceBatch]:
    context = PullContext(cursor=None, started_at=datetime.now(UTC), is_processed=processed.__contains__)
    return list(source.pull(context))


def test_order_change_and_cancellation_in_a_folder_are_three_revisions_of_one_po(tmp_path: Path) -> None:
    batches = pull(folder_source(tmp_path, DOCUMENTS), set())
    assert [b.rejections for b in batches] == [[], [], []]
    pos = [b.records[0].po for b in batches]
    assert {po.external_id for po in pos} == {"7300010000001/PO-UBL-1001"}
    assert [(po.revision, po.status, len(po.lines)) for po in pos] == [
        (1, POStatus.OPEN, 2),
        (2, POStatus.OPEN, 2),
        (3, POStatus.CANCELLED, 2),
    ]
    assert [b.input_key for b in batches] == [
        "ubl|Order|7300010000001/PO-UBL-1001",
        "ubl|OrderChange|7300010000001/CHG-1001-1",
        "ubl|OrderCancellation|7300010000001/CXL-1001",
    ]
    assert all(po.tenant == "acme" and po.source == "peppol" for po in pos)
    assert "<OrderChange" in batches[1].records[0].raw


def test_a_cancellation_read_on_a_later_run_finds_the_order_processed_before(tmp_path: Path) -> None:
    source = folder_source(tmp_path, DOCUMENTS)
    processed = {"ubl|Order|7300010000001/PO-UBL-1001", "ubl|OrderChange|7300010000001/CHG-1001-1"}
    [batch] = pull(source, processed)
    [record] = batch.records
    assert (record.po.status, record.po.revision) == (POStatus.CANCELLED, 3)
    assert [line.sku for line in record.po.lines] == ["SKU-PRO-SEAT", "SKU-ONBOARD"]


def test_a_cancellation_without_its_order_is_rejected_naming_the_order(tmp_path: Path) -> None:
    [batch] = pull(folder_source(tmp_path, ["order-cancellation.xml"]), set())
    assert batch.records == []
    [problem] = batch.rejections
    assert (problem.field, problem.value) == ("cac:OrderReference/cbc:ID", "PO-UBL-1001")
    assert problem.document.endswith("order-cancellation.xml")


def test_fetch_finds_every_revision_for_resync(tmp_path: Path) -> None:
    source = folder_source(tmp_path, DOCUMENTS)
    assert [r.po.revision for r in source.fetch("PO-UBL-1001")] == [1, 2, 3]


def test_inspect_reads_a_ubl_order_file(tmp_path: Path) -> None:
    records, problems = inspect_file(DATA / "order-change.xml", None)
    assert problems == []
    assert [(r.po.po_number, r.po.revision) for r in records] == [("PO-UBL-1001", 2)]
