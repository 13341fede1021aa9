"""What each customer's last reconciliation was computed from, to tell which must run again.

Reconciliation is a function of the stored POs, the billing periods, the rejected PO revisions,
the outbox's draws on PO balances and holds on billing periods, the settings and maps, and the
day. It decides each customer apart: a period is matched only to a PO of its own customer, and
a PO's balance is drawn only by its customer's periods. So the inputs are digested per customer
(a *scope*: the billing customer ref, or '' for POs whose buyer is in no map), and a sync
reconciles only the scopes whose digest moved.

The digests read only the narrow columns that stand for those inputs (content hashes,
revisions, states), never the documents, so checking costs a scan of keys, not a reconcile.
A PO's customer comes from its buyer through the customer map; the last reconciliation stamps
it on the PO's row (`reconciled_customer`, with the content hash it read). Only a PO whose hash
moved since is parsed again, through the caller's `resolve`, and counts in both its old and its
new customer's digest.

Two things tie customers together, and both are digested:
- an outbox row whose PO now belongs to another customer than its billing period (the PO's
  buyer changed after it was invoiced): those customers form one group, reconciled together;
- who owns each PO number: a period naming another customer's PO says whose it is. The owners
  digest covers that, and when it moves, the scopes with a `po_not_found` result reconcile.

Pushing moves a row from planned to pushed; for reconciliation both are one thing (a live row
that draws on its PO and holds its period), so a push alone does not call for another
reconcile. A row gone dead or withdrawn draws nothing: that changes the digest.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update

from connector.model import po_key
from state.acks import rejected_po_keys
from state.ingest import MOVED
from state.key_chunks import chunks
from state.outbox import DEAD, WITHDRAWN
from state.scopes import MAX_SCOPES, in_scopes
from state.tables import (
    billing_records,
    invoice_outbox,
    match_results,
    po_records,
    reconcile_checkpoints,
    reconcile_scopes,
)

_ROWS_PER_READ = 2000


@dataclass(frozen=True)
class ReconcileInputs:
    """The digests of a tenant's reconcile inputs: per scope, of PO number owners, of settings;
    and, as read now (never stored), how many input rows each scope holds."""

    scopes: dict[str, str]
    owners: str
    settings: str
    sizes: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def overall(self) -> str:
        """One digest of everything: equal exactly when no scope would reconcile."""
        digest = hashlib.sha256(f"reconcile-inputs/2|{self.settings}|{self.owners}\n".encode())
        for scope in sorted(self.scopes):
            digest.update(f"{scope}\x1f{self.scopes[scope]}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class PoStamp:
    """The customer a reconciliation resolved a PO to, its PO number as numbers compare, and
    the content hash both were read from."""

    record_id: int
    customer: str
    number_key: str
    content_hash: str


def current_inputs(
    conn: Connection, tenant: str, settings_digest: str, resolve: Callable[[str], str]
) -> ReconcileInputs:
    """The digests of the tenant's inputs as stored now; `resolve` gives the scope of a PO
    (from its canonical JSON) whose content moved since its last stamp."""
    feeds, owners = _digested(conn, tenant, resolve, None)
    return ReconcileInputs(
        scopes=feeds.group_digests(), owners=owners, settings=settings_digest, sizes=feeds.sizes
    )


def inputs_after(
    conn: Connection,
    tenant: str,
    before: ReconcileInputs,
    reconciled: Collection[str],
    resolve: Callable[[str], str],
) -> ReconcileInputs:
    """The inputs as `current_inputs` would give them after a reconciliation of the customers
    `reconciled` (whole groups, as `changed_scopes` and the batches keep them) that began from
    `before`: their digests taken again from their own rows, every other customer's as
    `before` had it, and the owners of PO numbers digested again (a scan of the POs' keys).

    Reconciling some customers writes only their own rows (a period is matched to a PO of its
    own customer, and every PO whose customer moved was stamped before, its old and new
    customers among the changed), so the others' digests stand. A customer's rows written by
    someone else meanwhile are then not taken as reconciled: the next digest finds them."""
    # With their whole groups as they were: a customer reconciled for a PO number's owner
    # alone may be tied to others, and a group is digested whole.
    groups = {before.scopes[scope] for scope in reconciled if scope in before.scopes}
    only = frozenset(reconciled) | {scope for scope, value in before.scopes.items() if value in groups}
    if len(only) > MAX_SCOPES:  # beyond one list of customers: digest every one
        return current_inputs(conn, tenant, before.settings, resolve)
    feeds, owners = _digested(conn, tenant, resolve, only)
    scopes = {scope: value for scope, value in before.scopes.items() if scope not in only}
    scopes.update((scope, value) for scope, value in feeds.group_digests().items() if scope in only)
    return ReconcileInputs(scopes=scopes, owners=owners, settings=before.settings, sizes=feeds.sizes)


def _digested(
    conn: Connection, tenant: str, resolve: Callable[[str], str], only: frozenset[str] | None
) -> tuple[_Feeds, str]:
    """Every scope's running digest (or only those of the scopes in `only`, from their own
    rows), and the owners digest; each scope is fed its rows in the same order either way."""
    feeds = _Feeds()
    rejected = rejected_po_keys(conn, tenant)
    moved, owners = _po_scopes(conn, tenant, resolve, feeds, only, rejected)
    of_po = _PoScopes(conn, tenant, moved)
    rejected_scopes = of_po.among(rejected)
    for key in sorted(rejected):
        scopes = rejected_scopes.get(key, ())
        if only is None or not only.isdisjoint(scopes):
            feeds.add(scopes, ("rejected", key))
    billing = billing_records.c
    for chunk in _customers_chunks(only):
        query = select(billing.id, billing.customer_ref, billing.billing_key, billing.content_hash).where(
            billing.tenant == tenant
        )
        if chunk is not None:
            query = query.where(in_scopes(billing.customer_ref, chunk))
        for row_id, customer, key, content in conn.execute(
            query.order_by(billing.id).execution_options(yield_per=_ROWS_PER_READ)
        ):
            feeds.add((customer,), ("billing", row_id, key, content))
    for chunk in _customers_chunks(only):
        # Each slice of outbox rows asks for its POs' scopes: no map of every PO is held.
        for rows in _slices(_outbox_rows(conn, tenant, chunk), _ROWS_PER_READ):
            scopes_of = of_po.among([row[1] for row in rows])
            for row in rows:
                customer, scopes = row[0], scopes_of.get(row[1], ())
                linked: Collection[str] = (customer,) if scopes == (customer,) else {customer, *scopes}
                feeds.link(linked)
                feeds.add(linked, ("outbox", *_standing(row[2:])))
    return feeds, owners


class _PoScopes:
    """The scopes of POs by key, as `_po_scopes` gives them, read a slice of keys at a time: a
    PO stamped as it stands is its stamped customer's; a moved one's scopes were found by the
    scan (`moved`); a key of no PO (an invoice without a PO has the key '') has none."""

    def __init__(self, conn: Connection, tenant: str, moved: dict[str, tuple[str, ...]]) -> None:
        self._conn = conn
        self._tenant = tenant
        self._moved = moved
        self._alone: dict[str | None, tuple[str, ...]] = {}
        sources = conn.execute(select(po_records.c.source).where(po_records.c.tenant == tenant).distinct())
        # A key is tenant/source/external id, and a name may hold '/': each source's prefix.
        self._prefixes = [(source, f"{tenant}/{source}/") for (source,) in sources]

    def among(self, keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
        found: dict[str, tuple[str, ...]] = {}
        wanted: dict[str, dict[str, str]] = {}  # source -> external id -> key
        for key in keys:
            if key in self._moved:
                found[key] = self._moved[key]
                continue
            for source, prefix in self._prefixes:
                if key.startswith(prefix):
                    wanted.setdefault(source, {})[key[len(prefix) :]] = key
        latest: dict[str, int] = {}  # where keys coincide, the PO of the highest id, as by key in one map
        pos = po_records.c
        columns = (pos.id, pos.external_id, pos.reconciled_customer, pos.reconciled_hash, pos.content_hash)
        for source, by_id in wanted.items():
            for ids in chunks(sorted(by_id)):
                rows = self._conn.execute(
                    select(*columns).where(
                        pos.tenant == self._tenant, pos.source == source, pos.external_id.in_(ids)
                    )
                )
                for row_id, external_id, customer, stamp, content in rows:
                    key = by_id[external_id]
                    if key in self._moved or latest.get(key, -1) > row_id:
                        continue
                    latest[key] = row_id
                    if stamp == content:
                        alone = self._alone
                        found[key] = alone.get(customer) or alone.setdefault(customer, (customer,))
                    else:  # moved since the scan began (a concurrent writer): its stamp alone
                        found[key] = (customer,) if customer is not None else ()
        return found


def _slices(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    pending = iter(rows)
    while chunk := list(itertools.islice(pending, size)):
        yield chunk


def _customers_chunks(only: frozenset[str] | None) -> Iterator[Sequence[str] | None]:
    """None (every customer) when `only` is None, else `only` in one list (at most MAX_SCOPES):
    one query, so a group's rows come in id order whichever of its customers they are of."""
    yield None if only is None else sorted(only)


