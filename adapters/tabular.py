"""Reading spreadsheet exports: guess the text encoding, sniff the delimiter, split into rows."""

from __future__ import annotations

import codecs
import csv
import io

from mappings.csv_mapping import CsvTable

DELIMITERS = (",", ";", "\t")

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableError(ValueError):
    """The bytes are not text in any encoding we accept."""


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Text of a spreadsheet export.

    A byte-order mark decides first; then UTF-8 (non-ASCII text in another encoding is almost
    never valid UTF-8); then the charset the sender declared; then Windows-1252, the encoding of
    CSV files Excel saves on Western-European Windows.
    Raises UndecodableError when none fits (e.g. a binary file named .csv).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"starts with a {encoding} byte-order mark but {exc}") from exc
            if "\x00" in text:
                raise UndecodableError(f"{encoding} text holds NUL characters: not a text file")
            return text
    candidates = ["utf-8", *([declared] if declared else []), "cp1252"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if "\x00" in text:
            break
        return text
    raise UndecodableError("not text in UTF-8, UTF-16 or Windows-1252")


def sniff_delimiter(text: str) -> str:
    """The delimiter among `,` `;` and tab that occurs most often in the first record."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in text.lstrip("\r\n"):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "\r\n":
            break
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(text: str) -> CsvTable:
    """Header, data rows and delimiter of CSV text; quoted fields may hold delimiters and newlines.

    Leading blank lines are skipped; blank rows after the header stay in place (as empty lists)
    so that a row's position is its row number in a spreadsheet. Raises csv.Error on malformed
    input.
    """
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text.lstrip("\r\n"), newline=""), delimiter=delimiter)
    records = list(reader)
    if not records:
        return CsvTable([], [], delimiter)
    return CsvTable(records[0], records[1:], delimiter)
