"""Typed values read from XML attribute and element text, each bad one an InputProblem.

The cXML and UBL order parsers share it: a `FieldReader` reads decimals, whole numbers, dates,
timestamps and currency codes, records a problem naming the document, the location (a line),
the field and the value for each one it cannot read, and builds the PurchaseOrder only when
nothing had a problem (half an order would invoice the wrong thing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lxml import etree
from pydantic import ValidationError

from connector.currency import is_known_currency
from connector.errors import InputProblem
from connector.model import PurchaseOrder

_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_WHOLE = re.compile(r"^[0-9]+$")


def element_text(element: etree._Element | None) -> str:
    """The element's own text, stripped; "" for no element."""
    return (element.text or "").strip() if element is not None else ""


def element_content(element: etree._Element | None) -> str:
    """All the text inside the element, its children's too, stripped; "" for no element."""
    return "".join(element.itertext()).strip() if element is not None else ""


@dataclass
class FieldReader:
    """Reads typed values from attribute and element text, collecting problems as it goes."""

    source: str
    document: str
    problems: list[InputProblem] = field(default_factory=list)

    def problem(self, location: str, name: str, value: str, reason: str) -> None:
        self.problems.append(InputProblem(self.source, self.document, location, name, value, reason))

    def purchase_order(self, values: dict[str, Any], *, whole: str) -> PurchaseOrder | None:
        """The PO from read values, or None with a problem per field the model refuses.

        Nothing is built once a field had a problem. `whole` names the document element a check
        across fields is reported on (its input is the whole order, not one value).
        """
        if self.problems:
            return None
        try:
            return PurchaseOrder.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(part) for part in error["loc"]) or whole
                value = str(error.get("input", "")) if error["loc"] else ""
                self.problem("", name, value[:200], error["msg"])
            return None

    def decimal(
        self, location: str, name: str, text: str | None, *, required: bool = False, positive: bool = False
    ) -> Decimal | None:
        value = (text or "").strip()
        if not value:
            if required:
                self.problem(location, name, "", "is required")
            return None
        if not _DECIMAL.match(value):
            self.problem(location, name, value, "not a decimal number")
            return None
        number = Decimal(value)
        if positive and number <= 0:
            self.problem(location, name, value, "must be greater than zero")
            return None
        return number

    def integer(self, location: str, name: str, text: str | None, *, minimum: int) -> int | None:
        if text is None:
            return None
        value = text.strip()
        if not _WHOLE.match(value) or int(value) < minimum:
            self.problem(location, name, value, f"not a whole number of at least {minimum}")
            return None
        return int(value)

    def date(self, location: str, name: str, text: str | None, *, required: bool = False) -> date | None:
        value = (text or "").strip()
        if not value:
            if required:
                self.problem(location, name, "", "is required")
            return None
        try:
            # The calendar date as the sender wrote it, in the sender's own offset.
            return datetime.fromisoformat(value).date()
        except ValueError:
            self.problem(location, name, value, "not an ISO 8601 date")
            return None

    def timestamp(self, location: str, name: str, text: str) -> datetime | None:
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.problem(location, name, text, "not an ISO 8601 date and time")
            return None
        if moment.tzinfo is None:
            self.problem(location, name, text, "has no timezone offset")
            return None
        return moment.astimezone(UTC)

    def currency(self, location: str, name: str, code: str) -> str:
        code = code.strip()
        if not is_known_currency(code):
            self.problem(location, name, code, "not an ISO 4217 currency code")
        return code
