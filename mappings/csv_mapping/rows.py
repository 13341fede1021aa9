"""Rows to POs: columns matched to fields, rows grouped by PO (and version), each group one PO or problems."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from connector.errors import InputProblem
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder
from mappings.csv_mapping.profile import (
    HEADER_FIELDS,
    LINE_FIELDS,
    PARTY_PARTS,
    REQUIRED_FIELDS,
    ROW_REQUIRED,
    CsvMapping,
    CsvTable,
    status_key,
)
from mappings.csv_mapping.values import (
    country_code,
    currency_code,
    email_address,
    parse_date,
    parse_decimal,
    parse_payment_terms,
    plain_text,
    positive_int,
    revision_number,
)


@dataclass
class _Row:
    number: int
    cells: list[str]


@dataclass
class _Group:
    po_number: str
    rows: list[_Row] = field(default_factory=list)


class _Reader:
    """Reads one table with one mapping, collecting problems as it goes."""

    def __init__(self, table: CsvTable, mapping: CsvMapping, source: str, document: str) -> None:
        self.table = table
        self.mapping = mapping
        self.source = source
        self.document = document
        self.columns = mapping.locate(table.header)
        self.problems: list[InputProblem] = []
        decimal = mapping.decimal_for(table.delimiter)
        guessed = mapping.decimal_separator == "auto"
        formats = mapping.date_formats

        def number(value: str) -> Decimal:
            return parse_decimal(value, decimal, guessed=guessed)

        def quantity(value: str) -> Decimal:
            parsed = number(value)
            if parsed <= 0:
                raise ValueError("must be greater than zero")
            return parsed

        def price(value: str) -> Decimal:
            parsed = number(value)
            if parsed < 0:
                raise ValueError("must not be negative")
            return parsed

        def a_date(value: str) -> date:
            return parse_date(value, formats)

        def status(value: str) -> POStatus:
            found = mapping.status_values.get(status_key(value))
            if found is None:
                known = ", ".join(sorted(mapping.status_values)) or "none configured"
                raise ValueError(f"unknown PO status (known: {known})")
            return found

        parsers: dict[str, Callable[[str], Any]] = {
            "line_no": positive_int,
            "quantity": quantity,
            "unit_price": price,
            "currency": currency_code,
            "term_start": a_date,
            "term_end": a_date,
            "issued_on": a_date,
            "payment_terms": parse_payment_terms,
            "status": status,
            "revision": revision_number,
            "bill_to_email": email_address,
            "ship_to_email": email_address,
            "bill_to_country": country_code,
            "ship_to_country": country_code,
        }
        self.parsers = parsers

    def problem(self, row: int | str, canonical: str, value: str, reason: str) -> None:
        index = self.columns.get(canonical)
        spec = self.mapping.fields.get(canonical)
        fallback = spec.column if spec else canonical
        column = self.table.header[index] if index is not None else fallback
        where = row if isinstance(row, str) else f"row {row}"
        self.problems.append(
            InputProblem(self.source, self.document, where, column, value, f"{canonical}: {reason}")
        )

    def cell(self, row: _Row, canonical: str) -> str:
        index = self.columns.get(canonical)
        if index is None or index >= len(row.cells):
            return ""
        return row.cells[index].strip()

    def parse_row(self, row: _Row, names: Sequence[str]) -> dict[str, Any] | None:
        """Parsed non-blank cells of `names`; None (with problems recorded) if any is bad."""
        values: dict[str, Any] = {}
        ok = True
        for canonical in names:
            raw = self.cell(row, canonical)
            if not raw:
                if canonical in ROW_REQUIRED:
                    self.problem(row.number, canonical, raw, "is required")
                    ok = False
                continue
            try:
                values[canonical] = self.parsers.get(canonical, plain_text)(raw)
            except ValueError as exc:
                self.problem(row.number, canonical, raw, str(exc))
                ok = False
        start, end = values.get("term_start"), values.get("term_end")
        if ok and start and end and end < start:
            self.problem(row.number, "term_end", self.cell(row, "term_end"), f"is before term start {start}")
            ok = False
        return values if ok else None


def rows_to_pos(
    rows: CsvTable,
    mapping: CsvMapping,
    *,
    source: str,
    document: str,
    tenant: str = "default",
    buyer_id_default: str = "",
    raw_sha256: str = "",
    updated_at: datetime | None = None,
) -> tuple[list[tuple[PurchaseOrder, str]], list[InputProblem]]:
    """Purchase orders from a table with one row per PO line, grouped by PO number.

    Returns each PO with the raw CSV text of its rows (header included), and the problems found.
    Row numbers count records as a spreadsheet shows them: the header is row 1.
    """
    reader = _Reader(rows, mapping, source, document)
    if not any(cell.strip() for cell in rows.header):
        reader.problems.append(InputProblem(source, document, "row 1", "", "", "no header row"))
        return [], reader.problems
    missing = [name for name in REQUIRED_FIELDS if name not in reader.columns]
    for name in missing:
        names = ", ".join(repr(n) for n in mapping.fields[name].names())
        reader.problem("row 1", name, "", f"required column missing (looked for {names})")
    if missing:
        return [], reader.problems

    groups: dict[tuple[str, str], _Group] = {}
    for index, cells in enumerate(rows.rows):
        row = _Row(index + 2, cells)
        if not any(cell.strip() for cell in cells):
            continue
        extra = [cell for cell in cells[len(rows.header) :] if cell.strip()]
        if extra:
            reason = f"row has {len(cells)} cells but the header has {len(rows.header)} columns"
            reader.problems.append(InputProblem(source, document, f"row {row.number}", "", extra[0], reason))
            continue
        po_number = reader.cell(row, "po_number")
        if not po_number:
            reader.problem(row.number, "po_number", "", "is required")
            continue
        # An export may hold several versions of one PO (a row per line per version): each
        # version is its own group, and the versions go out oldest first so the latest wins.
        version = reader.cell(row, "revision") if "revision" in reader.columns else ""
        groups.setdefault((po_number, version), _Group(po_number)).rows.append(row)

    results: list[tuple[PurchaseOrder, str]] = []
    for group in groups.values():
        po = _build_po(reader, group, tenant, buyer_id_default, raw_sha256, updated_at)
        if po is not None:
            results.append((po, _raw_text(rows, group)))
    first_seen = {po_number: index for index, (po_number, _) in reversed(list(enumerate(groups)))}
    results.sort(key=lambda found: (first_seen[found[0].po_number], found[0].revision))
    return results, reader.problems


def _build_po(
    reader: _Reader,
    group: _Group,
    tenant: str,
    buyer_id_default: str,
    raw_sha256: str,
    updated_at: datetime | None,
) -> PurchaseOrder | None:
    header: dict[str, Any] = {}
    first_row_of: dict[str, _Row] = {}
    lines: list[POLine] = []
    line_rows: dict[int, int] = {}
    refused: list[int] = []
    for position, row in enumerate(group.rows, start=1):
        line_values = reader.parse_row(row, LINE_FIELDS)
        header_values = reader.parse_row(row, HEADER_FIELDS)
        if line_values is None or header_values is None:
            refused.append(row.number)
            continue
        rejected = False
        for name, value in header_values.items():
            if name in header and header[name] != value:
                earlier = first_row_of[name].number
                reason = f"conflicts with {_show(header[name])!r} in row {earlier} of the same PO"
                reader.problem(row.number, name, reader.cell(row, name), reason)
                rejected = True
        currency = header_values.get("currency", header.get("currency"))
        if currency is None:
            reader.problem(row.number, "currency", "", "is required")
            rejected = True
        line_no: int = line_values.get("line_no", position)
        if line_no in line_rows:
            reason = f"line {line_no} is already row {line_rows[line_no]} of the same PO"
            reader.problem(row.number, "line_no", reader.cell(row, "line_no"), reason)
            rejected = True
        if rejected:
            refused.append(row.number)
            continue
        for name, value in header_values.items():
            if name not in header:
                header[name] = value
                first_row_of[name] = row
        line_rows[line_no] = row.number
        lines.append(
            POLine(
                line_no=line_no,
                sku=line_values["sku"],
                description=line_values.get("description", ""),
                quantity=line_values["quantity"],
                unit_price=Money(amount=line_values["unit_price"], currency=currency),
                unit_of_measure=line_values.get("unit_of_measure", "EA"),
            )
        )
    if refused and lines:
        # A PO missing a refused line is not the PO the buyer sent: it is held whole, so its
        # earlier revision (if any) stays in force and nothing is invoiced against a part of it.
        rows_text = ", ".join(str(number) for number in refused)
        reason = f"PO held whole: row {rows_text} of it refused (see the row's problem); fix and retry"
        where = f"rows {group.rows[0].number}-{group.rows[-1].number}"
        reader.problems.append(
            InputProblem(reader.source, reader.document, where, "po_number", group.po_number, reason)
        )
        return None
    if refused or not lines:
        return None
    status_row = first_row_of.get("status")
    buyer = header.get("buyer_id", buyer_id_default)
    try:
        return PurchaseOrder(
            tenant=tenant,
            source=reader.source,
            # Two buyers may use the same PO number: the buyer is part of the PO's identity.
            external_id=f"{buyer}/{group.po_number}" if buyer else group.po_number,
            po_number=group.po_number,
            revision=header.get("revision", 1),
            source_version=str(header["revision"]) if "revision" in header else "",
            status=header.get("status", POStatus.OPEN),
            source_status=reader.cell(status_row, "status") if status_row else "",
            buyer_id=header.get("buyer_id", buyer_id_default),
            buyer_name=header.get("buyer_name", ""),
            bill_to=_address(header, "bill_to"),
            ship_to=_address(header, "ship_to"),
            currency=header["currency"],
            payment_terms=header.get("payment_terms"),
            term_start=header.get("term_start"),
            term_end=header.get("term_end"),
            issued_on=header.get("issued_on"),
            lines=tuple(lines),
            approver=header.get("approver", ""),
            source_updated_at=updated_at,
            raw_sha256=raw_sha256,
        )
    except ValidationError as exc:
        where = f"rows {group.rows[0].number}-{group.rows[-1].number}"
        reason = "; ".join(err["msg"] for err in exc.errors())
        reader.problems.append(
            InputProblem(reader.source, reader.document, where, "", group.po_number, reason)
        )
        return None


def _show(value: Any) -> str:
    if isinstance(value, PaymentTerms):
        return value.code
    if isinstance(value, POStatus):
        return value.value
    return str(value)


def _address(header: Mapping[str, Any], prefix: str) -> Address | None:
    parts: dict[str, str] = {part: header.get(f"{prefix}_{part}", "") for part in PARTY_PARTS}
    if not any(parts.values()):
        return None
    street = parts.pop("street")
    return Address(lines=(street,) if street else (), **parts)


def _raw_text(table: CsvTable, group: _Group) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=table.delimiter, lineterminator="\n")
    writer.writerow(table.header)
    for row in group.rows:
        writer.writerow(row.cells)
    return buffer.getvalue()
