"""The declarative CSV mapping: column aliases, cell formats, grouping and the problems it reports."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import ConfigError
from connector.model import PaymentTerms, POStatus
from mappings.csv_mapping import (
    CsvTable,
    load_mapping,
    parse_date,
    parse_decimal,
    parse_payment_terms,
    rows_to_pos,
)

DEFAULT = load_mapping("csv_default")
HEADER = ["PO Number", "Line", "SKU", "Description", "Quantity", "Unit Price", "Currency"]


def convert(header, rows, delimiter=",", mapping=DEFAULT, **kwargs):
    table = CsvTable(header, [list(r) for r in rows], delimiter)
    options = {"source": "inbox", "document": "po.eml#po.csv"} | kwargs
    return rows_to_pos(table, mapping, **options)


def only_po(header, rows, delimiter=","):
    pos, problems = convert(header, rows, delimiter)
    assert problems == []
    assert len(pos) == 1
    return pos[0][0]


# ---------------------------------------------------------------------------- column names


def test_aliases_match_ignoring_case_spaces_and_underscores():
    header = ["po_number", "SUPPLIER PART ID", "qty", "Unit-Price", "currency"]
    po = only_po(header, [["PO-1", "PLAN-PRO", "3", "9.50", "usd"]])
    assert (po.po_number, po.lines[0].sku, po.lines[0].quantity) == ("PO-1", "PLAN-PRO", 3)
    assert po.lines[0].unit_price.amount == Decimal("9.50")
    assert po.currency == "USD"


def test_german_headers_are_aliases_of_the_default_profile():
    header = ["Bestellnummer", "Pos", "Artikel", "Beschreibung", "Menge", "Einzelpreis", "Währung"]
    po = only_po(header, [["4500", "1", "X", "für Müller", "2", "1.234,50", "EUR"]], ";")
    assert po.lines[0].unit_price.amount == Decimal("1234.50")
    assert po.lines[0].description == "für Müller"


def test_the_named_column_wins_over_an_alias_when_both_are_present():
    header = ["PO Number", "Item", "SKU", "Quantity", "Unit Price", "Currency"]
    po = only_po(header, [["PO-1", "ignored", "PLAN-PRO", "1", "1", "USD"]])
    assert po.lines[0].sku == "PLAN-PRO"


def test_a_missing_required_column_is_reported_on_the_header_row_and_nothing_is_emitted():
    pos, problems = convert(["PO Number", "SKU", "Quantity", "Currency"], [["P", "S", "1", "USD"]])
    assert pos == []
    assert len(problems) == 1
    assert problems[0].location == "row 1"
    assert problems[0].field == "Unit Price"
    assert "required column missing" in problems[0].reason
    assert "'Price'" in problems[0].reason


# ---------------------------------------------------------------------------- cell formats


@pytest.mark.parametrize(
    ("text", "separator", "expected"),
    [
        ("40.00", ".", "40.00"),
        ("1,000.50", ".", "1000.50"),
        ("1,234,567", ".", "1234567"),
        ("1'000.00", ".", "1000.00"),
        ("24.000,00", ",", "24000.00"),
        ("5,00", ",", "5.00"),
        ("1 000,25", ",", "1000.25"),
        ("1\u00a0000,25", ",", "1000.25"),
        ("-3.5", ".", "-3.5"),
        ("+7", ".", "7"),
        (".5", ".", "0.5"),
        (" 12 ", ".", "12"),
    ],
)
def test_numbers_with_either_decimal_separator_and_thousands_separators(text, separator, expected):
    assert parse_decimal(text, separator) == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "separator"),
    [
        ("ten", "."),
        ("5,00", "."),  # a decimal comma in a file read with decimal point
        ("1,00.0", "."),
        ("1.000.00", "."),
        ("1,000 000.0", "."),
        ("NaN", "."),
        ("Infinity", "."),
        ("1e3", "."),
        ("-", "."),
        ("", "."),
        ("٣", "."),  # non-ASCII digits
    ],
)
def test_malformed_numbers_are_refused(text, separator):
    with pytest.raises(ValueError, match="not a number"):
        parse_decimal(text, separator)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-01-31", date(2026, 1, 31)), ("31.01.2026", date(2026, 1, 31)), ("01/31/2026", date(2026, 1, 31))],
)
def test_dates_in_each_configured_format(text, expected):
    assert parse_date(text, DEFAULT.date_formats) == expected


def test_a_date_in_no_configured_format_names_the_formats():
    with pytest.raises(ValueError, match=re.escape("%d.%m.%Y")):
        parse_date("31/01/2026", DEFAULT.date_formats)


@pytest.mark.parametrize(
    ("text", "code", "days"),
    [
        ("NET30", "NET30", 30),
        ("Net 30", "NET30", 30),
        ("net-45", "NET45", 45),
        ("N60", "NET60", 60),
        ("30 days", "NET30", 30),
        ("Net 30 days", "NET30", 30),
        ("45 Tage netto", "NET45", 45),
        ("60", "NET60", 60),
        ("Due on receipt", "DUE_ON_RECEIPT", 0),
    ],
)
def test_payment_terms_in_common_spellings(text, code, days):
    assert parse_payment_terms(text) == PaymentTerms(code=code, net_days=days)


def test_payment_terms_with_an_early_payment_discount():
    terms = parse_payment_terms("2/10 Net 30")
    assert (terms.code, terms.net_days) == ("2/10 NET30", 30)
    assert (terms.discount_percent, terms.discount_days) == (Decimal(2), 10)


@pytest.mark.parametrize("text", ["whenever", "NET", "net 99999", "net 9999", "30 weeks"])
def test_unreadable_payment_terms_are_refused(text):
    with pytest.raises(ValueError):
        parse_payment_terms(text)


def test_decimal_comma_is_chosen_automatically_for_semicolon_files():
    po = only_po(HEADER, [["P", "1", "S", "", "1,5", "2,25", "EUR"]], ";")
    assert (po.lines[0].quantity, po.lines[0].unit_price.amount) == (Decimal("1.5"), Decimal("2.25"))


def test_explicit_decimal_separator_overrides_auto(tmp_path: Path):
    text = (Path(__file__).parents[2] / "mappings" / "csv_default.toml").read_text("utf-8")
    custom = tmp_path / "comma.toml"
    custom.write_text(text.replace('decimal_separator = "auto"', 'decimal_separator = ","'), "utf-8")
    mapping = load_mapping(custom)
    pos, problems = convert(HEADER, [["P", "1", "S", "", "2", "1.000,50", "EUR"]], ",", mapping)
    assert problems == []
    assert pos[0][0].lines[0].unit_price.amount == Decimal("1000.50")


# ---------------------------------------------------------------------------- problems


def test_a_bad_cell_names_document_row_column_as_written_and_value():
    rows = [["P", "1", "A", "", "1", "1", "USD"], ["P", "2", "B", "", "ten", "1", "USD"]]
    pos, problems = convert(HEADER, rows)
    problem, held = problems
    assert problem.source == "inbox"
    assert problem.document == "po.eml#po.csv"
    assert problem.location == "row 3"
    assert problem.field == "Quantity"
    assert problem.value == "ten"
    assert "quantity" in problem.reason and "not a number" in problem.reason
    assert pos == []  # held whole, never stored without its refused line
    assert (held.location, held.field, held.value) == ("rows 2-3", "po_number", "P")
    assert "held whole: row 3" in held.reason


def test_every_bad_cell_of_a_row_is_reported():
    rows = [["P", "0", "A", "", "0", "-1", "XXX"]]
    pos, problems = convert(HEADER, rows)
    assert pos == []
    assert {p.field for p in problems} == {"Line", "Quantity", "Unit Price", "Currency"}
    assert {p.location for p in problems} == {"row 2"}


def test_row_numbers_count_blank_rows_and_the_header():
    rows = [["P", "1", "A", "", "1", "1", "USD"], [], ["P", "2", "B", "", "x", "1", "USD"]]
    _, problems = convert(HEADER, rows)
    assert problems[0].location == "row 4"


def test_a_po_that_loses_all_its_lines_is_not_emitted_but_others_are():
    rows = [["P1", "1", "A", "", "x", "1", "USD"], ["P2", "1", "A", "", "1", "1", "USD"]]
    pos, problems = convert(HEADER, rows)
    assert [po.po_number for po, _ in pos] == ["P2"]
    assert len(problems) == 1


def test_a_row_without_po_number_is_reported():
    pos, problems = convert(HEADER, [[" ", "1", "A", "", "1", "1", "USD"]])
    assert pos == []
    assert (problems[0].field, problems[0].location, problems[0].reason) == (
        "PO Number",
        "row 2",
        "po_number: is required",
    )


def test_unknown_currency_code_is_refused():
    _, problems = convert(HEADER, [["P", "1", "A", "", "1", "1", "EURO"]])
    assert (problems[0].field, problems[0].value) == ("Currency", "EURO")
    assert "ISO 4217" in problems[0].reason


def test_a_row_with_more_cells_than_the_header_is_refused():
    _, problems = convert(HEADER, [["P", "1", "A", "", "1", "1", "USD", "surplus"]])
    assert problems[0].value == "surplus"
    assert "8 cells" in problems[0].reason


def test_term_end_before_term_start_is_refused():
    header = [*HEADER, "Term Start", "Term End"]
    _, problems = convert(header, [["P", "1", "A", "", "1", "1", "USD", "2026-12-31", "2026-01-01"]])
    assert (problems[0].field, problems[0].value) == ("Term End", "2026-01-01")


def test_an_invalid_email_is_refused():
    header = [*HEADER, "Bill To Email"]
    _, problems = convert(header, [["P", "1", "A", "", "1", "1", "USD", "not-an-address"]])
    assert problems[0].field == "Bill To Email"


# ---------------------------------------------------------------------------- grouping


def test_rows_are_grouped_by_po_number_in_order_of_first_appearance():
    rows = [
        ["B", "", "X", "", "1", "1", "USD"],
        ["A", "", "Y", "", "1", "1", "USD"],
        ["B", "", "Z", "", "2", "1", "USD"],
    ]
    pos, problems = convert(HEADER, rows)
    assert problems == []
    assert [po.po_number for po, _ in pos] == ["B", "A"]
    assert [(line.line_no, line.sku) for line in pos[0][0].lines] == [(1, "X"), (2, "Z")]
    assert pos[0][0].external_id == "B"


def test_conflicting_header_value_in_a_later_row_holds_the_whole_po():
    rows = [["P", "1", "A", "", "1", "1", "USD"], ["P", "2", "B", "", "1", "1", "EUR"]]
    pos, problems = convert(HEADER, rows)
    problem, held = problems
    assert (problem.location, problem.field, problem.value) == ("row 3", "Currency", "EUR")
    assert "conflicts with 'USD' in row 2" in problem.reason
    assert pos == [] and "held whole" in held.reason


def test_blank_header_cells_in_later_rows_inherit_the_first_rows_values():
    header = [*HEADER, "Payment Terms"]
    rows = [["P", "1", "A", "", "1", "1", "USD", "Net 30"], ["P", "2", "B", "", "1", "1", "USD", ""]]
    po = only_po(header, rows)
    assert po.payment_terms == PaymentTerms(code="NET30", net_days=30)
    assert len(po.lines) == 2


def test_currency_may_be_blank_after_the_first_row_but_not_in_it():
    rows = [
        ["P", "1", "A", "", "1", "1", "USD"],
        ["P", "2", "B", "", "1", "1", ""],
        ["Q", "1", "C", "", "1", "1", ""],
    ]
    pos, problems = convert(HEADER, rows)
    assert [(po.po_number, len(po.lines), po.lines[-1].unit_price.currency) for po, _ in pos] == [
        ("P", 2, "USD")
    ]
    [problem] = problems
    assert (problem.location, problem.field, problem.reason) == ("row 4", "Currency", "currency: is required")


def test_equal_terms_spelled_differently_do_not_conflict():
    header = [*HEADER, "Payment Terms"]
    rows = [["P", "1", "A", "", "1", "1", "USD", "NET30"], ["P", "2", "B", "", "1", "1", "USD", "30 days"]]
    assert len(only_po(header, rows).lines) == 2


def test_a_repeated_line_number_is_refused_and_the_po_held():
    rows = [["P", "1", "A", "", "1", "1", "USD"], ["P", "1", "B", "", "1", "1", "USD"]]
    pos, problems = convert(HEADER, rows)
    assert (problems[0].location, problems[0].field) == ("row 3", "Line")
    assert pos == [] and "held whole" in problems[1].reason


def test_several_versions_of_one_po_in_one_file_become_revisions_oldest_first():
    header = [*HEADER, "Version"]
    rows = [
        ["P", "1", "A", "", "1", "10", "USD", "1"],
        ["Q", "1", "C", "", "1", "5", "USD", "1"],
        ["P", "1", "A", "", "3", "10", "USD", "2"],
        ["P", "2", "B", "", "1", "7", "USD", "2"],
    ]
    pos, problems = convert(header, rows)
    assert problems == []
    assert [(po.po_number, po.revision, len(po.lines)) for po, _ in pos] == [
        ("P", 1, 1),
        ("P", 2, 2),
        ("Q", 1, 1),
    ]
    latest = pos[1][0]
    assert [line.quantity for line in latest.lines] == [Decimal("3"), Decimal("1")]


def test_header_fields_status_revision_buyer_and_addresses():
    header = [
        *HEADER,
        "Status",
        "Revision",
        "Buyer ID",
        "Buyer Name",
        "Approver",
        "PO Date",
        "Bill To Name",
        "Bill To Street",
        "Bill To City",
        "Bill To Postal Code",
        "Bill To Country",
        "Ship To Name",
        "Ship To Email",
    ]
    row = [
        "P",
        "1",
        "A",
        "",
        "1",
        "1",
        "USD",
        "Approved",
        "3",
        "B-77",
        "Acme",
        "Jane",
        "05.01.2026",
        "Acme Corp",
        "100 Main St",
        "Springfield",
        "62701",
        "us",
        "Acme Ops",
        "ops@acme.example",
    ]
    po = only_po(header, [row])
    assert (po.status, po.source_status, po.revision) == (POStatus.OPEN, "Approved", 3)
    assert po.source_version == "3"
    assert (po.buyer_id, po.buyer_name, po.approver) == ("B-77", "Acme", "Jane")
    assert po.issued_on == date(2026, 1, 5)
    assert po.bill_to is not None
    assert (po.bill_to.name, po.bill_to.lines, po.bill_to.country) == ("Acme Corp", ("100 Main St",), "US")
    assert po.ship_to is not None
    assert (po.ship_to.name, po.ship_to.email) == ("Acme Ops", "ops@acme.example")


def test_an_unknown_status_is_refused():
    _, problems = convert([*HEADER, "Status"], [["P", "1", "A", "", "1", "1", "USD", "maybe"]])
    assert problems[0].field == "Status"
    assert "unknown PO status" in problems[0].reason


def test_defaults_when_optional_columns_are_absent():
    when = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    pos, _ = convert(
        HEADER,
        [["P", "", "A", "", "1", "1", "USD"]],
        buyer_id_default="acme.example",
        raw_sha256="abc",
        updated_at=when,
        tenant="t1",
    )
    po = pos[0][0]
    assert (po.buyer_id, po.raw_sha256, po.source_updated_at, po.tenant) == (
        "acme.example",
        "abc",
        when,
        "t1",
    )
    assert (po.status, po.revision, po.lines[0].unit_of_measure, po.bill_to) == (POStatus.OPEN, 1, "EA", None)


def test_the_raw_text_of_a_po_is_the_header_and_its_own_rows():
    rows = [
        ["A", "1", "X", "with, comma", "1", "1", "USD"],
        ["B", "1", "Y", "", "1", "1", "USD"],
        ["A", "2", "Z", "", "1", "1", "USD"],
    ]
    pos, _ = convert(HEADER, rows)
    raw = pos[0][1]
    assert raw.splitlines() == [",".join(HEADER), 'A,1,X,"with, comma",1,1,USD', "A,2,Z,,1,1,USD"]


# ---------------------------------------------------------------------------- loading profiles


def write_profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text, "utf-8")
    return path


MINIMAL = """
date_formats = ["%Y-%m-%d"]
[fields.po_number]
column = "PO"
[fields.sku]
column = "SKU"
[fields.quantity]
column = "Qty"
[fields.unit_price]
column = "Price"
[fields.currency]
column = "Cur"
"""


def test_a_profile_file_is_loaded_by_path(tmp_path: Path):
    mapping = load_mapping(write_profile(tmp_path, MINIMAL))
    assert mapping.name == "profile"
    pos, problems = convert(
        ["PO", "SKU", "Qty", "Price", "Cur"], [["1", "S", "1", "1", "USD"]], mapping=mapping
    )
    assert problems == [] and len(pos) == 1


def test_an_unknown_profile_name_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_profile"):
        load_mapping("no_such_profile")


def test_a_misspelt_key_is_a_config_error_naming_file_and_key(tmp_path: Path):
    path = write_profile(tmp_path, MINIMAL.replace('column = "SKU"', 'column = "SKU"\nalias = ["x"]'))
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value)
    assert "fields.sku.alias" in str(caught.value)


def test_a_missing_required_field_is_a_config_error(tmp_path: Path):
    path = write_profile(tmp_path, MINIMAL.replace('[fields.currency]\ncolumn = "Cur"', ""))
    with pytest.raises(ConfigError, match=r"fields\.currency: is required"):
        load_mapping(path)


def test_an_unknown_canonical_field_is_a_config_error(tmp_path: Path):
    path = write_profile(tmp_path, MINIMAL + '[fields.colour]\ncolumn = "Colour"\n')
    with pytest.raises(ConfigError, match=r"fields\.colour"):
        load_mapping(path)


def test_a_column_name_used_by_two_fields_is_a_config_error(tmp_path: Path):
    path = write_profile(tmp_path, MINIMAL.replace('column = "Cur"', 'column = "Cur"\naliases = ["q t y"]'))
    with pytest.raises(ConfigError, match=r"fields\.quantity"):
        load_mapping(path)


def test_invalid_toml_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_mapping(write_profile(tmp_path, "date_formats = ["))


def test_a_bad_decimal_separator_is_a_config_error(tmp_path: Path):
    path = write_profile(tmp_path, 'decimal_separator = ";"\n' + MINIMAL)
    with pytest.raises(ConfigError, match="decimal_separator"):
        load_mapping(path)


def test_a_missing_profile_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_mapping(tmp_path / "absent.toml")


# ---------------------------------------------------------------------------- properties

amounts = st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False)


@given(amounts, st.sampled_from([(".", ","), (",", "."), (",", " "), (".", "'")]))
def test_formatted_amounts_parse_back_exactly(amount, separators):
    decimal, thousands = separators
    text = f"{amount:,.2f}".replace(",", "\x00").replace(".", decimal).replace("\x00", thousands)
    assert parse_decimal(text, decimal) == amount


@given(st.text(max_size=20), st.sampled_from([".", ","]))
def test_any_text_is_a_finite_number_or_a_value_error(text, separator):
    with contextlib.suppress(ValueError):
        assert parse_decimal(text, separator).is_finite()


@given(st.text(max_size=30))
def test_any_text_is_payment_terms_or_a_value_error(text):
    with contextlib.suppress(ValueError):
        assert 0 <= parse_payment_terms(text).net_days <= 3650


@given(st.lists(st.lists(st.text(max_size=8), min_size=7, max_size=7), max_size=6))
def test_any_cells_give_pos_or_problems_never_an_exception(rows):
    pos, problems = convert(HEADER, rows)
    kept = sum(len(po.lines) for po, _ in pos)
    assert kept + len({p.location for p in problems}) <= len(rows)


def test_two_buyers_with_the_same_po_number_are_two_pos() -> None:
    from adapters.tabular import read_csv
    from mappings.csv_mapping import load_mapping, rows_to_pos

    table = read_csv("PO Number,SKU,Quantity,Unit Price,Currency\n1001,PLAN-PRO,1,10.00,USD\n")
    mapping = load_mapping("csv_default")
    [(acme, _)], _ = rows_to_pos(
        table, mapping, source="inbox", document="a.csv", buyer_id_default="acme.example"
    )
    [(globex, _)], _ = rows_to_pos(
        table, mapping, source="inbox", document="g.csv", buyer_id_default="globex.example"
    )
    assert acme.po_number == globex.po_number == "1001"
    assert acme.key != globex.key


def test_a_guessed_separator_refuses_ambiguous_grouping() -> None:
    import pytest

    from mappings.csv_mapping import parse_decimal

    with pytest.raises(ValueError, match="ambiguous"):
        parse_decimal("2,500", ".", guessed=True)
    with pytest.raises(ValueError, match="ambiguous"):
        parse_decimal("1.250", ",", guessed=True)
    assert parse_decimal("2,500", ".") == 2500  # the profile said "." explicitly
    assert parse_decimal("1,500.00", ".", guessed=True) == 1500
    assert parse_decimal("24.000,00", ",", guessed=True) == 24000
    with pytest.raises(ValueError, match="cannot start with 0"):
        parse_decimal("0,500", ".")