def inputs_digest(conn: Connection, tenant: str, settings_digest: str, resolve: Callable[[str], str]) -> str:
    """One SHA-256 over the tenant's reconcile inputs as stored now, and the settings' digest."""
    return current_inputs(conn, tenant, settings_digest, resolve).overall


def _po_scopes(
    conn: Connection,
    tenant: str,
    resolve: Callable[[str], str],
    feeds: _Feeds,
    only: frozenset[str] | None,
    rejected: Collection[str],
) -> tuple[dict[str, tuple[str, ...]], str]:
    """Every PO fed into its scopes (its stamped customer, and its new one if its content moved;
    or only the POs of a scope in `only`); the scopes of the POs whose content moved, by key;
    and the owners digest (each PO's number and scopes)."""
    pos = po_records.c
    moved = [
        row_id
        for (row_id,) in conn.execute(
            select(pos.id)
            .where(
                pos.tenant == tenant,
                or_(pos.reconciled_hash.is_(None), pos.reconciled_hash != pos.content_hash),
            )
            .order_by(pos.id)
        )
    ]
    resolved = _resolve_moved(conn, moved, resolve)
    rows = conn.execute(
        select(
            pos.id,
            pos.source,
            pos.external_id,
            pos.po_number,
            pos.revision,
            pos.status,
            pos.content_hash,
            pos.reconciled_customer,
            pos.reconciled_hash,
        )
        .where(pos.tenant == tenant)
        .order_by(pos.id)
        .execution_options(yield_per=_ROWS_PER_READ)  # a large book is never held whole
    )
    owners = hashlib.sha256(b"po-owners/2\n")
    moved_scopes: dict[str, tuple[str, ...]] = {}
    alone: dict[str, tuple[str]] = {}  # one tuple per customer, shared by its POs
    for row_id, source, external_id, number, revision, status, content, customer, stamp in rows:
        scopes: tuple[str, ...]
        if stamp == content:  # the common case: resolved as it stands
            scopes = alone.get(customer) or alone.setdefault(customer, (customer,))
        else:
            stamped = customer if stamp is not None else None
            scopes = tuple(sorted({scope for scope in (stamped, resolved[row_id]) if scope is not None}))
            if only is None or not only.isdisjoint(scopes):
                feeds.link(scopes)
            moved_scopes[po_key(tenant, source, external_id)] = scopes
        if only is None or not only.isdisjoint(scopes):
            feeds.add(scopes, ("po", row_id, revision, status, content))
        owners.update(_line((row_id, number, scopes)))
    return moved_scopes, owners.hexdigest()


