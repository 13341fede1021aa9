"""Reading spreadsheet exports: guess the text encoding, sniff the delimiter, split into rows."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator

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
    """Text of a spreadsheet export, in the encoding `text_encoding` chooses for it.

    Raises UndecodableError when none fits (e.g. a binary file named .csv).
    """
    return data.decode(text_encoding(lambda: (data,), declared))


def text_encoding(read: Callable[[], Iterable[bytes]], declared: str | None = None) -> str:
    """The encoding of the text that `read()` gives in pieces (called again for each guess).

    A byte-order mark decides first; then UTF-8 (non-ASCII text in another encoding is almost
    never valid UTF-8); then the charset the sender declared; then Windows-1252, the encoding of
    CSV files Excel saves on Western-European Windows. The first encoding that decodes all of
    it wins; text holding NUL characters is refused.
    Raises UndecodableError when none fits (e.g. a binary file named .csv).
    """
    head = next(_enough(read(), 4))
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            try:
                has_nul = _decodes_with_nul(read(), encoding)
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"starts with a {encoding} byte-order mark but {exc}") from exc
            if has_nul:
                raise UndecodableError(f"{encoding} text holds NUL characters: not a text file")
            return encoding
    for encoding in ["utf-8", *([declared] if declared else []), "cp1252"]:
        try:
            has_nul = _decodes_with_nul(read(), encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if has_nul:
            break
        return encoding
    raise UndecodableError("not text in UTF-8, UTF-16 or Windows-1252")


def _enough(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """`pieces` joined up until the first one holds at least `size` bytes (or all there is)."""
    head = b""
    pieces = iter(pieces)
    for piece in pieces:
        head += piece
        if len(head) >= size:
            break
    yield head
    yield from pieces


def _decodes_with_nul(pieces: Iterable[bytes], encoding: str) -> bool:
    """Whether the text holds a NUL; raises UnicodeDecodeError when it is not in `encoding`."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    has_nul = False
    for piece in pieces:
        has_nul = has_nul or "\x00" in decoder.decode(piece)
    return "\x00" in decoder.decode(b"", final=True) or has_nul


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
    header, rows, delimiter = iter_csv(io.StringIO(text, newline=""))
    return CsvTable(header, list(rows), delimiter)


def iter_csv(lines: Iterable[str]) -> tuple[list[str], Iterator[list[str]], str]:
    """Header, data rows (read as they are asked for) and delimiter of CSV text given line by
    line with its line ends, as a file opened with `newline=""` gives it; `read_csv`'s rules.

    csv.Error, for malformed input, is raised by the header or by the row it is met in.
    """
    pending = iter(lines)
    first: list[str] = []  # the lines of the first record: the delimiter is sniffed from them
    for line in pending:
        if not first and not line.strip("\r\n"):
            continue
        first.append(line)
        if "".join(first).count('"') % 2 == 0:
            break
    delimiter = sniff_delimiter("".join(first))
    reader = csv.reader(itertools.chain(first, pending), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return [], iter(()), delimiter
    return header, reader, delimiter
