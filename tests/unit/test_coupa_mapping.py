"""Coupa PO JSON -> canonical PurchaseOrder: the pure mapping."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.coupa_mapping import (
    PO_FIELDS,
    CoupaMappingError,
    fields_param,
    map_payment_terms,
    map_purchase_order,
    parse_json,
    split_array,
)
from connector.model import POStatus

PO: dict[str, Any] = {
    "id": 4711,
    "po-number": "PO-4711",
    "status": "issued",
    "version": 3,
    "internal-revision": 7,
    "created-at": "2024-03-01T09:00:00-08:00",
    "updated-at": "2024-03-02T10:30:00-08:00",
    "currency": {"id": 1, "code": "USD"},
    "supplier": {"id": 77, "name": "Cloudly", "number": "SUP-77"},
    "ship-to-address": {
        "name": "Acme HQ",
        "street1": "1 Market St",
        "street2": None,
        "city": "San Francisco",
        "state": "CA",
        "postal-code": "94105",
        "country": {"code": "us", "name": "United States"},
    },
    "payment-term": {"code": "Net 45"},
    "order-lines": [
        {
            "id": 9001,
            "line-num": "1",
            "type": "OrderQuantityLine",
            "description": "Pro plan seat",
            "quantity": "12.000000",
            "price": "99.990000",
            "total": "1199.88",
            "source-part-num": "PLAN-PRO",
            "supp-aux-part-num": "AUX-1",
            "uom": {"code": "MON"},
            "need-by-date": "2024-04-01T00:00:00-08:00",
        },
        {"id": 9002, "line-num": "2", "description": "Setup", "quantity": "1", "price": "500.00"},
    ],
}


def mapped(data: Any = None, raw: str = "{}") -> Any:
    return map_purchase_order(
        PO if data is None else data, source="acme", raw=raw, buyer_id="acme.coupahost.com"
    )


def changed(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PO)
    data.update(changes)
    return data


def test_header_fields_map_to_the_canonical_po() -> None:
    po = mapped()
    assert (po.source, po.external_id, po.po_number, po.revision) == ("acme", "4711", "PO-4711", 3)
    assert po.source_version == "3"  # Coupa's own version, kept beside our revision
    assert (po.status, po.source_status, po.currency) == (POStatus.OPEN, "issued", "USD")
    assert po.buyer_id == "acme.coupahost.com"
    assert po.source_updated_at == datetime(2024, 3, 2, 18, 30, tzinfo=UTC)
    assert po.payment_terms is not None and (po.payment_terms.code, po.payment_terms.net_days) == (
        "Net 45",
        45,
    )
    assert po.ship_to is not None
    assert po.ship_to.lines == ("1 Market St",) and po.ship_to.country == "US" and po.ship_to.region == "CA"
    assert po.extrinsics["supplier.number"] == "SUP-77"
    assert po.extrinsics["order-line.1.id"] == "9001"
    assert po.extrinsics["order-line.1.need-by-date"].startswith("2024-04-01")


def test_lines_keep_decimal_strings_exact() -> None:
    first, second = mapped().lines
    assert first.quantity == Decimal("12") and first.unit_price.amount == Decimal("99.99")
    assert isinstance(first.quantity, Decimal)
    assert (first.sku, first.supplier_part_aux_id, first.unit_of_measure) == ("PLAN-PRO", "AUX-1", "MON")
    assert (second.line_no, second.sku, second.unit_of_measure) == (2, "", "EA")
    assert mapped().total.amount == Decimal("1699.88")


def test_json_numbers_are_parsed_as_decimal_never_float() -> None:
    raw = '[{"price": 0.1, "quantity": 3}]'
    ((_, value),) = split_array(raw)
    assert value["price"] == Decimal("0.1") and not isinstance(value["price"], float)
    assert parse_json('{"a": 1.10}')["a"] == Decimal("1.10")


def test_a_float_value_is_refused_rather_than_rounded() -> None:
    data = changed()
    data["order-lines"][0]["price"] = 0.1
    with pytest.raises(CoupaMappingError) as caught:
        mapped(data)
    assert caught.value.field == "order-lines[0].price"


def test_split_array_keeps_each_objects_exact_text() -> None:
    text = '[{"id": 1, "total": "1.50"} , {"id":2}]'
    assert [raw for raw, _ in split_array(text)] == ['{"id": 1, "total": "1.50"}', '{"id":2}']
    assert split_array("[]") == []
    with pytest.raises(ValueError):
        split_array('{"errors": {}}')


def test_raw_sha256_is_the_hash_of_the_raw_text() -> None:
    raw = json.dumps(PO)
    assert mapped(raw=raw).raw_sha256 == hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize(
    ("coupa", "canonical"),
    [
        ("issued", POStatus.OPEN),
        ("currently_with_supplier", POStatus.OPEN),
        ("closed", POStatus.CLOSED),
        ("soft_closed", POStatus.CLOSED),
        ("cancelled", POStatus.CANCELLED),
        ("buyer_hold", POStatus.ON_HOLD),
        ("supplier_hold", POStatus.ON_HOLD),
        ("supplier_window_hold", POStatus.ON_HOLD),
        ("currency_hold", POStatus.ON_HOLD),
        ("draft", POStatus.ON_HOLD),
    ],
)
def test_coupa_statuses_map_to_canonical_and_keep_the_original(coupa: str, canonical: POStatus) -> None:
    po = mapped(changed(status=coupa))
    assert (po.status, po.source_status) == (canonical, coupa)


def test_an_unknown_status_is_refused_naming_it() -> None:
    with pytest.raises(CoupaMappingError) as caught:
        mapped(changed(status="frozen"))
    assert (caught.value.field, caught.value.value) == ("status", "frozen")


def test_missing_and_null_optional_elements_are_tolerated() -> None:
    data = {
        "id": 5,
        "po-number": "5",
        "currency": {"code": "EUR"},
        "status": None,
        "version": None,
        "payment-term": None,
        "ship-to-address": None,
        "supplier": None,
        "order-lines": [{"price": "10", "quantity": None, "uom": None, "item": None}],
    }
    po = mapped(data)
    assert (po.revision, po.status, po.payment_terms, po.ship_to, po.source_updated_at) == (
        1,
        POStatus.OPEN,
        None,
        None,
        None,
    )
    assert po.lines[0].line_no == 1 and po.lines[0].quantity == Decimal(1)


def test_an_amount_line_is_one_unit_at_its_total() -> None:
    data = changed()
    data["order-lines"] = [
        {"line-num": "1", "type": "OrderAmountLine", "total": "2500.00", "description": "Services"}
    ]
    (line,) = mapped(data).lines
    assert (line.quantity, line.unit_price.amount) == (Decimal(1), Decimal("2500.00"))


def test_sku_falls_back_to_the_item_number() -> None:
    data = changed()
    data["order-lines"] = [
        {"line-num": "1", "quantity": "1", "price": "5", "item": {"item-number": "IT-9", "name": "x"}}
    ]
    assert mapped(data).lines[0].sku == "IT-9"


@pytest.mark.parametrize(
    ("mutate", "field", "value"),
    [
        (lambda d: d["order-lines"][1].update(quantity="ten"), "order-lines[1].quantity", "ten"),
        (lambda d: d["order-lines"][0].update(quantity="0"), "order-lines[0].quantity", "0"),
        (lambda d: d["order-lines"][0].update({"line-num": "1.a"}), "order-lines[0].line-num", "1.a"),
        (lambda d: d["order-lines"][1].update({"line-num": "1"}), "order-lines[1].line-num", "1"),
        (lambda d: d["order-lines"][1].update(price=None), "order-lines[1].price", ""),
        (
            lambda d: d["order-lines"][1].update(currency={"code": "EUR"}),
            "order-lines[1].currency.code",
            "EUR",
        ),
        (lambda d: d.update(currency={"code": "XYZ"}), "currency.code", "XYZ"),
        (lambda d: d.update(currency=None), "currency.code", ""),
        (lambda d: d.update({"po-number": ""}), "po-number", ""),
        (lambda d: d.update({"order-lines": []}), "order-lines", ""),
        (lambda d: d.update({"updated-at": "yesterday"}), "updated-at", "yesterday"),
        (lambda d: d.update(version="v2"), "version", "v2"),
    ],
)
def test_a_bad_element_is_refused_naming_field_and_value(mutate: Any, field: str, value: str) -> None:
    data = copy.deepcopy(PO)
    mutate(data)
    with pytest.raises(CoupaMappingError) as caught:
        mapped(data)
    assert (caught.value.field, caught.value.value) == (field, value)


@pytest.mark.parametrize(
    ("term", "code", "net", "discount"),
    [
        ({"code": "Net 30"}, "Net 30", 30, None),
        ({"code": "NET60"}, "NET60", 60, None),
        ({"code": "2/10 Net 30"}, "2/10 Net 30", 30, (Decimal(2), 10)),
        ({"code": "Due on receipt"}, "Due on receipt", 0, None),
        ({"code": "Special", "days-for-net-payment": 15}, "Special", 15, None),
    ],
)
def test_payment_terms_are_parsed(term: dict[str, Any], code: str, net: int, discount: Any) -> None:
    terms = map_payment_terms(term)
    assert terms is not None and (terms.code, terms.net_days) == (code, net)
    assert (
        None if terms.discount_percent is None else (terms.discount_percent, terms.discount_days)
    ) == discount


def test_payment_terms_without_days_are_left_out() -> None:
    assert map_payment_terms({"code": "End of month"}) is None


def test_term_comes_from_header_dates_or_from_every_lines_service_period() -> None:
    assert (mapped(changed(**{"start-date": "2024-01-01", "end-date": "2024-12-31"})).term_start) == date(
        2024, 1, 1
    )
    data = changed()
    for line in data["order-lines"]:
        line.update({"service-start-date": "2024-02-01", "service-end-date": "2025-01-31"})
    po = mapped(data)
    assert (po.term_start, po.term_end) == (date(2024, 2, 1), date(2025, 1, 31))
    assert (mapped().term_start, mapped().term_end) == (None, None)


def test_fields_param_is_a_compact_json_array_with_nested_associations() -> None:
    text = fields_param()
    assert json.loads(text) == PO_FIELDS and " " not in text
    assert {"order-lines"} <= {key for item in PO_FIELDS if isinstance(item, dict) for key in item}


class Reads(dict[str, Any]):
    """A PO object that records every element path the mapping reads from it."""

    def __init__(self, data: dict[str, Any], path: str, seen: set[str]) -> None:
        super().__init__(data)
        self.path, self.seen = path, seen

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else self._note(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._note(key, wrap(super().__getitem__(key), f"{self.path}{key}.", self.seen))

    def _note(self, key: str, value: Any) -> Any:
        self.seen.add(f"{self.path}{key}")
        return value


def wrap(value: Any, path: str, seen: set[str]) -> Any:
    if isinstance(value, dict):
        return Reads(value, path, seen)
    if isinstance(value, list):
        return [wrap(item, path, seen) for item in value]
    return value


def requested(fields: list[Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for item in fields:
        if isinstance(item, str):
            paths.add(prefix + item)
        else:
            for key, inner in item.items():
                paths.add(prefix + key)
                paths |= requested(inner, f"{prefix}{key}.")
    return paths


def test_every_element_the_mapping_reads_is_in_the_default_fields_list() -> None:
    # The full PO has every element any branch of the mapping reads; reading an absent element
    # is recorded too, so an element the mapping learns shows up here without editing this test.
    full = copy.deepcopy(PO)
    full.update({"issued-at": "2024-03-01", "start-date": "2024-04-01", "end-date": "2025-03-31"})
    full["bill-to-address"] = dict(full["ship-to-address"], attention="AP")
    full["payment-term"] = {"code": "2/10 Net 45", "days-for-net-payment": 45,
                            "days-for-discount-payment": 10, "discount-rate": "2"}  # fmt: skip
    full["requester"] = {"login": "jdoe", "email": "j@example.com"}
    full["ship-to-attention"] = "AP"
    full["order-lines"][0].update(
        {"service-start-date": "2024-04-01", "service-end-date": "2025-03-31",
         "currency": {"code": "USD"}, "item": {"item-number": "PLAN-PRO", "name": "Pro", "description": "d"}}
    )  # fmt: skip
    seen: set[str] = set()
    mapped(wrap(full, "", seen))
    lines = {"order-lines." + p.split(".", 1)[1] for p in seen if p.startswith("order-lines.")}
    read = {p for p in seen if not p.startswith("order-lines.")} | lines
    assert "order-lines.service-start-date" in read  # the recorder sees line reads
    assert read - requested(PO_FIELDS) == set()


@pytest.mark.parametrize("field", ["version", "line-num"])
def test_a_number_beyond_the_integer_digit_limit_is_a_mapping_error_naming_the_field(field: str) -> None:
    data = copy.deepcopy(PO)
    huge = "9" * 5000
    if field == "version":
        data["version"] = huge
    else:
        data["order-lines"][0]["line-num"] = huge
    with pytest.raises(CoupaMappingError) as refused:
        mapped(data)
    assert refused.value.field.endswith(field) and "5000 digits" in refused.value.value
