"""Whether a tenant's reconcile inputs were written since its last reconciliation.

Triggers (migration 0013) note the tenant in `reconcile_input_changes` whenever a
transaction writes a row reconciliation reads: a PO, a billing period, an outbox row as
reconciliation sees it (not a push), an acknowledgement's decision. They note it whoever
writes, so no writer can be forgotten. A sync that finds no note knows from one indexed read
that nothing reconciliation reads changed, instead of digesting every input; one that finds
a note digests them (`state.reconcile_checkpoints`), and clears the notes it accounted for
when it records its checkpoint.

Which notes a reconciliation accounted for:
- PostgreSQL notes each writing transaction apart (its txid). A reconciliation clears the
  notes of the transactions that had finished when it began (below its snapshot's xmin), whose
  writes every statement it ran could see, and its own. A writer still open when it began
  keeps its note, so the next sync digests again.
- SQLite has one writer at a time (BEGIN IMMEDIATE), so every note a reconciliation sees was
  written before it began or by itself: it clears them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, exists, or_, select, text

from state.tables import reconcile_input_changes as notes


@dataclass(frozen=True)
class Horizon:
    """Which notes a reconciliation begun now accounts for: on PostgreSQL, those of the
    transactions below `xmin` (finished when it began) and of its own; elsewhere, every one."""

    xmin: int | None


def horizon(conn: Connection) -> Horizon:
    """Taken first in a reconciliation's transaction, before it reads any input."""
    if conn.dialect.name != "postgresql":
        return Horizon(None)
    return Horizon(int(conn.execute(text("SELECT txid_snapshot_xmin(txid_current_snapshot())")).scalar_one()))


def written_since_checkpoint(conn: Connection, tenant: str) -> bool:
    """True when some transaction wrote the tenant's reconcile inputs since the notes were last
    cleared (or is still writing them, on PostgreSQL, once it commits)."""
    return bool(conn.execute(select(exists().where(notes.c.tenant == tenant))).scalar())


def clear(conn: Connection, tenant: str, since: Horizon) -> None:
    """Clear the notes a reconciliation begun at `since` accounted for (in its transaction)."""
    query = delete(notes).where(notes.c.tenant == tenant)
    if since.xmin is not None:
        own = text("txid_current()")
        query = query.where(or_(notes.c.txid < since.xmin, notes.c.txid == own))
    conn.execute(query)
