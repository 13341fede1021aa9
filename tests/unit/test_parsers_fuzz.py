"""Hostile input never crashes a parser: only the project's input errors escape, bounded runs.

Each test mutates a valid document of its format (a value replaced by random text, numbers,
nesting or bytes) and asserts the parser either maps it or refuses it with the error type the
source turns into a quarantined record; anything else (AttributeError, OverflowError, a bare
ValueError from the standard library) would stop a whole batch, and fails here.
"""

from __future__ import annotations

import contextlib
import copy
import email
import email.policy
import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.billing_csv import CsvBillingConfig, CsvBillingSource
from adapters.coupa_mapping import CoupaMappingError, map_purchase_order
from adapters.cxml_order import parse_order_request
from adapters.cxml_receiver import make_app
from adapters.email_csv_parsing import message_batches
from adapters.stripe_fields import MappingOptions, StripeMappingError
from adapters.stripe_mapping import map_invoice
from adapters.stripe_tax import TaxRates
from connector.errors import InputError
from connector.ports import AdapterContext
from mappings.csv_mapping import CsvTable, load_mapping, rows_to_pos
from tests.integration.test_cxml_receiver import BUYER
from tests.support.shared import shared_fixture
from tests.unit import test_coupa_mapping, test_stripe_mapping

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.just(10**4200),  # printable: hypothesis shows a failing example with repr()
    st.just("9" * 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "1e999999", "NaN", "-0", "2026-13-45", "0000-00-00T99:99", "\x00", "٣"]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def mutations(document: Any) -> st.SearchStrategy[Any]:
    """The document with one to three of its values (at any depth) replaced by hostile ones."""
    paths = _paths(document)

    def apply(changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
        result = document
        for path, value in changes:
            try:
                result = _replaced(result, path, value)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the path
        return result

    return st.lists(st.tuples(st.sampled_from(paths), hostile_values), min_size=1, max_size=3).map(apply)


@FUZZ
@given(mutations(test_coupa_mapping.PO))
def test_the_coupa_mapping_raises_only_its_mapping_error(data: Any) -> None:
    try:
        map_purchase_order(data, source="acme", raw="{}", buyer_id="acme")
    except CoupaMappingError as exc:
        assert exc.field is not None


@FUZZ
@given(mutations(test_stripe_mapping.invoice([test_stripe_mapping.line()])))
def test_the_stripe_mapping_raises_only_its_mapping_error(data: Any) -> None:
    try:
        map_invoice(data, source="stripe", options=MappingOptions())
    except StripeMappingError as exc:
        assert exc.field is not None


# Two taxed lines: one naming a TaxRate by id (fetched), one with the TaxRate expanded, and the
# invoice's total_taxes and customer_tax_exempt, so every tax field is mutated.
_TAXED_INVOICE = test_stripe_mapping.invoice(
    [
        test_stripe_mapping.taxed(
            test_stripe_mapping.tax(400, "txr_ny"), test_stripe_mapping.tax(488, "txr_nyc"), id="il_a"
        ),
        test_stripe_mapping.taxed(
            test_stripe_mapping.tax(
                1597, dict(test_stripe_mapping.VAT_DE, percentage=19.0), behavior="inclusive"
            ),
            id="il_b",
        ),
    ],
    total_taxes=[test_stripe_mapping.tax(2485, "txr_ny")],
    customer_tax_exempt="none",
)


@FUZZ
@given(mutations(_TAXED_INVOICE), st.sampled_from(["found", "mutated", "unreadable"]), hostile_values)
def test_the_stripe_tax_mapping_raises_only_its_mapping_error(data: Any, rates: str, value: Any) -> None:
    found = dict(test_stripe_mapping.RATES.found)
    if rates == "mutated":
        found["txr_ny"] = dict(found["txr_ny"], percentage=value)
        found["txr_nyc"] = dict(found["txr_nyc"], tax_type=value, state=value)
    unreadable = {"txr_nyc": "Stripe 404 resource_missing"} if rates == "unreadable" else {}
    try:
        map_invoice(
            data,
            source="stripe",
            options=MappingOptions(),
            tax_rates=TaxRates(found=found, unreadable=unreadable),
        )
    except StripeMappingError as exc:
        assert exc.field is not None


ORDER = shared_fixture("cxml/OrderRequest-generic.xml").read_bytes()
_ORDER_TEXTS = sorted({t for t in ORDER.decode().split(">") if "<" in t and t.split("<")[0].strip()})


@FUZZ
@given(
    st.sampled_from(_ORDER_TEXTS) if _ORDER_TEXTS else st.just(""),
    st.text(max_size=40),
    st.binary(max_size=20),
)
def test_the_cxml_order_parser_raises_only_input_errors(text: str, replacement: str, noise: bytes) -> None:
    value = text.split("<")[0]
    escaped = replacement.replace("&", "&amp;").replace("<", "&lt;")
    for data in (
        ORDER.replace(f">{value}<".encode(), f">{escaped}<".encode(), 1),
        ORDER[: len(noise) * 40] + noise,
    ):
        with contextlib.suppress(InputError):
            parse_order_request(data, source="cxml", document="fuzz.xml")


BILLING_HEADER = (
    "customer_ref,customer_name,subscription_id,period_start,period_end,sku,description,"
    "quantity,unit_price,currency,po_number,invoice_date"
)
BILLING_ROW = ["CUST-1", "Acme", "sub_1", "2026-01-01", "2026-01-31", "PLAN-PRO", "Pro", "2", "99.00", "USD",
               "PO-1", "2026-02-01"]  # fmt: skip
cells = st.one_of(
    st.text(max_size=12), st.sampled_from(["", "9" * 5000, "1e999999", "-1", "NaN", "31/02/2026"])
)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(BILLING_ROW) - 1), cells), max_size=6), st.integers(1, 3))
def test_the_billing_csv_reader_reports_problems_and_never_raises(
    changes: list[tuple[int, str]], rows: int
) -> None:

    lines = [BILLING_HEADER]
    for _ in range(rows):
        row = list(BILLING_ROW)
        for index, value in changes:
            row[index] = value.replace(",", ";").replace("\n", " ").replace("\r", " ").replace('"', "'")
        lines.append(",".join(row))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "billing.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        source = CsvBillingSource(
            CsvBillingConfig(name="billing", path=path), AdapterContext(base_dir=path.parent)
        )
        batch = source.read()
    assert len(batch.records) + len(batch.rejections) >= 1


