"""A CSV mapping profile: which column holds each canonical field, loaded from TOML and checked."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.errors import ConfigError
from connector.model import POStatus

REQUIRED_FIELDS = ("po_number", "sku", "quantity", "unit_price", "currency")
# Needed in every row; the other required fields may be left blank after a PO's first row.
ROW_REQUIRED = ("sku", "quantity", "unit_price")
LINE_FIELDS = ("line_no", "sku", "description", "quantity", "unit_price", "unit_of_measure")
PARTY_PARTS = ("name", "street", "city", "region", "postal_code", "country", "email")
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
    *(f"bill_to_{part}" for part in PARTY_PARTS),
    *(f"ship_to_{part}" for part in PARTY_PARTS),
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
            key = status_key(label)
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


def status_key(label: str) -> str:
    return " ".join(label.replace("_", " ").split()).casefold()
