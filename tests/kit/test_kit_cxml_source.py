"""The conformance kit applied to the cxml PO source, on a folder of OrderRequest documents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.cxml_source import CxmlSource, CxmlSourceConfig
from connector.ports import AdapterContext
from connector.testing import Rig, SourceFixture, SourceKit, not_applicable

TEMPLATE = (Path(__file__).resolve().parents[1] / "data" / "cxml" / "order-new.xml").read_text("utf-8")
SHARED_SECRET = "s3cret-for-tests"  # the buyer's secret inside every template document


@dataclass
class Drop:
    """The folder documents are dropped into, and how many were dropped."""

    folder: Path
    dropped: int = 0

    def drop(self, text: str) -> None:
        self.dropped += 1
        path = self.folder / f"order-{self.dropped:04d}.xml"
        path.write_text(text, encoding="utf-8")
        moment = 1_700_000_000 + self.dropped
        os.utime(path, (moment, moment))


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Drop]:
    folder = rig.path / "orders"
    folder.mkdir()
    yield Drop(folder)


def build(rig: Rig[Drop]) -> CxmlSource:
    config = CxmlSourceConfig(name="buyer-cxml", type="cxml", folder=rig.env.folder)
    return CxmlSource(config, AdapterContext(tenant=rig.tenant, base_dir=rig.path))


def seed(rig: Rig[Drop], count: int) -> None:
    for _ in range(count):
        n = rig.env.dropped + 1
        rig.env.drop(
            TEMPLATE.replace("20240105.1001.new@buyer.example", f"kit.{n}@buyer.example").replace(
                'orderID="PO-7001"', f'orderID="KIT-{n}"'
            )
        )


def malformed(rig: Rig[Drop]) -> None:
    rig.env.drop(TEMPLATE[: len(TEMPLATE) // 2])  # cut off mid-document


class TestCxmlSourceConformance(SourceKit):
    fixture = SourceFixture(
        adapter=CxmlSource,
        entry_point="cxml",
        start=start,
        build=build,
        seed=seed,
        seed_count=5,
        malformed=malformed,
        bad_credentials=not_applicable("documents are authenticated by the receiver, not by this source"),
        inject=not_applicable("a folder has no network requests to fail"),
        secrets=lambda rig: [SHARED_SECRET],
    )
