"""The conformance kit applied to the ubl-files sink, on a real directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.ubl_files import UblFilesConfig, UblFilesSink, invoice_file_name
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from connector.testing import Rig, SinkFixture, SinkKit, not_applicable, sample_plan


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Path]:
    directory = rig.path / "invoices"
    yield directory


def build(rig: Rig[Path]) -> UblFilesSink:
    config = UblFilesConfig(name="files", type="ubl-files", directory=rig.env, supplier_name="Vendor Ltd")
    return UblFilesSink(config, AdapterContext(tenant=rig.tenant, base_dir=rig.path))


def count(rig: Rig[Path], plan: InvoicePlan) -> int:
    return sum(1 for p in rig.env.glob("*.xml") if p.name == invoice_file_name(plan.invoice_number))


def rejected_plan(rig: Rig[Path]) -> InvoicePlan:
    return sample_plan(99, sink="files").model_copy(update={"invoice_number": ""})


class TestUblFilesConformance(SinkKit):
    fixture = SinkFixture(
        adapter=UblFilesSink,
        entry_point="ubl-files",
        start=start,
        build=build,
        plan=lambda rig, n: sample_plan(n, sink="files"),
        count=count,
        rejected_plan=rejected_plan,
        rejection_text="empty invoice number",
        inject=not_applicable("a directory has no network answer to lose"),
        bad_credentials=not_applicable("a local directory has no credentials"),
        secrets=not_applicable("a local directory sink holds no secret"),
    )
