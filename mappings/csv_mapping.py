"""Declarative mapping of PO spreadsheets (one row per PO line) to canonical purchase orders.

A mapping profile (`mappings/<name>.toml`) names, for each canonical field, the column that holds
it and its aliases, plus the date formats and the decimal separator. `rows_to_pos` groups the rows
of a table by PO number and turns each group into a `PurchaseOrder`; every bad cell becomes an
`InputProblem` naming the document, the row, the column as written and the value, and only the
row it is in is dropped.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.currency import is_known_currency
from connector.errors import ConfigError, InputProblem
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder

REQUIRED_FIELDS = ("po_number", "sku", "quantity", "unit_price", "currency")
# Needed in every row; the other required fields may be left blank after a PO's first row.
_ROW_REQUIRED = ("sku", "quantity", "unit_price")
LINE_FIELDS = ("line_no", "sku", "description", "quantity", "unit_price", "unit_of_measure")
_PARTY_PARTS = ("name", "street", "city", "region", "postal_code", "country", "email")
HEADER_FIELDS = (
    "currency",
    "term_start",
    "term_end",
    "payment_terms",
    "issued_on",
    "buyer_id",
    "buyer_name",
    "status",
    "revision",
    "approver",
    *(f"bill_to_{part}" for part in _PARTY_PARTS),
    *(f"ship_to_{part}" for part in _PARTY_PARTS),
)
CANONICAL_FIELDS = ("po_number", *LINE_FIELDS, *HEADER_FIELDS)

DecimalSeparator = Literal["auto", ".", ","]


def normalize_header(name: str) -> str:
    """The form column names are compared in: case, spaces, `_`, `-` and `.` do not count."""
    return re.sub(r"[\s_\-.]+", "", name).casefold()


class CsvTable(NamedTuple):
    """A parsed CSV file: the header, the data rows (row 2 onwards) and the delimiter."""

    header: list[str]
    rows: list[list[str]]
    delimiter: str


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field is found: its column name, then its aliases in priority order."""

    column: str
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.column, *self.aliases)


@dataclass(frozen=True)
class CsvMapping:
    """A loaded mapping profile: column names per canonical field and how to read cells."""

    name: str
    fields: Mapping[str, FieldSpec]
    date_formats: tuple[str, ...]
    decimal_separator: DecimalSeparator = "auto"
    status_values: Mapping[str, POStatus] = field(default_factory=dict)

    def decimal_for(self, delimiter: str) -> Literal[".", ","]:
        """The decimal separator of a file with this delimiter."""
        if self.decimal_separator == "auto":
            return "," if delimiter == ";" else "."
        return self.decimal_separator

    def locate(self, header: Sequence[str]) -> dict[str, int]:
        """Column index per canonical field found in `header` (the first matching column wins)."""
        positions: dict[str, int] = {}
        for index, name in enumerate(header):
            positions.setdefault(normalize_header(name), index)
        found: dict[str, int] = {}
        for canonical, spec in self.fields.items():
            for name in spec.names():
                position = positions.get(normalize_header(name))
                if position is not None:
                    found[canonical] = position
                    break
        return found


# ---------------------------------------------------------------------------- loading profiles


class _FieldEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class _MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date_formats: list[str] = Field(min_length=1)
    decimal_separator: DecimalSeparator = "auto"
    status_values: dict[POStatus, list[str]] = Field(default_factory=dict)
    fields: dict[str, _FieldEntry]


_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def is_mapping_name(text: str) -> bool:
    """True for the name of a built-in profile ("csv_default"), False for a file path."""
    return _NAME.fullmatch(text) is not None


def load_mapping(name_or_path: str | Path) -> CsvMapping:
    """Load a profile: a bare name is `mappings/<name>.toml` in this package, else a file path.

    Raises ConfigError naming the file and the key when the profile is missing or malformed.
    """
    if isinstance(name_or_path, str) and is_mapping_name(name_or_path):
        resource = resources.files("mappings").joinpath(f"{name_or_path}.toml")
        where = f"mappings/{name_or_path}.toml"
        if not resource.is_file():
            raise ConfigError(f"no built-in CSV mapping named {name_or_path!r} ({where})")
        text = resource.read_text(encoding="utf-8")
        return _parse_mapping(text, where, name_or_path)
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"CSV mapping file {path}: cannot be read: {exc}") from exc
    return _parse_mapping(text, str(path), path.stem)


