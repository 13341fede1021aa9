"""The conformance kit applied to the ubl-files sink, on a real directory, validating what it writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.ubl_files import UblFilesConfig, UblFilesSink, invoice_file_name
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from connector.tax import LineTax, TaxCategory, TaxScheme
from connector.testing import Rig, SinkFixture, SinkKit, not_applicable, sample_plan
from tests.support.einvoice import RULES_DIR
from tests.support.factories import make_buyer, make_seller

NEW_YORK = LineTax(
    scheme=TaxScheme.SALES_TAX, category=TaxCategory.STANDARD, rate=Decimal("8.875"), jurisdiction="US-NY"
)


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Path]:
    directory = rig.path / "invoices"
    yield directory


def build(rig: Rig[Path]) -> UblFilesSink:
    rules = RULES_DIR if (RULES_DIR / "PEPPOL-EN16931-UBL.xslt").is_file() else None
    config = UblFilesConfig(name="files", type="ubl-files", directory=rig.env, rules_dir=rules)
    context = AdapterContext(tenant=rig.tenant, base_dir=rig.path, supplier=make_seller("US"))
    return UblFilesSink(config, context)


def taxed_plan(n: int) -> InvoicePlan:
    """The kit's sample plan with New York sales tax on its lines and a US buyer."""
    plan = sample_plan(n, sink="files")
    lines = tuple(line.model_copy(update={"tax": NEW_YORK}) for line in plan.lines)
    return InvoicePlan.model_validate({**plan.model_dump(), "lines": lines, "buyer": make_buyer("US")})


def count(rig: Rig[Path], plan: InvoicePlan) -> int:
    return sum(1 for p in rig.env.glob("*.xml") if p.name == invoice_file_name(plan.invoice_number))


def rejected_plan(rig: Rig[Path]) -> InvoicePlan:
    return taxed_plan(99).model_copy(update={"invoice_number": ""})


class TestUblFilesConformance(SinkKit):
    fixture = SinkFixture(
        adapter=UblFilesSink,
        entry_point="ubl-files",
        start=start,
        build=build,
        plan=lambda rig, n: taxed_plan(n),
        count=count,
        rejected_plan=rejected_plan,
        rejection_text="empty invoice number",
        inject=not_applicable("a directory has no network answer to lose"),
        bad_credentials=not_applicable("a local directory has no credentials"),
        secrets=not_applicable("a local directory sink holds no secret"),
    )
