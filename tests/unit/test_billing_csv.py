"""The `csv` billing source: rows to billing periods, bad rows reported and skipped."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.billing_csv import CsvBillingConfig, CsvBillingSource
from connector.errors import ConfigError, InputProblem
from connector.model import Money
from connector.ports import AdapterContext, AdapterKind, BillingSource, PullContext
from connector.tax import LineTax, TaxCategory, TaxScheme

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEADER = (
    "customer_ref,customer_name,subscription_id,period_start,period_end,sku,description,"
    "quantity,unit_price,currency,po_number,invoice_date\n"
)


def source_for(path: Path, **config: object) -> CsvBillingSource:
    return CsvBillingSource(
        CsvBillingConfig(name="billing", path=path, **config),  # type: ignore[arg-type]
        AdapterContext(tenant="t1", base_dir=path.parent),
    )


def read(tmp_path: Path, text: str, **config: object):  # type: ignore[no-untyped-def]
    path = tmp_path / "billing.csv"
    path.write_text(text, encoding="utf-8")
    return source_for(path, **config).read()


def where(problem: InputProblem) -> tuple[str, str, str]:
    return (problem.location, problem.field, problem.value)


def test_source_declares_the_billing_port() -> None:
    source = source_for(EXAMPLES / "billing.csv")
    assert isinstance(source, BillingSource)
    assert CsvBillingSource.kind is AdapterKind.BILLING
    assert CsvBillingSource.capabilities == frozenset()
    assert CsvBillingSource.Config is CsvBillingConfig


def test_example_file_gives_ten_periods_and_no_rejections() -> None:
    source = CsvBillingSource(
        CsvBillingConfig(name="billing", path=Path("billing.csv")), AdapterContext(base_dir=EXAMPLES)
    )
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    assert len(batches) == 1
    batch = batches[0]
    assert batch.rejections == []
    assert len(batch.records) == 10
    first = batch.records[0]
    assert first.key == "default/billing/SUB-ACME-PRO/2026-10-01"
    assert (first.customer_ref, first.customer_name, first.po_number) == (
        "CUST-ACME",
        "Acme Corp",
        "ACME-PO-1001",
    )
    assert (first.period_end, first.invoice_date) == (date(2026, 10, 31), date(2026, 10, 1))
    assert first.lines[0].unit_price == Money.of("40.00", "USD")
    assert first.lines[0].quantity == Decimal(50)
    assert first.lines[0].tax == LineTax(
        scheme=TaxScheme.SALES_TAX,
        category=TaxCategory.STANDARD,
        rate=Decimal("8.875"),
        jurisdiction="US-NY",
        amount=Decimal("177.50"),
        origin="billing",
    )
    assert batch.records[1].po_number is None


def test_rows_of_one_subscription_period_form_one_period_with_several_lines(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n"
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,ADDON-SSO,SSO,1,10.005,USD,PO-1,\n"
        + "C1,Acme,SUB-1,2026-12-01,2026-12-31,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n",
    )
    assert batch.rejections == []
    assert [len(p.lines) for p in batch.records] == [2, 1]
    november = batch.records[0]
    assert november.tenant == "t1"
    assert november.billing_source == "billing"
    assert [line.sku for line in november.lines] == ["PLAN-PRO", "ADDON-SSO"]
    assert november.lines[1].unit_price.amount == Decimal("10.005")
    assert november.total == Money.of("2010.005", "USD")


def test_bad_rows_are_reported_with_row_column_and_value_and_the_rest_goes_on(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,,\n"
        + "C1,Acme,SUB-2,2026-11-31,2026-11-30,PLAN-PRO,Seats,5,40.00,USD,,\n"
        + "C1,Acme,SUB-3,2026-11-01,2026-11-30,PLAN-PRO,Seats,1.5.0,40,USD,,\n"
        + "C1,Acme,SUB-4,2026-11-01,2026-11-30,PLAN-PRO,Seats,0,40,usd,,\n"
        + "C1,Acme,SUB-5,2026-11-01,2026-11-30,PLAN-PRO,Seats,1,-4,XYZ,,\n"
        + ",Acme,SUB-6,2026-11-01,2026-11-30,,Seats,1,NaN,USD,,\n"
        + "C1,Acme,SUB-7,2026-11-30,2026-11-01,PLAN-PRO,Seats,1,4,USD,,someday\n"
        + "C1,Acme,SUB-8,2026-11-01,2026-11-30,PLAN-PRO,Seats,1,4,USD,,,surplus\n",
    )
    assert [p.subscription_id for p in batch.records] == ["SUB-1"]
    assert [where(p) for p in batch.rejections] == [
        ("row 3", "period_start", "2026-11-31"),
        ("row 4", "quantity", "1.5.0"),
        ("row 5", "quantity", "0"),
        ("row 6", "currency", "XYZ"),
        ("row 6", "unit_price", "-4"),
        ("row 7", "customer_ref", ""),
        ("row 7", "sku", ""),
        ("row 7", "unit_price", "NaN"),
        ("row 8", "invoice_date", "someday"),
        ("row 8", "period_end", "2026-11-01"),
        ("row 9", "", "surplus"),
    ]
    problem = batch.rejections[0]
    assert problem.source == "billing"
    assert problem.document == str(tmp_path / "billing.csv")
    assert problem.describe() == (
        f"billing: {tmp_path / 'billing.csv'}, row 3: field 'period_start' value '2026-11-31': "
        "is not a date in the expected format"
    )


def test_row_disagreeing_with_its_period_refuses_the_whole_period(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n"
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,ADDON-SSO,SSO,1,10,EUR,PO-1,\n"
        + "C2,Beta,SUB-2,2026-11-01,2026-11-30,PLAN-PRO,Seats,5,40.00,USD,,\n",
    )
    assert [period.subscription_id for period in batch.records] == ["SUB-2"]  # the rest goes on
    assert [where(p) for p in batch.rejections] == [
        ("row 3", "currency", "EUR"),
        ("row 2", "subscription_id", "SUB-1"),
    ]
    assert batch.rejections[0].reason == "differs from row 2 of the same period ('USD')"
    assert "whole period" in batch.rejections[1].reason


def test_a_bad_row_refuses_its_whole_period_so_it_is_never_invoiced_short(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n"
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,SUPPORT,Support,1,1.200.00,USD,PO-1,\n",
    )
    assert batch.records == []
    assert [where(p)[1] for p in batch.rejections] == ["unit_price", "subscription_id"]


def test_header_aliases_order_case_and_a_semicolon_delimiter(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        "Currency;Unit Price;Quantity;SKU;Period-End;Period Start;Subscription_ID;Customer\n"
        "eur;5.00;20;ADDON-SSO;2026-11-30;2026-11-01;SUB-9;CUST-GLOBEX\n",
    )
    assert batch.rejections == []
    period = batch.records[0]
    assert (period.customer_ref, period.currency, period.po_number, period.invoice_date) == (
        "CUST-GLOBEX",
        "EUR",
        None,
        None,
    )
    assert period.lines[0].unit_price == Money.of("5.00", "EUR")


def test_missing_required_column_refuses_the_file_naming_the_column(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        "customer_ref,subscription_id,period_start,period_end,sku,quantity,currency\nC1,S,2026-11-01,2026-11-30,A,1,USD\n",
    )
    assert batch.records == []
    assert [where(p) for p in batch.rejections] == [("row 1", "unit_price", "")]


def test_a_column_given_twice_under_an_alias_is_refused(tmp_path: Path) -> None:
    batch = read(
        tmp_path, HEADER.replace("customer_name", "customer") + "C1,C2,S,2026-11-01,2026-11-30,A,,1,1,USD,,\n"
    )
    assert batch.records == []
    assert [where(p) for p in batch.rejections] == [("row 1", "customer_ref", "customer_ref")]


def test_configured_date_format_is_used(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        HEADER + "C1,Acme,SUB-1,01.11.2026,30.11.2026,PLAN-PRO,Seats,50,40.00,USD,,02.11.2026\n",
        date_format="%d.%m.%Y",
    )
    assert batch.rejections == []
    period = batch.records[0]
    assert (period.period_start, period.period_end, period.invoice_date) == (
        date(2026, 11, 1),
        date(2026, 11, 30),
        date(2026, 11, 2),
    )


def test_blank_rows_and_a_byte_order_mark_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    path.write_bytes(
        ("\ufeff" + HEADER + "\n" + "C1,Acme,SUB-1,2026-11-01,2026-11-30,A,,1,1,USD,,\n").encode()
    )
    batch = source_for(path).read()
    assert batch.rejections == []
    assert len(batch.records) == 1


def test_windows_1252_export_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    path.write_bytes(
        (HEADER + "C1,Société Générale,SUB-1,2026-11-01,2026-11-30,A,,1,1,EUR,,\n").encode("cp1252")
    )
    assert source_for(path).read().records[0].customer_name == "Société Générale"


def test_empty_file_gives_an_empty_batch(tmp_path: Path) -> None:
    batch = read(tmp_path, "")
    assert (batch.records, batch.rejections) == ([], [])


def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.csv"):
        source_for(tmp_path / "absent.csv").read()


def test_relative_path_is_resolved_against_the_base_dir(tmp_path: Path) -> None:
    source = CsvBillingSource(
        CsvBillingConfig(name="billing", path=Path("data/b.csv")), AdapterContext(base_dir=tmp_path)
    )
    assert source.path == tmp_path / "data" / "b.csv"


TAX_HEADER = HEADER.rstrip("\n") + ",tax_category,tax_rate,tax_amount,tax_jurisdiction,tax_exemption_reason\n"
ROW = "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,EUR,PO-1,"


def test_tax_columns_give_each_line_its_vat_treatment(tmp_path: Path) -> None:
    batch = read(
        tmp_path,
        TAX_HEADER
        + ROW
        + ",S,19,380.00,,\n"
        + ROW.replace("PLAN-PRO", "ADDON-SSO")
        + ",ae,0,,,VATEX-EU-AE\n"
        + ROW.replace("PLAN-PRO", "TRAINING")
        + ",E,0,,,Exempt education\n",
    )
    assert batch.rejections == []
    standard, reverse, exempt = (line.tax for line in batch.records[0].lines)
    assert standard == LineTax(
        category=TaxCategory.STANDARD, rate=Decimal(19), amount=Decimal("380.00"), origin="billing"
    )
    assert reverse is not None and reverse.category is TaxCategory.REVERSE_CHARGE
    assert reverse.exemption_reason_code == "VATEX-EU-AE" and reverse.exemption_reason == ""
    assert exempt is not None and exempt.exemption_reason == "Exempt education"


def test_a_row_without_tax_columns_filled_carries_no_tax(tmp_path: Path) -> None:
    batch = read(tmp_path, TAX_HEADER + ROW + ",,,,,\n")
    assert batch.rejections == []
    assert batch.records[0].lines[0].tax is None


@pytest.mark.parametrize(
    ("cells", "column", "value", "why"),
    [
        (",X,19,,,", "tax_category", "X", "is not a tax category"),
        (",S,140,,,", "tax_rate", "140", "out of range"),
        (",S,abc,,,", "tax_rate", "abc", "is not a decimal number"),
        (",,19,,,", "tax_category", "", "is required when tax_rate is given"),
        (",S,,,,", "tax_rate", "", "is required for tax category S"),
        (",AE,0,,,", "tax_category", "AE", "needs an exemption reason"),
        (",S,0,,,", "tax_rate", "0", "use Z for zero-rated"),
    ],
)
def test_bad_tax_cells_refuse_the_row_naming_column_and_value(
    tmp_path: Path, cells: str, column: str, value: str, why: str
) -> None:
    batch = read(tmp_path, TAX_HEADER + ROW + cells + "\n" + ROW.replace("SUB-1", "SUB-2") + ",Z,0,,,\n")
    assert [r.field for r in batch.rejections if r.location == "row 2"] == [column]
    problem = next(r for r in batch.rejections if r.location == "row 2")
    assert problem.value == value and why in problem.reason
    assert [p.subscription_id for p in batch.records] == ["SUB-2"]  # the rest of the file goes on


def test_an_export_read_before_and_unchanged_gives_an_empty_batch_with_its_cursor(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    path.write_text(HEADER + "C1,Acme,S1,2026-11-01,2026-11-30,PLAN,Pro,2,40.00,USD,,\n", encoding="utf-8")
    source = source_for(path)
    now = datetime.now(UTC)
    (first,) = source.pull(PullContext(cursor=None, started_at=now))
    assert len(first.records) == 1 and first.cursor is not None
    (again,) = source.pull(PullContext(cursor=first.cursor, started_at=now))
    assert again.records == [] and again.rejections == [] and again.cursor == first.cursor

    path.write_text(path.read_text(encoding="utf-8").replace(",2,40.00", ",3,40.00"), encoding="utf-8")
    (changed,) = source.pull(PullContext(cursor=first.cursor, started_at=now))
    assert [p.lines[0].quantity for p in changed.records] == [Decimal(3)]
    assert changed.cursor != first.cursor
    # The same bytes read with other settings are another input.
    other = source_for(path, date_format="%Y-%m-%d")
    (reread,) = other.pull(PullContext(cursor=changed.cursor, started_at=now))
    assert len(reread.records) == 1


def test_a_large_export_comes_in_batches_with_the_refused_rows_and_the_cursor_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.billing_csv

    monkeypatch.setattr(adapters.billing_csv, "PERIODS_PER_BATCH", 2)
    rows = [
        f"C{n},Cust {n},SUB-{n},2026-11-01,2026-11-30,PLAN-PRO,Pro,1,{'oops' if n == 2 else '10.00'},USD,,\n"
        for n in range(5)
    ]
    path = tmp_path / "billing.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    batches = list(source_for(path).pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    assert [len(batch.records) for batch in batches] == [2, 2, 0]
    assert [batch.cursor is not None for batch in batches] == [False, False, True]
    assert [len(batch.rejections) for batch in batches] == [0, 0, 1]
    assert sorted(p.subscription_id for b in batches for p in b.records) == [
        "SUB-0",
        "SUB-1",
        "SUB-3",
        "SUB-4",
    ]
    whole = source_for(path).read()
    assert len(whole.records) == 4 and len(whole.rejections) == 1


def test_a_periods_rows_far_apart_in_the_file_form_one_period_in_file_order(tmp_path: Path) -> None:
    between = "".join(
        f"C2,Beta,SUB-{n},2026-11-01,2026-11-30,PLAN-PRO,Seats,1,40.00,USD,,\n" for n in range(10, 2510)
    )
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n"
        + between
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,ADDON-SSO,SSO,1,10.50,USD,PO-1,\n",
    )
    assert batch.rejections == []
    assert len(batch.records) == 2501
    first = batch.records[0]  # periods come in the order of their first row
    assert first.subscription_id == "SUB-1"
    assert [(line.sku, str(line.unit_price.amount)) for line in first.lines] == [
        ("PLAN-PRO", "40.00"),
        ("ADDON-SSO", "10.50"),
    ]
    assert [p.subscription_id for p in batch.records[1:3]] == ["SUB-10", "SUB-11"]


def test_a_disagreeing_row_far_from_its_period_still_refuses_it(tmp_path: Path) -> None:
    between = "".join(
        f"C2,Beta,SUB-{n},2026-11-01,2026-11-30,PLAN-PRO,Seats,1,40.00,USD,,\n" for n in range(10, 1510)
    )
    batch = read(
        tmp_path,
        HEADER
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n"
        + between
        + "C1,Acme,SUB-1,2026-11-01,2026-11-30,ADDON-SSO,SSO,1,10,USD,PO-2,\n",
    )
    assert "SUB-1" not in {p.subscription_id for p in batch.records}
    assert [where(p) for p in batch.rejections] == [
        ("row 1503", "po_number", "PO-2"),
        ("row 2", "subscription_id", "SUB-1"),
    ]


def test_a_large_export_is_read_without_holding_its_rows(tmp_path: Path) -> None:
    import tracemalloc

    rows = (
        f"C{n // 20},Customer {n // 20},SUB-{n},2026-11-01,2026-11-30,{sku},Seats,3,40.00,USD,PO-{n},\n"
        for n in range(9000)
        for sku in ("PLAN-PRO", "ADDON-SSO")
    )
    path = tmp_path / "billing.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    source = source_for(path)
    tracemalloc.start()
    try:
        periods = 0
        for batch in source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))):
            periods += len(batch.records)
            del batch
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert periods == 9000
    # Held whole, the 18,000 rows took about 57 MB; one batch of 500 periods takes about 3 MB.
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_a_file_that_is_not_text_past_its_first_megabyte_is_refused_whole(tmp_path: Path) -> None:
    good = "C1,Acme,SUB-1,2026-11-01,2026-11-30,PLAN-PRO,Seats,50,40.00,USD,PO-1,\n" * 20000
    path = tmp_path / "billing.csv"
    path.write_bytes(HEADER.encode() + good.encode() + b"C1,\x00\x81,SUB-2\n")
    batch = source_for(path).read()
    assert batch.records == []
    assert [p.reason for p in batch.rejections] == [
        "the file cannot be read as CSV: not text in UTF-8, UTF-16 or Windows-1252"
    ]