def _parse_mapping(text: str, where: str, name: str) -> CsvMapping:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"CSV mapping file {where}: not valid TOML: {exc}") from exc
    try:
        parsed = _MappingFile.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"key {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"CSV mapping file {where}: {details}") from exc
    for canonical in parsed.fields:
        if canonical not in CANONICAL_FIELDS:
            raise ConfigError(
                f"CSV mapping file {where}: key fields.{canonical}: not a canonical field "
                f"(known: {', '.join(CANONICAL_FIELDS)})"
            )
    for canonical in REQUIRED_FIELDS:
        if canonical not in parsed.fields:
            raise ConfigError(f"CSV mapping file {where}: key fields.{canonical}: is required")
    owners: dict[str, str] = {}
    for canonical, entry in parsed.fields.items():
        for column in (entry.column, *entry.aliases):
            other = owners.setdefault(normalize_header(column), canonical)
            if other != canonical:
                raise ConfigError(
                    f"CSV mapping file {where}: key fields.{canonical}: column {column!r} "
                    f"is also a name of fields.{other}"
                )
    statuses: dict[str, POStatus] = {}
    for status, labels in parsed.status_values.items():
        for label in labels:
            key = _status_key(label)
            if statuses.setdefault(key, status) != status:
                raise ConfigError(
                    f"CSV mapping file {where}: key status_values.{status.value}: "
                    f"{label!r} already means {statuses[key].value}"
                )
    return CsvMapping(
        name=name,
        fields={
            canonical: FieldSpec(entry.column, tuple(entry.aliases))
            for canonical, entry in parsed.fields.items()
        },
        date_formats=tuple(parsed.date_formats),
        decimal_separator=parsed.decimal_separator,
        status_values=statuses,
    )


def _status_key(label: str) -> str:
    return " ".join(label.replace("_", " ").split()).casefold()


# ---------------------------------------------------------------------------- cell parsers

_THOUSANDS = {".": ",' \u00a0\u202f", ",": ".' \u00a0\u202f"}
_DIGITS = re.compile(r"[0-9]+")


def parse_decimal(text: str, decimal_separator: Literal[".", ","], *, guessed: bool = False) -> Decimal:
    """A decimal number written with `decimal_separator`, tolerating thousands separators.

    When the separator was only guessed from the file's delimiter (`guessed`), a value such as
    "2,500" or "2.500" (one separator, three digits after it, nothing else) could be either a
    thousand-grouped integer or a decimal, so it is refused rather than guessed.
    """
    value = text.strip()
    reason = f"not a number (decimal separator {decimal_separator!r})"
    sign = ""
    if value[:1] in ("+", "-"):
        sign, value = value[0].replace("+", ""), value[1:].lstrip()
    whole, _, fraction = value.partition(decimal_separator)
    if fraction and not _DIGITS.fullmatch(fraction):
        raise ValueError(reason)
    separators = {char for char in whole if char in _THOUSANDS[decimal_separator]}
    if len(separators) > 1:
        raise ValueError(reason)
    if separators:
        mark = separators.pop()
        groups = whole.split(mark)
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise ValueError(f"{reason}: misplaced thousands separator")
        if groups[0].startswith("0"):
            raise ValueError(f"{reason}: a grouped number cannot start with 0")
        if guessed and len(groups) == 2 and not fraction and mark in ".,":
            raise ValueError(
                f"ambiguous: {text.strip()!r} may be a decimal or a grouped integer; "
                "set decimal_separator in the mapping profile"
            )
        whole = "".join(groups)
    if not (whole or fraction) or (whole and not _DIGITS.fullmatch(whole)):
        raise ValueError(reason)
    return Decimal(f"{sign}{whole or '0'}.{fraction or '0'}") if fraction else Decimal(sign + whole)


