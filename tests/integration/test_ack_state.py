"""PO acknowledgements in the state store on SQLite and PostgreSQL: decided once per revision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from connector.model import AckDecision, PurchaseOrder
from state import acks, ingest
from state.db import ensure_schema, make_engine, upgrade
from state.tables import po_acknowledgements, po_records
from tests.support.factories import make_po
from tests.support.state_engines import DATABASES, migrated_engine, query_plans

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def _decide_all(engine: Engine) -> int:
    with engine.begin() as conn:
        revisions = [
            acks.Revision(po.key, po.revision, po.source, po.po_number, AckDecision.ACCEPT, "known", True)
            for pos in acks.undecided_pos(conn, "default")
            for po in pos
        ]
        return acks.record_revisions(conn, "default", revisions, NOW)


def test_only_new_and_revised_pos_are_decided_and_each_revision_once(engine: Engine) -> None:
    with engine.begin() as conn:
        ingest.store_po(conn, make_po(po_number="PO-1"), "raw", "doc", NOW, None)
        ingest.store_po(conn, make_po(po_number="PO-2"), "raw", "doc", NOW, None)
    assert _decide_all(engine) == 2
    assert _decide_all(engine) == 0
    later = datetime(2026, 12, 8, tzinfo=UTC)
    with engine.begin() as conn:
        assert (
            ingest.store_po(
                conn, make_po(po_number="PO-1", quantity="24", updated=later), "raw2", "d", NOW, None
            ).revision
            == 2
        )
        assert [[po.po_number for po in pos] for pos in acks.undecided_pos(conn, "default")] == [["PO-1"]]
    assert _decide_all(engine) == 1
    with engine.connect() as conn:
        rows = acks.list_acks(conn, "default")
        assert sorted((row["po_number"], row["revision"], row["state"]) for row in rows) == [
            ("PO-1", 1, "planned"),
            ("PO-1", 2, "planned"),
            ("PO-2", 1, "planned"),
        ]


def test_a_rejected_newest_revision_binds_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        ingest.store_po(conn, make_po(po_number="PO-7"), "raw", "doc", NOW, None)
    _decide_all(engine)
    with engine.begin() as conn:
        [row] = acks.latest(conn, "default", "PO-7")
        assert acks.decide(conn, row, AckDecision.REJECT, "not ours", NOW, can_acknowledge=True)
        assert not acks.decide(
            conn,
            acks.latest(conn, "default", "PO-7")[0],
            AckDecision.REJECT,
            "again",
            NOW,
            can_acknowledge=True,
        )
        assert acks.rejected_po_keys(conn, "default") == {row["po_key"]}


def test_undecided_pos_come_a_batch_at_a_time_and_deciding_between_batches_skips_none(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        for n in range(5):
            ingest.store_po(conn, make_po(po_number=f"PO-{n}"), "raw", "doc", NOW, None)
    seen = []
    with engine.begin() as conn:
        for pos in acks.undecided_pos(conn, "default", batch=2):
            seen.append([po.po_number for po in pos])
            revisions = [
                acks.Revision(po.key, po.revision, po.source, po.po_number, AckDecision.ACCEPT, "", True)
                for po in pos
            ]
            assert acks.record_revisions(conn, "default", revisions, NOW) == len(pos)
    assert seen == [["PO-0", "PO-1"], ["PO-2", "PO-3"], ["PO-4"]]
    assert _decide_all(engine) == 0


def test_a_po_whose_id_holds_slashes_is_stamped_decided(engine: Engine) -> None:
    po = make_po(po_number="PO-9").model_copy(update={"external_id": "cxml/2026/PO-9", "source": "a/b"})
    with engine.begin() as conn:
        ingest.store_po(conn, po, "raw", "doc", NOW, None)
    assert _decide_all(engine) == 1
    with engine.connect() as conn:
        assert list(acks.undecided_pos(conn, "default")) == []


def test_the_pos_to_decide_are_read_through_their_index(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure_schema(engine)

    def read() -> None:
        with engine.connect() as conn:
            assert list(acks.undecided_pos(conn, "default")) == []

    (plan,) = query_plans(engine, read, "FROM po_records", "acknowledged_revision")
    assert "ix_po_records_undecided" in plan and not plan.startswith("SCAN"), plan


def test_upgrading_stamps_each_po_whose_current_revision_was_decided(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine, "0013")
    with engine.begin() as conn:
        for po in (make_po(po_number="PO-1"), make_po(po_number="PO-2"), make_po(po_number="PO-3")):
            conn.execute(insert(po_records).values(**_row_of(po)))
        conn.execute(insert(po_acknowledgements), [_ack_of(n, 1) for n in (1, 2)])
        conn.execute(update(po_records).where(po_records.c.po_number == "PO-2").values(revision=2))
    upgrade(engine)
    with engine.connect() as conn:
        assert [[po.po_number for po in pos] for pos in acks.undecided_pos(conn, "default")] == [
            ["PO-2", "PO-3"]
        ]


def _row_of(po: PurchaseOrder) -> dict[str, Any]:
    return {
        "tenant": po.tenant,
        "source": po.source,
        "external_id": po.external_id,
        "po_number": po.po_number,
        "revision": po.revision,
        "status": po.status.value,
        "content_hash": "h",
        "canonical_json": po.model_dump_json(),
        "raw_payload": "raw",
        "raw_sha256": "r",
        "first_seen_at": NOW,
        "last_seen_at": NOW,
        "changed_at": NOW,
    }


def _ack_of(n: int, revision: int) -> dict[str, Any]:
    return {
        "tenant": "default",
        "po_key": f"default/inbox/PO-{n}",
        "revision": revision,
        "source": "inbox",
        "po_number": f"PO-{n}",
        "decision": AckDecision.ACCEPT.value,
        "state": "planned",
        "created_at": NOW,
        "updated_at": NOW,
    }
