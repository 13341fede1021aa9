"""Renewal requests planned a batch of customers at a time end as those planned all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector import jobs, renewals
from connector.config import load_config
from connector.runtime import Connector
from state import messages
from tests.support.cli import copy_example


def requests_after_a_sync(folder: Path) -> list[tuple[Any, ...]]:
    app = Connector(load_config(copy_example(folder)))
    assert jobs.sync(app)["exit_code"] == 0
    with app.connect() as conn:
        rows = messages.list_messages(conn, app.tenant, kind=renewals.KIND)
    return sorted((row["dedupe_key"], row["recipient"], row["state"], row["subject"]) for row in rows)


def test_requests_planned_a_customer_at_a_time_are_those_planned_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PO_CONNECTOR__RECONCILE__AS_OF", "2026-12-07")
    monkeypatch.setenv("PO_CONNECTOR__MAIL__ACKNOWLEDGEMENTS", "false")
    whole = requests_after_a_sync(tmp_path / "whole")
    batches: list[set[str]] = []
    plan_for = renewals._plan_for

    def counted(*args: Any) -> set[str]:
        batches.append(set(args[4]))
        return plan_for(*args)

    monkeypatch.setattr(renewals, "_plan_for", counted)
    monkeypatch.setattr(renewals, "CUSTOMERS_PER_BATCH", 1)
    one_by_one = requests_after_a_sync(tmp_path / "one-by-one")
    # Acme (term ending), Globex (PO used up), Initech (a period without a PO, no AP address):
    # only the customers whose results ask for a request are read, one per batch.
    assert batches == [{"CUST-ACME"}, {"CUST-GLOBEX"}, {"CUST-INITECH"}]
    assert len(whole) == 3 and one_by_one == whole
