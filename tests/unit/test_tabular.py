"""Decoding spreadsheet exports and splitting them into rows."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.tabular import UndecodableError, decode_text, read_csv, sniff_delimiter

TEXT = "Währung;Beschreibung\nEUR;Jahreslizenz für Müller\n"


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
        TEXT.encode("cp1252"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "cp1252"],
)
def test_decodes_the_encodings_spreadsheets_are_saved_in(data):
    assert decode_text(data) == TEXT


def test_cp1252_specific_characters_survive_the_fallback():
    assert decode_text("Price €5 – “net”".encode("cp1252")) == "Price €5 – “net”"


def test_valid_utf8_wins_over_a_wrong_declared_charset():
    assert decode_text("für".encode(), declared="iso-8859-1") == "für"


def test_a_declared_charset_is_used_when_utf8_fails():
    assert decode_text("Łódź".encode("iso-8859-2"), declared="iso-8859-2") == "Łódź"


def test_an_unknown_declared_charset_is_ignored():
    assert decode_text(b"a,b", declared="x-no-such-charset") == "a,b"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"\x81\x8d\x8f\x90",
        codecs.BOM_UTF16_LE + b"\x00\xd8",
        codecs.BOM_UTF16_LE + b"a\x00\x00\x00",
    ],
    ids=["binary-with-nul", "bytes-undefined-in-cp1252", "broken-utf-16", "utf-16-with-nul"],
)
def test_binary_data_is_refused(data):
    with pytest.raises(UndecodableError):
        decode_text(data)


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("a,b,c\n1,2,3\n", ","), ("a;b;c\n1;2;3\n", ";"), ("a\tb\tc\n1\t2\t3\n", "\t")],
    ids=["comma", "semicolon", "tab"],
)
def test_the_delimiter_is_sniffed_from_the_header(text, delimiter):
    header, rows, found = read_csv(text)
    assert (header, rows, found) == (["a", "b", "c"], [["1", "2", "3"]], delimiter)


def test_a_single_column_file_reads_as_comma_separated():
    assert read_csv("single\n1\n") == (["single"], [["1"]], ",")


def test_delimiters_inside_quotes_do_not_count_when_sniffing():
    assert sniff_delimiter('"a;b;c;d",e,f\n') == ","


def test_quoted_fields_may_hold_newlines_and_delimiters():
    text = 'PO,Description,Qty\r\nP1,"two\r\nlines, and a comma",3\r\nP2,plain,4\r\n'
    header, rows, delimiter = read_csv(text)
    assert header == ["PO", "Description", "Qty"]
    assert rows == [["P1", "two\r\nlines, and a comma", "3"], ["P2", "plain", "4"]]
    assert delimiter == ","


def test_blank_rows_keep_their_place_and_leading_blank_lines_are_skipped():
    header, rows, _ = read_csv("\n\na,b\n1,2\n\n3,4\n")
    assert header == ["a", "b"]
    assert rows == [["1", "2"], [], ["3", "4"]]


def test_empty_text_has_no_header():
    assert read_csv("") == ([], [], ",")


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_undecodable(data):
    with contextlib.suppress(UndecodableError):
        assert "\x00" not in decode_text(data)


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=10)


@given(
    st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=5),
    st.sampled_from([",", ";", "\t"]),
)
def test_what_the_csv_writer_wrote_reads_back(rows, delimiter):
    header = ["PO Number", "SKU", "Qty"]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL).writerows([header, *rows])
    read_header, read_rows, found = read_csv(buffer.getvalue())
    assert (read_header, found) == (header, delimiter)
    assert read_rows == rows


def test_the_encoding_is_chosen_from_all_of_the_text_read_in_pieces():
    from adapters.tabular import text_encoding

    assert text_encoding(lambda: [b"a,b\n", b"caf\xc3", b"\xa9\n"]) == "utf-8"  # split character
    assert text_encoding(lambda: [b"a,b\n" * 1000, b"caf\xe9\n"]) == "cp1252"  # late non-UTF-8 byte
    assert text_encoding(lambda: [codecs.BOM_UTF8[:1], codecs.BOM_UTF8[1:] + b"a"]) == "utf-8-sig"
    with pytest.raises(UndecodableError):
        text_encoding(lambda: [b"a,b\n" * 1000, b"\x00"])


def test_csv_rows_are_read_as_they_are_asked_for():
    from adapters.tabular import iter_csv

    consumed = []

    def lines():
        for n, line in enumerate(["\n", "a;b\n", '1;"x\n', 'y"\n', "2;z\n"]):
            consumed.append(n)
            yield line

    header, rows, delimiter = iter_csv(lines())
    assert (header, delimiter) == (["a", "b"], ";")
    assert consumed == [0, 1]  # the leading blank line and the header only
    assert list(rows) == [["1", "x\ny"], ["2", "z"]]
