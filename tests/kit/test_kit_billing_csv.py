"""The conformance kit applied to the csv billing source, on an export file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.billing_csv import CsvBillingConfig, CsvBillingSource
from connector.ports import AdapterContext
from connector.testing import Rig, SourceFixture, SourceKit, not_applicable

HEADER = "customer_ref,subscription_id,period_start,period_end,sku,quantity,unit_price,currency,po_number\n"


@dataclass
class Export:
    """The billing export file and how many subscriptions it bills."""

    path: Path
    rows: int = 0

    def add(self, row: str) -> None:
        self.rows += 1
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(row)


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Export]:
    path = rig.path / "billing.csv"
    path.write_text(HEADER, encoding="utf-8")
    yield Export(path)


def build(rig: Rig[Export]) -> CsvBillingSource:
    config = CsvBillingConfig(name="billing", type="csv", path=rig.env.path)
    return CsvBillingSource(config, AdapterContext(tenant=rig.tenant, base_dir=rig.path))


def seed(rig: Rig[Export], count: int) -> None:
    for _ in range(count):
        n = rig.env.rows + 1
        rig.env.add(f"CUST-1,SUB-{n},2026-01-01,2026-01-31,PLAN-PRO,3,19.99,USD,PO-{n}\n")


def malformed(rig: Rig[Export]) -> None:
    n = rig.env.rows + 1
    rig.env.add(f"CUST-1,SUB-{n},2026-01-01,2026-01-31,PLAN-PRO,three,19.99,USD,PO-{n}\n")


class TestCsvBillingConformance(SourceKit):
    fixture = SourceFixture(
        adapter=CsvBillingSource,
        entry_point="csv",
        start=start,
        build=build,
        seed=seed,
        seed_count=12,
        min_batches=1,  # the whole export is one batch by design
        malformed=malformed,
        bad_credentials=not_applicable("a local export file has no credentials"),
        inject=not_applicable("a local file has no network requests to fail"),
        secrets=not_applicable("a local export file holds no secret"),
    )