def parse_date(text: str, formats: Sequence[str]) -> date:
    """A date in the first of `formats` that fits."""
    value = text.strip()
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date in a known format ({', '.join(formats)})")


_TERMS_DUE = frozenset({"due on receipt", "due upon receipt", "immediate", "sofort", "cod"})
_TERMS_DISCOUNT = re.compile(
    r"(\d{1,2}(?:[.,]\d+)?)\s*%?\s*/\s*(\d{1,3})\s*(?:days?)?\s*,?\s*(?:net|netto)\s*(\d{1,4})"
    r"(?:\s*days?)?"
)
_TERMS_NET = re.compile(r"(?:net|netto|n)\s*(\d{1,4})(?:\s*(?:days?|tagen?|d))?")
_TERMS_DAYS = re.compile(r"(\d{1,4})(?:\s*(?:days?|tagen?|d))?(?:\s*(?:net|netto|rein))?")


def parse_payment_terms(text: str) -> PaymentTerms:
    """Payment terms such as "NET30", "Net 30", "30 days", "45 Tage netto" or "2/10 net 30"."""
    value = " ".join(text.replace("-", " ").replace("_", " ").split()).casefold()
    if value in _TERMS_DUE:
        return PaymentTerms(code="DUE_ON_RECEIPT", net_days=0)
    if match := _TERMS_DISCOUNT.fullmatch(value):
        percent, discount_days, net = match.groups()
        percent_value = Decimal(percent.replace(",", "."))
        return _terms(
            f"{percent_value}/{int(discount_days)} NET{int(net)}",
            int(net),
            discount_percent=percent_value,
            discount_days=int(discount_days),
        )
    if match := _TERMS_NET.fullmatch(value) or _TERMS_DAYS.fullmatch(value):
        days = int(match.group(1))
        return _terms(f"NET{days}", days)
    raise ValueError("not payment terms like NET30, Net 30, 30 days or 2/10 net 30")


def _terms(code: str, days: int, **discount: Any) -> PaymentTerms:
    if days > 3650:
        raise ValueError(f"{days} days is more than ten years")
    return PaymentTerms(code=code, net_days=days, **discount)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _text(value: str) -> str:
    return value


def _upper_currency(value: str) -> str:
    code = value.upper()
    if not is_known_currency(code):
        raise ValueError("unknown ISO 4217 currency code")
    return code


def _positive_int(value: str) -> int:
    if not _DIGITS.fullmatch(value) or int(value) < 1:
        raise ValueError("not a whole number of 1 or more")
    return int(value)


def _revision(value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise ValueError("not a whole number")
    if len(value) > 9:
        raise ValueError("too large for a revision number")
    return int(value)


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("not an e-mail address")
    return value


def _country(value: str) -> str:
    return value.upper() if len(value) == 2 else value


# ---------------------------------------------------------------------------- rows to POs


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
            found = mapping.status_values.get(_status_key(value))
            if found is None:
                known = ", ".join(sorted(mapping.status_values)) or "none configured"
                raise ValueError(f"unknown PO status (known: {known})")
            return found

        parsers: dict[str, Callable[[str], Any]] = {
            "line_no": _positive_int,
            "quantity": quantity,
            "unit_price": price,
            "currency": _upper_currency,
            "term_start": a_date,
            "term_end": a_date,
            "issued_on": a_date,
            "payment_terms": parse_payment_terms,
            "status": status,
            "revision": _revision,
            "bill_to_email": _email,
            "ship_to_email": _email,
            "bill_to_country": _country,
            "ship_to_country": _country,
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
                if canonical in _ROW_REQUIRED:
                    self.problem(row.number, canonical, raw, "is required")
                    ok = False
                continue
            try:
                values[canonical] = self.parsers.get(canonical, _text)(raw)
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
    parts: dict[str, str] = {part: header.get(f"{prefix}_{part}", "") for part in _PARTY_PARTS}
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