def _resolve_moved(conn: Connection, ids: Sequence[int], resolve: Callable[[str], str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(po_records.c.id, po_records.c.canonical_json).where(po_records.c.id.in_(chunk))
        ):
            found[row.id] = resolve(row.canonical_json)
    return found


def _outbox_rows(conn: Connection, tenant: str, customers: Sequence[str] | None) -> Iterable[Sequence[Any]]:
    rows = invoice_outbox.c
    where = [rows.tenant == tenant]
    if customers is not None:
        where.append(in_scopes(rows.customer_ref, customers))
    return conn.execute(
        select(
            rows.customer_ref,
            rows.po_key,
            rows.id,
            rows.idempotency_key,
            rows.plan_hash,
            rows.po_revision,
            rows.state,
            rows.uncertain,
            rows.document_type,
            rows.credits_key,
            rows.credited_by,
            rows.reissue,
        )
        .where(*where)
        .order_by(rows.id)
        .execution_options(yield_per=_ROWS_PER_READ)
    )


def _standing(row: Sequence[Any]) -> tuple[Any, ...]:
    """An outbox row as reconciliation sees it: planned, retrying, pushing and pushed rows draw
    and hold alike (one "live" standing); dead and withdrawn ones do not."""
    (
        row_id,
        key,
        plan_hash,
        po_revision,
        state,
        uncertain,
        document_type,
        credits_key,
        credited_by,
        reissue,
    ) = row
    standing = state if state in (DEAD, WITHDRAWN) else "live"
    return (
        row_id,
        key,
        plan_hash,
        po_revision,
        standing,
        bool(uncertain) and state == DEAD,
        document_type,
        credits_key,
        credited_by,
        bool(reissue),
    )


def _line(row: tuple[Any, ...]) -> bytes:
    # Every value is a str, int, bool, None or a tuple of str: repr is exact and unambiguous.
    return repr(row).encode()


class _Feeds:
    """One running digest per scope, and the groups of scopes that must reconcile together."""

    def __init__(self) -> None:
        self._digests: dict[str, Any] = {}
        self._parent: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def add(self, scopes: Iterable[str], row: tuple[Any, ...]) -> None:
        line = _line(row)
        for scope in scopes:
            digest = self._digests.get(scope)
            if digest is None:
                digest = self._digests[scope] = hashlib.sha256(b"reconcile-scope/1\n")
                self._parent.setdefault(scope, scope)
                self.sizes[scope] = 0
            digest.update(line)
            self.sizes[scope] += 1

    def link(self, scopes: Collection[str]) -> None:
        if len(scopes) < 2:
            return
        first, *rest = scopes
        for scope in rest:
            self._parent[self._root(scope)] = self._root(first)

    def _root(self, scope: str) -> str:
        parent = self._parent.setdefault(scope, scope)
        while parent != scope:
            grand = self._parent[parent]
            self._parent[scope] = grand
            scope, parent = parent, grand
        return scope

    def group_digests(self) -> dict[str, str]:
        """Each scope's digest: its group's members and their digests, so a group reconciles whole."""
        groups: dict[str, list[str]] = {}
        for scope in self._digests:
            groups.setdefault(self._root(scope), []).append(scope)
        out: dict[str, str] = {}
        for members in groups.values():
            digest = hashlib.sha256(b"reconcile-group/1\n")
            for scope in sorted(members):
                digest.update(f"{scope}\x1f{self._digests[scope].hexdigest()}\n".encode())
            value = digest.hexdigest()
            out.update(dict.fromkeys(members, value))
        return out


def stored_inputs(conn: Connection, tenant: str) -> ReconcileInputs | None:
    """The digests of the tenant's last reconciliation, if one was recorded."""
    checkpoint = conn.execute(
        select(reconcile_checkpoints.c.settings_digest, reconcile_checkpoints.c.owners_digest).where(
            reconcile_checkpoints.c.tenant == tenant
        )
    ).one_or_none()
    if checkpoint is None or not checkpoint.settings_digest:
        return None
    scopes = conn.execute(
        select(reconcile_scopes.c.scope, reconcile_scopes.c.inputs_digest).where(
            reconcile_scopes.c.tenant == tenant
        )
    )
    return ReconcileInputs(
        scopes={row.scope: row.inputs_digest for row in scopes},
        owners=checkpoint.owners_digest,
        settings=checkpoint.settings_digest,
    )


def changed_scopes(conn: Connection, tenant: str, stored: ReconcileInputs, now: ReconcileInputs) -> set[str]:
    """The scopes whose inputs moved (or that came or went) since `stored`; with the owners of
    PO numbers moved, also those with a result naming a PO not found."""
    names = stored.scopes.keys() | now.scopes.keys()
    changed = {scope for scope in names if stored.scopes.get(scope) != now.scopes.get(scope)}
    if stored.owners != now.owners:
        changed |= _scopes_with_po_not_found(conn, tenant)
    return changed


def _scopes_with_po_not_found(conn: Connection, tenant: str) -> set[str]:
    rows = conn.execute(
        select(match_results.c.customer_ref)
        .where(match_results.c.tenant == tenant, match_results.c.reasons_json.contains('"po_not_found"'))
        .distinct()
    )
    return {row.customer_ref or "" for row in rows}


def record(conn: Connection, tenant: str, inputs: ReconcileInputs, now: datetime, run_id: str | None) -> None:
    """Remember what the reconciliation just written (in this transaction) was computed from."""
    forget(conn, tenant)
    conn.execute(
        insert(reconcile_checkpoints).values(
            tenant=tenant,
            inputs_digest=inputs.overall,
            settings_digest=inputs.settings,
            owners_digest=inputs.owners,
            computed_at=now,
            run_id=run_id,
        )
    )
    rows = [
        {"tenant": tenant, "scope": scope, "inputs_digest": value} for scope, value in inputs.scopes.items()
    ]
    if rows:
        conn.execute(insert(reconcile_scopes), rows)


def forget(conn: Connection, tenant: str) -> None:
    """The next sync reconciles in full whatever its inputs."""
    conn.execute(delete(reconcile_checkpoints).where(reconcile_checkpoints.c.tenant == tenant))
    conn.execute(delete(reconcile_scopes).where(reconcile_scopes.c.tenant == tenant))


def stamp(conn: Connection, stamps: Iterable[PoStamp]) -> int:
    """Record each PO's resolved customer with the content hash it was resolved from."""
    values = [
        {
            "record_id": item.record_id,
            "customer": item.customer,
            "number_key": item.number_key,
            "resolved_hash": item.content_hash,
        }
        for item in stamps
    ]
    if values:
        conn.execute(
            update(po_records)
            .where(po_records.c.id == bindparam("record_id"))
            .values(
                reconciled_customer=bindparam("customer"),
                reconciled_number=bindparam("number_key"),
                reconciled_hash=bindparam("resolved_hash"),
            ),
            values,
        )
    return len(values)


def pos_to_resolve(
    conn: Connection, tenant: str, after_id: int, limit: int, *, every: bool
) -> list[tuple[int, str, str]]:
    """(row id, canonical JSON, content hash) of up to `limit` POs past `after_id`, by id:
    those whose content moved since they were last resolved (or never were), or `every` one."""
    c = po_records.c
    query = select(c.id, c.canonical_json, c.content_hash).where(c.tenant == tenant, c.id > after_id)
    if not every:
        query = query.where(MOVED)
    rows = conn.execute(query.order_by(c.id).limit(limit))
    return [(row.id, row.canonical_json, row.content_hash) for row in rows]


def scopes_with_results(conn: Connection, tenant: str) -> set[str]:
    """Every customer with a stored result ('' for the POs of no known customer)."""
    rows = conn.execute(
        select(match_results.c.customer_ref).where(match_results.c.tenant == tenant).distinct()
    )
    return {row.customer_ref or "" for row in rows}
