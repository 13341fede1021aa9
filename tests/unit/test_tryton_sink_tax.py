"""The Tryton sink's tax settings and decisions that need no server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.tryton_sink import TrytonSink, TrytonSinkConfig
from adapters.tryton_tax import implied_percent
from connector.errors import RejectedError
from connector.ports import AdapterContext
from tests.support.factories import make_priced_plan, vat_tax


class NoCalls:
    """A Tryton that must not be asked anything."""

    user_id = 1
    calls = 0

    def model(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected call {args[:2]}")

    def search_read(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected search {args[:1]}")


class Books:
    """A Tryton holding one draft invoice whose computed tax is `computed`."""

    user_id = 1

    def __init__(self, computed: str) -> None:
        self.context = {"company": 1}
        self.computed = Decimal(computed)
        self.writes: list[Any] = []

    def search_read(self, model: str, domain: Any, fields: Any, *, limit: int | None = None) -> Any:
        if model == "account.tax":
            return [{"id": 2, "name": "VAT 20%", "type": "percentage", "rate": Decimal("0.2"), "childs": []}]
        assert model == "account.invoice.tax"
        return [{"id": 9, "tax": 2, "base": Decimal("100.00"), "amount": self.computed}]

    def model(self, model: str, method: str, *args: Any, write: bool = False) -> Any:
        self.writes.append((model, method, args))


def config(**taxes: str) -> TrytonSinkConfig:
    return TrytonSinkConfig(
        name="books", url="http://127.0.0.1:1", database="db", password_env="X", taxes=taxes
    )


def sink(rpc: Any, **taxes: str) -> TrytonSink:
    return TrytonSink(config(**taxes), AdapterContext(), rpc=rpc)


def test_a_key_that_is_no_treatment_is_a_config_error_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"taxes\['X:19'\] = 'VAT 19%'"):
        config(**{"X:19": "VAT 19%"})
    with pytest.raises(ValidationError, match="name a Tryton sale tax"):
        config(S=" ")


@pytest.mark.parametrize(
    ("key", "percent"),
    [("S:19", "19"), ("S:8.875", "8.875"), ("AE", "0"), ("E", "0"), ("SALES_TAX:E", "0")],
)
def test_the_rate_a_key_states(key: str, percent: str) -> None:
    assert implied_percent(key) == Decimal(percent)


@pytest.mark.parametrize("key", ["S", "L", "SALES_TAX", "SALES_TAX:US-NY"])
def test_keys_that_fit_any_rate(key: str) -> None:
    assert implied_percent(key) is None


def test_an_unmapped_treatment_is_refused_without_a_call() -> None:
    plan = make_priced_plan(lines=(("100.00", vat_tax("20")), ("50.00", vat_tax("0", "Z"))))
    with pytest.raises(RejectedError, match="line 2: tax_code_unmapped") as refused:
        sink(NoCalls(), **{"S:20": "VAT 20%"}).push(plan)
    assert refused.value.provider_code == "tax_code_unmapped"


def test_a_rounding_difference_gives_the_computed_tax_line_the_plans_amount() -> None:
    books = Books("20.01")
    sink(books, **{"S:20": "VAT 20%"}).taxes.hold_plan_tax(5, make_priced_plan())
    assert books.writes == [("account.invoice.tax", "write", ([9], {"amount": Decimal("20.00")}))]


def test_no_difference_writes_nothing() -> None:
    books = Books("20.00")
    sink(books, **{"S:20": "VAT 20%"}).taxes.hold_plan_tax(5, make_priced_plan())
    assert books.writes == []


def test_a_difference_beyond_rounding_is_refused_as_tax_differs() -> None:
    books = Books("19.00")
    with pytest.raises(RejectedError, match="tax_differs") as refused:
        sink(books, **{"S:20": "VAT 20%"}).taxes.hold_plan_tax(5, make_priced_plan())
    assert refused.value.provider_code == "tax_differs" and books.writes == []
