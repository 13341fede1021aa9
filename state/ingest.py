"""Writes pulled records into the state: POs with revisions, cursors and processed inputs
(billing periods are in `state.billing_store`, quarantined input in `state.quarantine_store`).

Every function takes an open `Connection`, so the caller decides the transaction: the core
commits a source batch (records, rejections, processed input and cursor) in one transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, delete, insert, or_, select, update

from connector.model import PurchaseOrder, po_key
from state.canonical import canonical_json, content_hash
from state.key_chunks import chunks
from state.po_changes import ChangeKind, describe, overall_kind, po_changes
from state.scopes import in_scopes
from state.tables import (
    po_records,
    po_revisions,
    processed_inputs,
    sync_cursors,
)

# Bound parameters per IN list: well under SQLite's 32,766 and PostgreSQL's 65,535.


@dataclass(frozen=True)
class PoWrite:
    """What storing one PO did, the revision it is at, and what changed.

    `outcome` is "new", "revised" (a supplier-visible change: the next revision), "status"
    (opened, closed or cancelled: same revision), "internal" (buyer-side bookkeeping only:
    same revision, not a change), "unchanged" or "stale" (older than what is stored).
    """

    outcome: str
    revision: int
    changes: tuple[dict[str, Any], ...] = ()

    @property
    def changed(self) -> bool:
        """True when the PO now says something different to the supplier or its status moved."""
        return self.outcome in ("new", "revised", "status")


_OUTCOME_OF_KIND = {
    ChangeKind.SUPPLIER: "revised",
    ChangeKind.STATUS: "status",
    ChangeKind.INTERNAL: "internal",
}


def get_cursor(conn: Connection, tenant: str, source: str, stream: str = "default") -> dict[str, Any] | None:
    row = conn.execute(
        select(sync_cursors.c.cursor_json).where(
            sync_cursors.c.tenant == tenant,
            sync_cursors.c.source == source,
            sync_cursors.c.stream == stream,
        )
    ).scalar_one_or_none()
    return None if row is None else dict(json.loads(row))


def set_cursor(
    conn: Connection,
    tenant: str,
    source: str,
    cursor: dict[str, Any],
    now: datetime,
    *,
    stream: str = "default",
    run_id: str | None = None,
) -> None:
    text = json.dumps(cursor, sort_keys=True)
    changed = conn.execute(
        update(sync_cursors)
        .where(
            sync_cursors.c.tenant == tenant,
            sync_cursors.c.source == source,
            sync_cursors.c.stream == stream,
        )
        .values(cursor_json=text, updated_at=now, run_id=run_id)
    ).rowcount
    if not changed:
        conn.execute(
            insert(sync_cursors).values(
                tenant=tenant, source=source, stream=stream, cursor_json=text, updated_at=now, run_id=run_id
            )
        )


def list_cursors(conn: Connection, tenant: str, source: str | None = None) -> list[dict[str, Any]]:
    query = select(sync_cursors).where(sync_cursors.c.tenant == tenant)
    if source:
        query = query.where(sync_cursors.c.source == source)
    return [dict(row._mapping) for row in conn.execute(query.order_by(sync_cursors.c.source))]


def clear_cursor(conn: Connection, tenant: str, source: str, stream: str | None = None) -> int:
    query = delete(sync_cursors).where(sync_cursors.c.tenant == tenant, sync_cursors.c.source == source)
    if stream is not None:
        query = query.where(sync_cursors.c.stream == stream)
    return conn.execute(query).rowcount


def is_processed(conn: Connection, tenant: str, source: str, input_key: str) -> bool:
    return (
        conn.execute(
            select(processed_inputs.c.input_key).where(
                processed_inputs.c.tenant == tenant,
                processed_inputs.c.source == source,
                processed_inputs.c.input_key == input_key,
            )
        ).first()
        is not None
    )


def processed_among(conn: Connection, tenant: str, source: str, keys: Collection[str]) -> set[str]:
    """The keys among `keys` already recorded as processed, asked a chunk at a time."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for chunk in chunks(wanted):
        found.update(
            conn.execute(
                select(processed_inputs.c.input_key).where(
                    processed_inputs.c.tenant == tenant,
                    processed_inputs.c.source == source,
                    processed_inputs.c.input_key.in_(chunk),
                )
            ).scalars()
        )
    return found


