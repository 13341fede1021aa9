"""What changed between two stored versions of a PO, and what kind of change it is.

A change is one of three kinds, and the kind decides what happens to our revision number:

- `supplier`: something the supplier invoices against (lines, prices, quantities, term, currency,
  payment terms, addresses, the PO number). It starts the next revision; an invoice sent against
  the previous revision is flagged for review.
- `status`: the PO was opened, closed or cancelled (our status or the source's own). It is
  recorded in the history and acted on by reconciliation, but is the same revision.
- `internal`: buyer-side bookkeeping the supplier never sees (approver, custom fields). It is
  recorded and kept, but neither a revision nor a "changed" PO.

A document's own version (Coupa `version`, cXML `orderVersion`, UBL `SequenceNumberID`) is kept
beside our revision as `source_version`; it is not itself a change.
"""

from __future__ import annotations

import enum
from typing import Any


class ChangeKind(enum.StrEnum):
    """How much a change to a PO matters to the supplier, most first."""

    SUPPLIER = "supplier"
    STATUS = "status"
    INTERNAL = "internal"


STATUS_FIELDS = frozenset({"status", "source_status"})
INTERNAL_FIELDS = frozenset({"approver", "extrinsics"})
# Bookkeeping of the record itself, never a change of what the PO says.
NOT_COMPARED = frozenset(
    {
        "lines",
        "revision",
        "source_version",
        "source_updated_at",
        "raw_sha256",
        "origin_message",
        "origin_sender",
    }
)


def field_kind(field: str) -> ChangeKind:
    """The kind of a change to one header field."""
    if field in STATUS_FIELDS:
        return ChangeKind.STATUS
    if field in INTERNAL_FIELDS:
        return ChangeKind.INTERNAL
    return ChangeKind.SUPPLIER


def po_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference between two canonical PO dicts: header fields first, then lines.

    A new PO lists its lines as added. Each entry names its `kind`; header entries carry
    `field`, `from` and `to`, line entries `line_no`, `change` and, when modified, `fields`.
    """
    changes: list[dict[str, Any]] = []
    if old is not None:
        for field in sorted((set(old) | set(new)) - NOT_COMPARED):
            before, after = old.get(field), new.get(field)
            if before != after:
                changes.append({"kind": field_kind(field).value, "field": field, "from": before, "to": after})
    changes.extend(line_changes(old, new))
    return changes


def line_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-line differences between two canonical PO dicts (supplier-visible by nature)."""
    old_lines = {line["line_no"]: line for line in (old or {}).get("lines", [])}
    new_lines = {line["line_no"]: line for line in new.get("lines", [])}
    changes: list[dict[str, Any]] = []
    supplier = ChangeKind.SUPPLIER.value
    for number in sorted(set(old_lines) | set(new_lines)):
        before, after = old_lines.get(number), new_lines.get(number)
        if before == after:
            continue
        if before is None:
            changes.append({"kind": supplier, "line_no": number, "change": "added"})
        elif after is None:
            changes.append({"kind": supplier, "line_no": number, "change": "removed"})
        else:
            fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            changes.append(
                {
                    "kind": supplier,
                    "line_no": number,
                    "change": "modified",
                    "fields": {f: [before.get(f), after.get(f)] for f in fields},
                }
            )
    return changes


def overall_kind(changes: list[dict[str, Any]]) -> ChangeKind | None:
    """The weightiest kind among the changes; None when nothing changed."""
    kinds = {change["kind"] for change in changes}
    for kind in ChangeKind:  # declared most significant first
        if kind.value in kinds:
            return kind
    return None


def describe(change: dict[str, Any]) -> str:
    """One change as a line a person reads: `status: open -> closed`, `line 2 added`."""
    if "field" in change:
        return f"{change['field']}: {_short(change['from'])} -> {_short(change['to'])}"
    text = f"line {change['line_no']} {change['change']}"
    fields = change.get("fields") or {}
    if fields:
        text += " (" + ", ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in fields.items()) + ")"
    return text


def _short(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict):
        shown = (f"{k}={_short(v)}" for k, v in sorted(value.items()) if v not in (None, ""))
        return "{" + ", ".join(shown) + "}"
    return str(value)
