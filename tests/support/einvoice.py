"""The EN 16931 and Peppol rules for tests: the fixtures' rules directory and `assert_passes_rules`."""

from __future__ import annotations

from pathlib import Path

from adapters.einvoice_rules import EinvoiceRules, RuleFailure
from tests.support.shared import SHARED_FIXTURES, require_service

RULES_DIR = SHARED_FIXTURES / "en16931"


def rules_dir() -> Path:
    """The folder with both compiled rule sets; skips outside CI (fails under CI=true) when absent."""
    present = (RULES_DIR / "EN16931-UBL-validation.xslt").is_file() and (
        RULES_DIR / "PEPPOL-EN16931-UBL.xslt"
    ).is_file()
    require_service(
        present,
        f"the EN 16931 / Peppol rules are not in {RULES_DIR} "
        "(../shared/fixtures/en16931 next to the repository, or PO_CONNECTOR_SHARED_FIXTURES)",
    )
    return RULES_DIR


def rules() -> EinvoiceRules:
    """Both rule sets, compiled once per test process."""
    return EinvoiceRules.load(rules_dir())


def rule_failures(xml: bytes) -> list[RuleFailure]:
    """Every failed assert, fatal and warning, of both rule sets."""
    return rules().check(xml)


def assert_passes_rules(xml: bytes) -> list[RuleFailure]:
    """Fail listing the fatal rule failures of `xml`; return its warnings."""
    failures = rule_failures(xml)
    fatal = [failure for failure in failures if failure.fatal]
    assert not fatal, "the document breaks the EN 16931 / Peppol rules:\n" + "\n".join(
        f"  {failure} at {failure.location}" for failure in fatal
    )
    return [failure for failure in failures if not failure.fatal]