@functools.cache
def _marking(dialect: str) -> Executable | None:
    """INSERT INTO processed_inputs ... ON CONFLICT DO NOTHING in the dialect, built once
    (imported when used: PostgreSQL's dialect costs an SQLite job its import time)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(processed_inputs).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(processed_inputs).on_conflict_do_nothing()
    return None


def mark_processed(
    conn: Connection,
    tenant: str,
    source: str,
    input_key: str,
    document: str,
    now: datetime,
    run_id: str | None,
) -> bool:
    """Record a one-shot input; False when it was already recorded (a concurrent run won)."""
    values = {
        "tenant": tenant,
        "source": source,
        "input_key": input_key,
        "document": document,
        "processed_at": now,
        "run_id": run_id,
    }
    statement = _marking(conn.dialect.name)
    if statement is not None:  # one statement, and a concurrent run's row waited for, not raced
        return bool(conn.execute(statement, values).rowcount)
    if is_processed(conn, tenant, source, input_key):
        return False
    conn.execute(insert(processed_inputs), values)
    return True


def forget_processed(conn: Connection, tenant: str, source: str, input_key: str) -> int:
    """Let a one-shot input be processed again (quarantine retry, resync)."""
    return conn.execute(
        delete(processed_inputs).where(
            processed_inputs.c.tenant == tenant,
            processed_inputs.c.source == source,
            processed_inputs.c.input_key == input_key,
        )
    ).rowcount


def preview_po(conn: Connection, po: PurchaseOrder) -> tuple[str, list[dict[str, Any]]]:
    """What storing `po` would do, without writing: the outcome `store_po` would give, and the changes."""
    existing = conn.execute(
        select(po_records.c.content_hash, po_records.c.canonical_json).where(
            po_records.c.tenant == po.tenant,
            po_records.c.source == po.source,
            po_records.c.external_id == po.external_id,
        )
    ).first()
    new = json.loads(canonical_json(po))
    if existing is None:
        return "new", po_changes(None, new)
    if existing.content_hash == content_hash(po):
        return "unchanged", []
    changes = po_changes(json.loads(existing.canonical_json), new)
    kind = overall_kind(changes)
    return (_OUTCOME_OF_KIND[kind] if kind else "unchanged"), changes


def store_po(
    conn: Connection,
    po: PurchaseOrder,
    raw: str,
    document: str,
    now: datetime,
    run_id: str | None,
    *,
    force: bool = False,
) -> PoWrite:
    """Insert or revise a PO by its key; an unchanged content hash costs no write.

    A PO older than the stored one (by `source_updated_at`) is ignored as stale. Only a
    supplier-visible change starts a revision: the source's revision when it is higher, else the
    next one. A status or internal change is recorded in the history under the same revision.
    The source's own version is kept as it stands. `force` (resync) rewrites the raw payload even
    when the content is unchanged.
    """
    digest = content_hash(po)
    existing = conn.execute(
        select(
            po_records.c.id,
            po_records.c.revision,
            po_records.c.content_hash,
            po_records.c.canonical_json,
            po_records.c.source_updated_at,
            po_records.c.source_version,
        ).where(
            po_records.c.tenant == po.tenant,
            po_records.c.source == po.source,
            po_records.c.external_id == po.external_id,
        )
    ).first()
    raw_sha256 = po.raw_sha256 or hashlib.sha256(raw.encode("utf-8")).hexdigest()
    if existing is None:
        stored = po.model_copy(update={"revision": max(po.revision, 1)})
        text = canonical_json(stored)
        # Values as parameters of one unchanging statement: compiled once per process.
        inserted = conn.execute(
            insert(po_records),
            {
                "tenant": po.tenant,
                "source": po.source,
                "external_id": po.external_id,
                "po_number": po.po_number,
                "revision": stored.revision,
                "source_version": po.source_version,
                "status": po.status.value,
                "content_hash": digest,
                "canonical_json": text,
                "raw_payload": raw,
                "raw_sha256": raw_sha256,
                "document": document,
                "source_updated_at": po.source_updated_at,
                "first_seen_at": now,
                "last_seen_at": now,
                "changed_at": now,
            },
        ).inserted_primary_key
        assert inserted is not None
        changes = po_changes(None, json.loads(text))
        record_id = int(inserted[0])
        _record_revision(conn, record_id, stored, digest, text, changes, ChangeKind.SUPPLIER, now, run_id)
        return PoWrite("new", stored.revision, tuple(changes))
    if (
        po.source_updated_at is not None
        and existing.source_updated_at is not None
        and po.source_updated_at < existing.source_updated_at
    ):
        return PoWrite("stale", existing.revision)
    source_version = po.source_version or existing.source_version
    if existing.content_hash == digest and not force:
        seen: dict[str, Any] = {"last_seen_at": now}
        if source_version != existing.source_version:  # a new label on the same content
            relabelled = PurchaseOrder.model_validate_json(existing.canonical_json)
            seen["source_version"] = source_version
            seen["canonical_json"] = canonical_json(
                relabelled.model_copy(update={"source_version": source_version})
            )
        conn.execute(update(po_records).where(po_records.c.id == existing.id).values(**seen))
        return PoWrite("unchanged", existing.revision)
    changes = po_changes(json.loads(existing.canonical_json), json.loads(canonical_json(po)))
    kind = overall_kind(changes) if existing.content_hash != digest else None
    revision = existing.revision
    if kind is ChangeKind.SUPPLIER:
        revision = po.revision if po.revision > existing.revision else existing.revision + 1
    stored = po.model_copy(update={"revision": revision, "source_version": source_version})
    text = canonical_json(stored)
    conn.execute(
        update(po_records)
        .where(po_records.c.id == existing.id)
        .values(
            po_number=po.po_number,
            revision=revision,
            source_version=source_version,
            status=po.status.value,
            content_hash=digest,
            canonical_json=text,
            raw_payload=raw,
            raw_sha256=raw_sha256,
            document=document,
            source_updated_at=po.source_updated_at or existing.source_updated_at,
            last_seen_at=now,
            **({"changed_at": now} if kind in (ChangeKind.SUPPLIER, ChangeKind.STATUS) else {}),
        )
    )
    if kind is None:
        return PoWrite("unchanged", revision)
    _record_revision(conn, existing.id, stored, digest, text, changes, kind, now, run_id)
    return PoWrite(_OUTCOME_OF_KIND[kind], revision, tuple(changes))


def _record_revision(
    conn: Connection,
    record_id: int,
    stored: PurchaseOrder,
    digest: str,
    text: str,
    changes: list[dict[str, Any]],
    kind: ChangeKind,
    now: datetime,
    run_id: str | None,
) -> None:
    conn.execute(
        insert(po_revisions),
        {
            "po_record_id": record_id,
            "revision": stored.revision,
            "source_version": stored.source_version,
            "change_kind": kind.value,
            "content_hash": digest,
            "canonical_json": text,
            "changes_json": json.dumps(changes),
            "recorded_at": now,
            "run_id": run_id,
        },
    )


def load_pos(conn: Connection, tenant: str) -> list[PurchaseOrder]:
    rows = conn.execute(
        select(po_records.c.canonical_json).where(po_records.c.tenant == tenant).order_by(po_records.c.id)
    )
    return [PurchaseOrder.model_validate_json(row.canonical_json) for row in rows]


@dataclass(frozen=True)
class StoredPo:
    """A stored PO with its row id and content hash; `moved` when its content moved since its
    customer was last resolved (or it never was)."""

    record_id: int
    po: PurchaseOrder
    content_hash: str
    moved: bool


# A PO whose content moved since it was last resolved to a customer (or that never was); the
# partial index ix_po_records_moved (0012) is written with this very condition.
MOVED = or_(po_records.c.reconciled_hash.is_(None), po_records.c.reconciled_hash != po_records.c.content_hash)


def load_pos_of(conn: Connection, tenant: str, scopes: Collection[str]) -> list[StoredPo]:
    """The tenant's POs (those of the customers in `scopes`, and every PO whose content moved
    since it was last resolved) with their stamps, in storage order."""
    c = po_records.c
    query = select(c.id, c.canonical_json, c.content_hash, c.reconciled_hash).where(c.tenant == tenant)
    # Two reads, each from its index (by customer; the moved ones), rather than one OR of both,
    # which reads the whole table.
    rows = {row.id: row for row in conn.execute(query.where(in_scopes(c.reconciled_customer, scopes)))}
    rows.update((row.id, row) for row in conn.execute(query.where(MOVED)))
    return [
        StoredPo(
            record_id=row.id,
            po=PurchaseOrder.model_validate_json(row.canonical_json),
            content_hash=row.content_hash,
            moved=row.reconciled_hash != row.content_hash,
        )
        for _, row in sorted(rows.items())
    ]


def po_numbers_outside(
    conn: Connection, tenant: str, scopes: Collection[str], number_keys: Collection[str]
) -> list[tuple[str, str, str]]:
    """(PO key, number key, customer) of the resolved POs numbered one of `number_keys` (as
    numbers compare: trimmed, case-folded) whose customer is not in `scopes`."""
    c = po_records.c
    wanted = sorted(number_keys)
    found: list[tuple[str, str, str]] = []
    for chunk in chunks(wanted):
        rows = conn.execute(
            select(c.source, c.external_id, c.reconciled_number, c.reconciled_customer).where(
                c.tenant == tenant,
                c.reconciled_number.in_(chunk),
                c.reconciled_hash == c.content_hash,
                ~in_scopes(c.reconciled_customer, scopes),
            )
        )
        found += [
            (po_key(tenant, row.source, row.external_id), row.reconciled_number, row.reconciled_customer)
            for row in rows
        ]
    return found


def po_changes_since(conn: Connection, po: PurchaseOrder, revision: int) -> list[str]:
    """What the supplier sees changed in `po` since its `revision`, one line per change."""
    recorded = conn.execute(
        select(po_revisions.c.canonical_json)
        .join(po_records, po_revisions.c.po_record_id == po_records.c.id)
        .where(
            po_records.c.tenant == po.tenant,
            po_records.c.source == po.source,
            po_records.c.external_id == po.external_id,
            po_revisions.c.revision == revision,
        )
        .order_by(po_revisions.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if recorded is None:
        return []
    changes = po_changes(json.loads(recorded), json.loads(canonical_json(po)))
    return [describe(change) for change in changes if change["kind"] == ChangeKind.SUPPLIER.value]


def po_revision_history(conn: Connection, tenant: str, po_number: str) -> list[dict[str, Any]]:
    """Every recorded version of the PO(s) with this number, oldest first, with what changed."""
    query = (
        select(
            po_records.c.source,
            po_records.c.external_id,
            po_revisions.c.revision,
            po_revisions.c.source_version,
            po_revisions.c.change_kind,
            po_revisions.c.changes_json,
            po_revisions.c.recorded_at,
        )
        .join(po_revisions, po_revisions.c.po_record_id == po_records.c.id)
        .where(po_records.c.tenant == tenant, po_records.c.po_number == po_number)
        .order_by(po_revisions.c.id)
    )
    return [
        {
            "source": row.source,
            "external_id": row.external_id,
            "revision": row.revision,
            "source_version": row.source_version,
            "kind": row.change_kind,
            "changes": json.loads(row.changes_json),
            "recorded_at": row.recorded_at.isoformat(),
        }
        for row in conn.execute(query)
    ]


def po_at_revision(conn: Connection, po_key: str, revision: int) -> PurchaseOrder | None:
    """The PO keyed `po_key` as it was at `revision` (its latest record of that revision)."""
    tenant, source, external_id = po_key.split("/", 2)
    recorded = conn.execute(
        select(po_revisions.c.canonical_json)
        .join(po_records, po_revisions.c.po_record_id == po_records.c.id)
        .where(
            po_records.c.tenant == tenant,
            po_records.c.source == source,
            po_records.c.external_id == external_id,
            po_revisions.c.revision == revision,
        )
        .order_by(po_revisions.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if recorded is None else PurchaseOrder.model_validate_json(recorded)


def stored_payload(conn: Connection, po_key: str) -> tuple[int, str, str] | None:
    """The revision, raw payload and document name the PO keyed `po_key` was last stored with."""
    tenant, source, external_id = po_key.split("/", 2)
    row = conn.execute(
        select(po_records.c.revision, po_records.c.raw_payload, po_records.c.document).where(
            po_records.c.tenant == tenant,
            po_records.c.source == source,
            po_records.c.external_id == external_id,
        )
    ).first()
    return None if row is None else (int(row.revision), str(row.raw_payload), str(row.document or ""))
