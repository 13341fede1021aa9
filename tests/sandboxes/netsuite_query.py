"""The part of SuiteQL the NetSuite sandbox answers: `SELECT cols FROM transaction WHERE
col = 'v' AND col IN ('a', 'b')` over its invoices and credit memos, values as strings."""

from __future__ import annotations

import re
from typing import Any

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+transaction(?:\s+WHERE\s+(?P<where>.+?))?\s*$", re.I | re.S
)
_EQUALS = re.compile(r"^(?P<col>\w+)\s*=\s*'(?P<value>[^']*)'$")
_IN = re.compile(r"^(?P<col>\w+)\s+IN\s*\((?P<values>.*)\)$", re.I | re.S)

# SuiteQL's transaction type of each record type.
INVOICE_TYPE = "CustInvc"
CREDIT_MEMO_TYPE = "CustCred"


def transaction_row(record: dict[str, Any], kind: str) -> dict[str, str]:
    """A record as a row of SuiteQL's `transaction` table: every value a string, and the total
    of a credit transaction signed negative, as SuiteQL signs it."""
    total = record["total"]
    return {
        "id": record["id"],
        "externalid": record["externalId"],
        "tranid": str(record.get("tranId", "")),
        "otherrefnum": str(record.get("otherRefNum", "")),
        "type": kind,
        "foreigntotal": f"{-total if kind == CREDIT_MEMO_TYPE else total:f}",
        "createdfrom": str((record.get("createdFrom") or {}).get("id", "")),
    }


def select(query: str, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The rows a query selects, with the columns it names; ValueError for what it cannot read."""
    parsed = _SELECT.match(query)
    if parsed is None:
        raise ValueError(query)
    columns = [c.strip().lower() for c in parsed["cols"].split(",")]
    conditions = _conditions(parsed["where"] or "")
    return [
        {"links": [], **{c: row.get(c) for c in columns}}
        for row in rows
        if all(str(row.get(col, "")).lower() in allowed for col, allowed in conditions)
    ]


def _conditions(where: str) -> list[tuple[str, set[str]]]:
    conditions = []
    for part in re.split(r"\s+AND\s+", where.strip(), flags=re.I) if where.strip() else []:
        if match := _EQUALS.match(part.strip()):
            conditions.append((match["col"].lower(), {match["value"].lower()}))
        elif match := _IN.match(part.strip()):
            values = {v.strip().strip("'").lower() for v in match["values"].split(",")}
            conditions.append((match["col"].lower(), values))
        else:
            raise ValueError(f"unsupported condition {part!r}")
    return conditions
