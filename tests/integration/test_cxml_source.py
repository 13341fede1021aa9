"""The `cxml` source on real directories: spool and folder, oldest first, each document once."""

from __future__ import annotations

import io
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.cxml_receiver import BuyerCredential, make_app
from adapters.cxml_source import CxmlSource, CxmlSourceConfig, parse_cxml_file
from adapters.cxml_spool import CxmlSpool
from connector.errors import ConfigError
from connector.model import POStatus
from connector.ports import AdapterContext, AdapterKind, Capability, POSource, PullContext, SourceBatch
from tests.support.shared import shared_fixture

DATA = Path(__file__).resolve().parents[1] / "data" / "cxml"
ORDERS = [
    ("order-new.xml", "20240105.1001.new@buyer.example"),
    ("order-update.xml", "20240301.2002.update@buyer.example"),
    ("order-delete.xml", "20240601.3003.delete@buyer.example"),
]


def make_source(tmp_path: Path, **settings: object) -> CxmlSource:
    values: dict[str, object] = {"name": "coupa-cxml", "type": "cxml", "spool_dir": "spool"}
    values.update(settings)
    return CxmlSource(
        CxmlSourceConfig.model_validate(values), AdapterContext(tenant="acme", base_dir=tmp_path)
    )


def age(path: Path, day: int) -> None:
    moment = datetime(2024, 1, day, tzinfo=UTC).timestamp()
    os.utime(path, (moment, moment))


def spool_orders(spool: CxmlSpool, names: list[tuple[str, str]]) -> None:
    """Store documents as the receiver would, the first oldest whatever order they are stored in."""
    for day, (name, payload_id) in enumerate(names, start=1):
        assert spool.store(payload_id, (DATA / name).read_bytes())
        age(spool.path_of(payload_id), day)


def pull(source: CxmlSource, processed: set[str] | None = None) -> list[SourceBatch]:
    done = processed or set()
    return list(
        source.pull(PullContext(cursor=None, started_at=datetime.now(UTC), is_processed=done.__contains__))
    )


