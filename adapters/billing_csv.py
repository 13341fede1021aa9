"""The `csv` billing source: subscription billing periods from a CSV export.

One row is one billed line; rows with the same (subscription_id, period_start) form one billing
period. Columns (header names are case-insensitive; spaces and dashes count as underscores):

    customer_ref (or customer, customer_id), customer_name, subscription_id, period_start,
    period_end, sku, description, quantity, unit_price, currency, po_number, invoice_date

customer_name, description, po_number and invoice_date may be absent or empty. Dates are ISO
(2026-11-01) unless `date_format` says otherwise. Amounts are read as exact decimals. A bad row
is reported with its row number (the header is row 1), column and value, and its period waits.

The tax the billing system computed, optional per row:

    tax_category (EN 16931 code: S, Z, E, AE, K, G, O, L, M), tax_rate (percent, 19 = 19%),
    tax_amount (the line's tax), tax_jurisdiction (US-style sales tax, e.g. US-NY: the line is
    then sales tax, not VAT), tax_exemption_reason (a VATEX code such as VATEX-EU-AE, or text)

A row with none of them carries no tax (the customer master or a SKU override may give it); a
row with a tax amount or rate but no category, an unknown category, a rate out of range or a
treatment that is not valid (AE without a reason, S at 0%) is refused naming the column.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

from pydantic import ValidationError

from adapters.scratch_rows import ScratchRows
from adapters.tabular import UndecodableError, iter_csv, text_encoding
from connector.currency import is_known_currency
from connector.errors import ConfigError, InputProblem
from connector.model import BillingLine, BillingPeriod, Money
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    BillingBatch,
    Capability,
    PullContext,
)
from connector.tax import LineTax, TaxCategory, TaxScheme, category_of_exemption_code
from connector.values import finite_decimal
from connector.version import product_version

_T = TypeVar("_T")
_ALIASES = {"customer": "customer_ref", "customer_id": "customer_ref"}
_REQUIRED = (
    "customer_ref",
    "subscription_id",
    "period_start",
    "period_end",
    "sku",
    "quantity",
    "unit_price",
    "currency",
)
_TAX_COLUMNS = ("tax_category", "tax_rate", "tax_amount", "tax_jurisdiction", "tax_exemption_reason")
_OPTIONAL = ("customer_name", "description", "po_number", "invoice_date", *_TAX_COLUMNS)
# Fields every row of one period must agree on.
_PERIOD_FIELDS = ("customer_ref", "customer_name", "period_end", "currency", "po_number", "invoice_date")
# A row's values kept once it is parsed.
_KEPT = ("subscription_id", "period_start", *_PERIOD_FIELDS)


class CsvBillingConfig(AdapterConfig):
    """Where the billing export is and how its dates are written."""

    type: str = "csv"
    path: Path
    date_format: str | None = None


class _RowError(Exception):
    def __init__(self, column: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.value = value
        self.reason = reason


@dataclass
class _Row:
    number: int
    values: dict[str, str]
    period_start: date
    period_end: date
    invoice_date: date | None
    line: BillingLine


# Periods stored per transaction: a large export is never held as periods all at once.
PERIODS_PER_BATCH = 500
# Bytes read from the file at a time (to digest it, to guess its encoding).
_CHUNK = 1 << 20


def _raw_period_key(header: list[str], record: list[str]) -> tuple[str, str]:
    """The subscription id and period start of a refused row, as written ("" when unreadable)."""
    cells = dict(zip(header, (cell.strip() for cell in record), strict=False))
    return cells.get("subscription_id", ""), cells.get("period_start", "")


def _column_name(raw: str) -> str:
    name = raw.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(name, name)


def _decimal(column: str, value: str) -> Decimal:
    try:
        return finite_decimal(value)
    except ValueError as exc:
        raise _RowError(column, value, str(exc)) from None


class CsvBillingSource:
    """Reads every billing period of one CSV file, again whenever the file (its digest) changes."""

    kind: ClassVar[AdapterKind] = AdapterKind.BILLING
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    Config: ClassVar[type[AdapterConfig]] = CsvBillingConfig

    def __init__(self, config: CsvBillingConfig, context: AdapterContext) -> None:
        self.name = config.name
        self._tenant = context.tenant
        self.path = context.resolve(config.path)
        self._parse_date = self._date_parser(config.date_format)
        self._date_format = config.date_format or ""

    def check(self) -> None:
        """Doctor's check: the export file is there and readable (each pull reads it)."""
        if not self.path.is_file():
            raise ConfigError(
                f"billing {self.name!r}: path {str(self.path)!r} does not exist or is not a file"
            )
        try:
            with self.path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"billing {self.name!r}: path {str(self.path)!r} cannot be read: {exc.strerror}"
            ) from None

    @staticmethod
    def _date_parser(date_format: str | None) -> Callable[[str], date]:
        if date_format is None:
            return date.fromisoformat
        fmt = date_format
        return lambda value: datetime.strptime(value, fmt).date()

    def pull(self, context: PullContext) -> Iterator[BillingBatch]:
        """Yield the file's periods PERIODS_PER_BATCH at a time; the last batch carries the rows
        that were refused and the cursor.

        The cursor is the file's digest: a file read before, unchanged, gives an empty batch
        (nothing to store again; its refused rows stay in quarantine as they were). A pull cut
        short leaves the cursor as it was, so the next one reads the file again; a period
        stored already costs nothing the second time.
        """
        digest = self._digest()
        if context.cursor is not None and context.cursor.get("sha256") == digest:
            yield BillingBatch(cursor=context.cursor)
            return
        yield from self._batches({"sha256": digest})

    def read(self) -> BillingBatch:
        """Parse the whole file into billing periods and rejections."""
        whole = BillingBatch()
        for batch in self._batches():
            whole.records += batch.records
            whole.rejections += batch.rejections
        return whole

    def _chunks(self) -> Iterator[bytes]:
        """The file's bytes, a piece at a time: an export may be larger than memory."""
        try:
            with self.path.open("rb") as file:
                while chunk := file.read(_CHUNK):
                    yield chunk
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def _text(self, encoding: str) -> IO[str]:
        try:
            return self.path.open(encoding=encoding, newline="")
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"billing {self.name!r}: file {str(self.path)!r} cannot be read: {exc.strerror or exc}"
        )

    def _digest(self) -> str:
        """The file's content, as this version reads it with these settings."""
        digest = hashlib.sha256(f"{product_version()}|{self._date_format}|".encode())
        for chunk in self._chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def _batches(self, cursor: dict[str, Any] | None = None) -> Iterator[BillingBatch]:
        """The file's periods in batches; the last one carries the refused rows, known only
        once every row was read, and `cursor`.

        The file is read twice: once to guess its encoding, once row by row, each good row set
        aside on disk; then its periods are built one at a time from the rows set aside.
        """
        batch = BillingBatch(cursor=cursor)
        with ScratchRows() as rows:
            try:
                with self._text(text_encoding(self._chunks)) as text:
                    raw_header, records, _ = iter_csv(text)
                    header = [_column_name(name) for name in raw_header]
                    if not raw_header or not self._header_ok(header, batch):
                        yield batch
                        return
                    refused = self._set_aside(header, records, rows, batch)
            except (UndecodableError, UnicodeDecodeError, csv.Error) as exc:
                yield BillingBatch(
                    rejections=[self._problem("", "", "", f"the file cannot be read as CSV: {exc}")],
                    cursor=cursor,
                )
                return
            yield from self._periods(rows, refused, batch)

    def _set_aside(
        self, header: list[str], records: Iterator[list[str]], rows: ScratchRows, batch: BillingBatch
    ) -> set[tuple[str, str]]:
        """Parse each row, noting refused ones in `batch`, and set the good ones aside keyed by
        period; returns the (subscription id, period start) of the refused rows, as written."""
        # A period with a refused row is refused whole: invoicing the rest would bill less
        # than the period really holds. Keyed by the row's raw subscription id and start.
        refused: set[tuple[str, str]] = set()
        for offset, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue
            row = self._row(offset, header, record, batch)
            if row is None:
                refused.add(_raw_period_key(header, record))
                continue
            key = f"{row.period_start.isoformat()}|{row.values['subscription_id']}"
            rows.add(key.encode("utf-8", "surrogatepass"), _packed(row))
        return refused

    def _periods(
        self, rows: ScratchRows, refused: set[tuple[str, str]], batch: BillingBatch
    ) -> Iterator[BillingBatch]:
        """The periods of the rows set aside, PERIODS_PER_BATCH at a time, then `batch`."""
        chunk: list[BillingPeriod] = []
        for packed in rows.groups():
            group = [_unpacked(data) for data in packed]
            first = group[0]
            differing = [row for row in group[1:] if not self._agrees(first, row, batch)]
            subscription, start = first.values["subscription_id"], first.values["period_start"]
            if differing or (subscription, start) in refused or (subscription, "") in refused:
                batch.rejections.append(
                    self._problem(
                        f"row {first.number}",
                        "subscription_id",
                        subscription,
                        f"period starting {start} has a refused row; the whole period "
                        "waits until the file is fixed",
                    )
                )
                continue
            period = self._period(group, batch)
            if period is None:
                continue
            chunk.append(period)
            if len(chunk) == PERIODS_PER_BATCH:
                yield BillingBatch(records=chunk)
                chunk = []
        batch.records = chunk
        yield batch

    def _problem(self, location: str, column: str, value: str, reason: str) -> InputProblem:
        return InputProblem(
            source=self.name,
            document=str(self.path),
            location=location,
            field=column,
            value=value,
            reason=reason,
        )

    def _header_ok(self, header: list[str], batch: BillingBatch) -> bool:
        seen: set[str] = set()
        for name in header:
            if name in seen and name in _REQUIRED + _OPTIONAL:
                batch.rejections.append(
                    self._problem("row 1", name, name, "the column appears twice in the header")
                )
            seen.add(name)
        for name in _REQUIRED:
            if name not in seen:
                batch.rejections.append(self._problem("row 1", name, "", "a required column is missing"))
        return not batch.rejections

    def _row(self, number: int, header: list[str], record: list[str], batch: BillingBatch) -> _Row | None:
        extra = [cell for cell in record[len(header) :] if cell.strip()]
        if extra:
            batch.rejections.append(
                self._problem(
                    f"row {number}",
                    "",
                    ",".join(extra),
                    f"the row has {len(record)} fields, the header {len(header)}",
                )
            )
            return None
        values: dict[str, str] = {name: "" for name in _OPTIONAL}
        values.update(zip(header, (cell.strip() for cell in record), strict=False))
        values["currency"] = values.get("currency", "").upper()
        errors = [_RowError(name, "", "is required") for name in _REQUIRED if not values.get(name)]
        if values["currency"] and not is_known_currency(values["currency"]):
            errors.append(_RowError("currency", values["currency"], "is not an ISO 4217 code"))
        start = _attempt(errors, self._date, "period_start", values)
        end = _attempt(errors, self._date, "period_end", values)
        invoice_date = _attempt(errors, self._date, "invoice_date", values)
        quantity = _attempt(errors, _quantity, "quantity", values)
        price = _attempt(errors, _unit_price, "unit_price", values)
        if start and end and end < start:
            errors.append(
                _RowError("period_end", values["period_end"], f"is before period_start {start.isoformat()}")
            )
        tax = _line_tax(values, errors)
        if errors or start is None or end is None or quantity is None or price is None:
            for error in errors:
                batch.rejections.append(
                    self._problem(f"row {number}", error.column, error.value, error.reason)
                )
            return None
        line = BillingLine(
            sku=values["sku"],
            description=values["description"],
            quantity=quantity,
            unit_price=Money.of(price, values["currency"]),
            tax=tax,
        )
        # Only what the period is built and checked from is set aside.
        kept = {name: values[name] for name in _KEPT}
        return _Row(number, kept, start, end, invoice_date, line)

    def _date(self, column: str, value: str) -> date:
        try:
            return self._parse_date(value)
        except ValueError:
            raise _RowError(column, value, "is not a date in the expected format") from None

    def _agrees(self, first: _Row, row: _Row, batch: BillingBatch) -> bool:
        for name in _PERIOD_FIELDS:
            if row.values[name] != first.values[name]:
                batch.rejections.append(
                    self._problem(
                        f"row {row.number}",
                        name,
                        row.values[name],
                        f"differs from row {first.number} of the same period ({first.values[name]!r})",
                    )
                )
                return False
        return True

    def _period(self, group: list[_Row], batch: BillingBatch) -> BillingPeriod | None:
        first = group[0]
        try:
            return BillingPeriod(
                tenant=self._tenant,
                billing_source=self.name,
                subscription_id=first.values["subscription_id"],
                period_start=first.period_start,
                period_end=first.period_end,
                customer_ref=first.values["customer_ref"],
                customer_name=first.values["customer_name"],
                po_number=first.values["po_number"] or None,
                currency=first.values["currency"],
                lines=tuple(row.line for row in group),
                invoice_date=first.invoice_date,
            )
        except ValidationError as exc:
            reason = "; ".join(error["msg"] for error in exc.errors())
            for row in group:
                batch.rejections.append(
                    self._problem(f"row {row.number}", "", first.values["subscription_id"], reason)
                )
            return None


