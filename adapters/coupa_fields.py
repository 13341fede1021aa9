"""Reading Coupa JSON: a listing's elements with their exact source text, numbers as Decimals
(never floats), timestamps as aware UTC, and typed fields whose error names the field and value.

Coupa warns that elements with no value may be left out, so a reader gives None (or a default)
for an absent element; a value that is present but wrong raises `CoupaMappingError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.values import finite_decimal

_MAX_DIGITS = 18  # a version or line number; also keeps int() under Python's digit limit


class CoupaMappingError(ValueError):
    """A PO element that is present but unusable; names the field (a path) and the value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = "" if value is None else str(value)
        self.reason = reason


def split_array(text: str) -> list[tuple[str, Any]]:
    """Each element of a JSON array with its exact source text (so a PO's raw text is Coupa's own).

    Raises ValueError when `text` is not a JSON array.
    """
    decoder = json.JSONDecoder(parse_float=Decimal)
    index = _skip_space(text, 0)
    if index >= len(text) or text[index] != "[":
        raise ValueError("the answer is not a JSON array")
    items: list[tuple[str, Any]] = []
    index = _skip_space(text, index + 1)
    if index < len(text) and text[index] == "]":
        _expect_end(text, index + 1)
        return items
    while True:
        value, end = decoder.raw_decode(text, index)
        items.append((text[index:end], value))
        index = _skip_space(text, end)
        if index < len(text) and text[index] == ",":
            index = _skip_space(text, index + 1)
            continue
        if index < len(text) and text[index] == "]":
            _expect_end(text, index + 1)
            return items
        raise ValueError(f"malformed JSON array at character {index}")


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _expect_end(text: str, index: int) -> None:
    if _skip_space(text, index) != len(text):
        raise ValueError(f"unexpected text after the JSON array at character {index}")


def raw_sha256(raw: str) -> str:
    """sha256 hex digest of the raw JSON text a PO came from."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def parse_json(text: str) -> Any:
    """Parse Coupa JSON keeping every non-integer number a Decimal (never a float)."""
    return json.loads(text, parse_float=Decimal)


def parse_timestamp(value: Any, field: str) -> datetime:
    """An ISO-8601 timestamp as aware UTC; a value without an offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise CoupaMappingError(field, value, "is not an ISO-8601 timestamp")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CoupaMappingError(field, value, "is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def date_field(value: Any, field: str) -> date | None:
    """A date from `YYYY-MM-DD` or a timestamp (its calendar date as written)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CoupaMappingError(field, value, "is not a date")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise CoupaMappingError(field, value, "is not a date") from None


def decimal_field(value: Any, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise CoupaMappingError(field, value, "must be a decimal string or an exact number")
    try:
        return finite_decimal(value)
    except ValueError as exc:
        raise CoupaMappingError(field, value, str(exc)) from None


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return ""


def object_field(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CoupaMappingError(field, value, "must be an object")
    return value


def code_of(data: Mapping[str, Any], key: str) -> str:
    return text_of(object_field(data.get(key), key).get("code"))


def int_field(value: Any, field: str, default: int) -> int:
    if value is None or value == "":
        return default
    text = text_of(value)
    if not re.fullmatch(r"\d+", text):
        raise CoupaMappingError(field, value, "is not a whole number")
    if len(text) > _MAX_DIGITS:
        raise CoupaMappingError(field, f"{text[:20]}... ({len(text)} digits)", "is too large")
    return int(text)