def test_source_declares_its_port_and_capabilities(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    assert CxmlSource.kind is AdapterKind.SOURCE
    assert CxmlSource.capabilities == frozenset(
        {Capability.FETCH_ONE, Capability.INSPECT, Capability.RECEIVE, Capability.ACKNOWLEDGE}
    )
    assert CxmlSource.Config is CxmlSourceConfig
    assert isinstance(source, POSource)
    assert source.name == "coupa-cxml"


def test_new_update_delete_are_pulled_oldest_first_one_batch_each(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    assert source.spool is not None
    # Stored newest first on purpose: the order comes from age, not from names or storage order.
    for day, (name, payload_id) in reversed(list(enumerate(ORDERS, start=1))):
        source.spool.store(payload_id, (DATA / name).read_bytes())
        age(source.spool.path_of(payload_id), day)

    batches = pull(source)

    assert [b.input_key for b in batches] == [f"cxml|{payload_id}" for _, payload_id in ORDERS]
    pos = [b.records[0].po for b in batches]
    assert [(po.po_number, po.revision, po.status) for po in pos] == [
        ("PO-7001", 1, POStatus.OPEN),
        ("PO-7001", 2, POStatus.OPEN),
        ("PO-7001", 3, POStatus.CANCELLED),
    ]
    assert all(po.tenant == "acme" and po.source == "coupa-cxml" for po in pos)
    assert all(b.rejections == [] for b in batches)
    raw = batches[0].records[0].raw
    assert "<SharedSecret>***</SharedSecret>" in raw and "s3cret-for-tests" not in raw
    assert "<Identity>AN-BUYER-1</Identity>" in raw


def test_processed_documents_are_skipped(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    assert source.spool is not None
    spool_orders(source.spool, ORDERS)
    batches = pull(source, processed={f"cxml|{ORDERS[0][1]}", f"cxml|{ORDERS[2][1]}"})
    assert [b.input_key for b in batches] == [f"cxml|{ORDERS[1][1]}"]


def test_folder_and_spool_are_read_together_and_a_document_in_both_counts_once(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    source = make_source(tmp_path, folder="drop")
    assert source.spool is not None
    spool_orders(source.spool, ORDERS[:2])
    shutil.copy(DATA / "order-new.xml", folder / "again.xml")
    shutil.copy(DATA / "order-delete.xml", folder / "cancel.xml")
    age(folder / "again.xml", 5)
    age(folder / "cancel.xml", 9)
    (folder / "notes.txt").write_text("ignored")

    keys = [b.input_key for b in pull(source)]

    assert keys == [f"cxml|{payload_id}" for _, payload_id in ORDERS]


def test_bad_documents_become_rejections_once_with_an_input_key(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    shutil.copy(DATA / "order-bad-lines.xml", folder / "bad-lines.xml")
    (folder / "broken.xml").write_bytes(b"<cXML><Header>")
    age(folder / "bad-lines.xml", 1)
    age(folder / "broken.xml", 2)
    source = make_source(tmp_path, spool_dir=None, folder=folder)

    bad_lines, broken = pull(source)

    assert bad_lines.records == [] and bad_lines.input_key == "cxml|20240107.1111.bad@buyer.example"
    assert {(p.location, p.field) for p in bad_lines.rejections} == {
        ("ItemOut lineNumber=1", "ItemID/SupplierPartID"),
        ("ItemOut lineNumber=2", "quantity"),
    }
    assert (
        broken.records == [] and broken.input_key is not None and broken.input_key.startswith("cxml|sha256:")
    )
    assert "not well-formed" in broken.rejections[0].reason
    assert broken.rejections[0].document == str(folder / "broken.xml")
    assert pull(source, processed={bad_lines.input_key, broken.input_key}) == []


def test_test_orders_are_refused_unless_enabled(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    shutil.copy(shared_fixture("cxml/OrderRequest-generic.xml"), folder / "generic.xml")

    (refused,) = pull(make_source(tmp_path, spool_dir=None, folder=folder))
    (accepted,) = pull(make_source(tmp_path, spool_dir=None, folder=folder, include_test_orders=True))

    assert refused.records == [] and refused.rejections[0].field == "Request@deploymentMode"
    assert refused.input_key == accepted.input_key == "cxml|1625586002.193314.7293@dev"
    assert accepted.records[0].po.po_number == "DO1234"


def test_fetch_returns_every_revision_of_one_po_oldest_first(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    assert source.spool is not None
    spool_orders(source.spool, ORDERS)
    assert [r.po.revision for r in source.fetch("PO-7001")] == [1, 2, 3]
    assert source.fetch("PO-0000") == []


def test_buyer_id_from_config_overrides_the_from_identity(tmp_path: Path) -> None:
    source = make_source(tmp_path, buyer_id="northwind")
    assert source.spool is not None
    spool_orders(source.spool, ORDERS[:1])
    assert pull(source)[0].records[0].po.buyer_id == "northwind"
    default = make_source(tmp_path)
    assert pull(default)[0].records[0].po.buyer_id == "AN-BUYER-1"


def test_documents_stored_by_the_receiver_are_pulled(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    assert source.spool is not None
    buyer = BuyerCredential("NetworkId", "AN-BUYER-1", "AN-SUPPLIER-9", shared_secret="s3cret-for-tests")
    app = make_app({"northwind": buyer}, source.spool)
    body = (DATA / "order-new.xml").read_bytes()
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    app(environ, lambda status, headers, exc_info=None: statuses.append(status))  # type: ignore[arg-type]
    assert statuses == ["200 OK"]
    (batch,) = pull(source)
    assert batch.input_key == f"cxml|{ORDERS[0][1]}"
    assert batch.records[0].po.po_number == "PO-7001"


def test_parse_cxml_file_gives_the_po_for_inspect() -> None:
    batch = parse_cxml_file(shared_fixture("cxml/OrderRequest-generic.xml"), source="inspect")
    assert [r.po.po_number for r in batch.records] == ["DO1234"]
    assert batch.rejections == []


def test_unreadable_file_is_a_rejection_without_input_key(tmp_path: Path) -> None:
    batch = parse_cxml_file(tmp_path / "missing.xml", source="inspect")
    assert batch.records == [] and batch.input_key is None
    assert "cannot be read" in batch.rejections[0].reason


def test_config_needs_a_spool_or_a_folder_and_the_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="spool_dir, folder or both"):
        CxmlSourceConfig(name="x", type="cxml")
    with pytest.raises(ConfigError, match="not a directory"):
        make_source(tmp_path, spool_dir=None, folder="nowhere")


def test_missing_spool_directory_means_nothing_received_yet(tmp_path: Path) -> None:
    assert pull(make_source(tmp_path)) == []
