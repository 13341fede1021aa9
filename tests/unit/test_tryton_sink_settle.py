"""The Tryton sink after a create whose answer was lost: it waits for the invoice, never re-creates."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.tryton_sink import TrytonSink, TrytonSinkConfig
from connector.errors import UncertainError
from connector.ports import AdapterContext
from tests.support.factories import make_plan


class SlowCommitRpc:
    """A Tryton whose `create` times out and whose transaction shows up `lag` lookups later."""

    user_id = 1

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.creates = 0
        self.searches_after_create = 0
        self.rows: list[dict[str, Any]] = []

    def model(self, model: str, method: str, *args: Any, write: bool = False) -> Any:
        if method == "create" and model == "account.invoice":
            self.creates += 1
            raise UncertainError("read timeout during create")
        if method == "read":
            return [dict(self.rows[0])]
        if method == "post":
            self.rows[0]["state"] = "posted"
            return None
        raise AssertionError(f"unexpected call {model}.{method}")

    def search_read(
        self, model: str, domain: Any, fields: Any, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        if model != "account.invoice":
            return [{"id": 7, "code": "CUST-ACME", "name": "Acme", "currency.": {"code": "USD"}}]
        if self.creates:
            self.searches_after_create += 1
            if self.searches_after_create > self.lag and not self.rows:
                plan = make_plan()
                self.rows.append(
                    {
                        "id": 42,
                        "description": f"{plan.invoice_number} PO {plan.po_number}",
                        "reference": plan.po_number,
                        "state": "draft",
                        "total_amount": plan.total.amount,
                        "currency.": {"code": "USD"},
                        "party.": {"code": plan.customer_ref},
                    }
                )
        return [dict(row) for row in self.rows]


def sink(rpc: SlowCommitRpc, settle: float) -> TrytonSink:
    config = TrytonSinkConfig(
        name="books",
        url="http://127.0.0.1:1",
        database="db",
        user="admin",
        password_env="X",
        settle_seconds=settle,
        settle_poll_seconds=0.01,
    )
    return TrytonSink(config, AdapterContext(), rpc=rpc, sleep=lambda seconds: None)  # type: ignore[arg-type]


def test_a_late_commit_is_found_and_finished_not_created_again(monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = SlowCommitRpc(lag=3)
    monkeypatch.setattr(TrytonSink, "_invoice_values", lambda self, plan: {})
    ref = sink(rpc, settle=5).push(make_plan())
    assert rpc.creates == 1 and ref.remote_id == "42"


def test_no_commit_within_the_settle_time_stays_uncertain(monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = SlowCommitRpc(lag=10**9)
    monkeypatch.setattr(TrytonSink, "_invoice_values", lambda self, plan: {})
    with pytest.raises(UncertainError, match="did not appear"):
        sink(rpc, settle=0.05).push(make_plan())
    assert rpc.creates == 1