def _packed(row: _Row) -> bytes:
    """A parsed row as it is set aside on disk; `_unpacked` reads it back."""
    invoice_date = row.invoice_date.isoformat() if row.invoice_date else ""
    return json.dumps(
        (
            row.number,
            tuple(row.values[name] for name in _KEPT),
            row.period_start.isoformat(),
            row.period_end.isoformat(),
            invoice_date,
            row.line.model_dump_json(),
        )
    ).encode()


def _unpacked(data: bytes) -> _Row:
    number, values, start, end, invoice_date, line = json.loads(data)
    return _Row(
        number,
        dict(zip(_KEPT, values, strict=True)),
        date.fromisoformat(start),
        date.fromisoformat(end),
        date.fromisoformat(invoice_date) if invoice_date else None,
        BillingLine.model_validate_json(line),
    )


def _attempt(
    errors: list[_RowError], parse: Callable[[str, str], _T], column: str, values: dict[str, str]
) -> _T | None:
    """The parsed value of a non-empty cell, or None (and the error noted) when it is refused."""
    value = values.get(column, "")
    if not value:
        return None
    try:
        return parse(column, value)
    except _RowError as refused:
        errors.append(refused)
        return None


def _line_tax(values: dict[str, str], errors: list[_RowError]) -> LineTax | None:
    """The row's tax from the tax_* columns; None when it states none (errors noted)."""
    if not any(values.get(name) for name in _TAX_COLUMNS):
        return None
    raw_category = values.get("tax_category", "")
    if not raw_category:
        stated = next(name for name in _TAX_COLUMNS if values.get(name))
        errors.append(_RowError("tax_category", "", f"is required when {stated} is given"))
        return None
    try:
        category = TaxCategory(raw_category.upper())
    except ValueError:
        known = ", ".join(c.value for c in TaxCategory)
        errors.append(_RowError("tax_category", raw_category, f"is not a tax category ({known})"))
        return None
    rate = _attempt(errors, _decimal, "tax_rate", values)
    amount = _attempt(errors, _decimal, "tax_amount", values)
    if (values.get("tax_rate") and rate is None) or (values.get("tax_amount") and amount is None):
        return None
    if rate is None and category is not TaxCategory.OUTSIDE_SCOPE:
        errors.append(_RowError("tax_rate", "", f"is required for tax category {category.value}"))
        return None
    reason = values.get("tax_exemption_reason", "")
    is_code = category_of_exemption_code(reason) is not None
    jurisdiction = values.get("tax_jurisdiction", "").upper()
    try:
        return LineTax(
            scheme=TaxScheme.SALES_TAX if jurisdiction else TaxScheme.VAT,
            category=category,
            rate=rate,
            jurisdiction=jurisdiction,
            exemption_reason_code=reason.upper() if is_code else "",
            exemption_reason="" if is_code else reason,
            amount=amount,
            origin="billing",
        )
    except ValidationError as exc:
        detail = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        column = "tax_rate" if "rate" in detail else "tax_category"
        errors.append(_RowError(column, values.get(column, ""), detail))
        return None


def _quantity(column: str, value: str) -> Decimal:
    number = _decimal(column, value)
    if number <= 0:
        raise _RowError(column, value, "must be greater than zero")
    return number


def _unit_price(column: str, value: str) -> Decimal:
    number = _decimal(column, value)
    if number < 0:
        raise _RowError(column, value, "must not be negative")
    return number