MAPPING = load_mapping("csv_default")
CSV = "po_number,line,sku,quantity,unit_price,currency\nP-1,1,SEAT,2,10.00,USD\n"
header_values = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\r", " ").replace("\n", " ")),
    st.sampled_from(["g: h: a@b;;", "g:a@b;x@y", "g: a@[;", "=?utf-8?b?////?=", "<>", '"\\', "a@@b", ":;"]),
)


@FUZZ
@given(header_values, header_values, header_values)
def test_the_email_reader_quarantines_bad_headers_and_never_raises(
    sender: str, date: str, message_id: str
) -> None:
    raw = (
        f"From: {sender}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\nSubject: PO\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: text/csv\r\n"
        f'Content-Disposition: attachment; filename="po.csv"\r\n\r\n{CSV}\r\n--b--\r\n'
    ).encode("utf-8", "surrogateescape")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    batches = list(
        message_batches(
            message, MAPPING, source="inbox", tenant="t", senders={}, name="fuzz.eml", fallback_id="sha"
        )
    )
    assert batches and all(b.records or b.rejections for b in batches)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200), st.sampled_from([ORDER, ORDER[:300], ORDER.replace(b"coyote", b"")])
    ),
    content_type=st.text(max_size=30),
)
def test_the_cxml_receiver_answers_every_body_with_a_status(
    tmp_path: Path, body: bytes, content_type: str
) -> None:
    from adapters.cxml_spool import CxmlSpool

    app = make_app({"prominate": BUYER}, CxmlSpool(tmp_path / "spool"))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/cxml/orders",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "0",
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []
    answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))  # type: ignore[arg-type,return-value]
    assert b"".join(answer) is not None
    assert statuses and statuses[0][:3] in {"200", "400", "401", "413", "415", "500"}, statuses


CSV_HEADER = [
    "PO Number", "Line", "SKU", "Description", "Quantity", "Unit Price", "Currency", "UOM",
    "Term Start", "Term End", "Payment Terms", "PO Date", "Buyer ID", "Buyer Name", "Status",
    "Revision", "Approver", "Bill To Name", "Bill To Street", "Bill To City", "Bill To State",
    "Bill To Postal Code", "Bill To Country", "Bill To Email", "Ship To Name", "Ship To Street",
    "Ship To City", "Ship To State", "Ship To Postal Code", "Ship To Country", "Ship To Email",
]  # fmt: skip
CSV_ROW = [
    "PO-1", "1", "PLAN-PRO", "Pro seats", "10", "45.00", "USD", "EA", "2026-01-01", "2026-12-31",
    "NET30", "2025-12-20", "acme.example", "Acme", "open", "2", "J. Doe", "Acme AP", "1 Main St",
    "Austin", "TX", "73301", "US", "ap@acme.example", "Acme", "2 Side St", "Austin", "TX",
    "73301", "US", "it@acme.example",
]  # fmt: skip
csv_cells = st.one_of(
    st.text(max_size=16),
    st.sampled_from(["9" * 5000, "1" + "0" * 30, "1e999999", "-1", "0", "NaN", "Infinity", "31/02/2026",
                     "9999-12-31", "0001-01-01", "net 9999", "99/999 net 9999", "1.000.000,5", "٣", "\x00"]),
)  # fmt: skip


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(CSV_ROW) - 1), csv_cells), min_size=1, max_size=6),
    st.integers(1, 3),
)
def test_the_csv_mapping_turns_any_cell_values_into_pos_or_problems(
    changes: list[tuple[int, str]], lines: int
) -> None:
    rows = []
    for number in range(1, lines + 1):
        row = list(CSV_ROW)
        row[1] = str(number)
        for index, value in changes:
            row[index] = value
        rows.append(row)
    pos, problems = rows_to_pos(CsvTable(CSV_HEADER, rows, ","), MAPPING, source="inbox", document="po.csv")
    assert pos or problems
    assert all(problem.document == "po.csv" and problem.location for problem in problems)
