"""`SinkKit`: the standard pytest tests every invoice sink must pass.

    from connector.testing import SinkFixture, SinkKit

    class TestAcme(SinkKit):
        fixture = SinkFixture(adapter=AcmeSink, entry_point="acme", start=..., build=..., count=...)

or `TestAcme = sink_conformance(SinkFixture(...))`. Skips and failures follow `SourceKit`'s rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from connector.testing.fixtures import SinkFixture
from connector.testing.kit_base import ConformanceKit
from connector.testing.sink_checks import SINK_CHECKS


class SinkKit(ConformanceKit):
    """Base of a sink's conformance test class; set `fixture` in the subclass."""

    fixture: ClassVar[SinkFixture[Any]]
    checks = SINK_CHECKS

    def test_find_reports_nothing_for_a_plan_never_pushed(self, tmp_path: Path) -> None:
        """A lookup finds no invoice for plans that were never delivered."""
        self._check("find_reports_nothing_for_a_plan_never_pushed", tmp_path)

    def test_same_plan_twice_yields_one_invoice(self, tmp_path: Path) -> None:
        """Delivering a plan twice, the second time from a new sink instance, creates one invoice."""
        self._check("same_plan_twice_yields_one_invoice", tmp_path)

    def test_credit_note_of_a_pushed_invoice_is_created_once(self, tmp_path: Path) -> None:
        """A credit note delivered twice is one credit with the invoice's total; lookup finds both."""
        self._check("credit_note_of_a_pushed_invoice_is_created_once", tmp_path)

    def test_uncertain_outcome_is_resolved_by_lookup(self, tmp_path: Path) -> None:
        """A create whose answer is lost raises UncertainError; lookup-then-push ends with one invoice."""
        self._check("uncertain_outcome_is_resolved_by_lookup", tmp_path)

    def test_rate_limited_create_is_retried(self, tmp_path: Path) -> None:
        """429 with Retry-After on a create is waited out and the invoice is created once."""
        self._check("rate_limited_create_is_retried", tmp_path)

    def test_rejected_plan_is_a_rejected_error_with_the_providers_message(self, tmp_path: Path) -> None:
        """A plan the remote refuses raises RejectedError carrying the provider's message."""
        self._check("rejected_plan_is_a_rejected_error_with_the_providers_message", tmp_path)

    def test_batch_partial_failure_retries_only_the_failed_items(self, tmp_path: Path) -> None:
        """One failed item fails alone; sending the failed items again creates no duplicate."""
        self._check("batch_partial_failure_retries_only_the_failed_items", tmp_path)

    def test_refused_credentials_are_an_authentication_error(self, tmp_path: Path) -> None:
        """Credentials the remote refuses raise AuthenticationError and create nothing."""
        self._check("refused_credentials_are_an_authentication_error", tmp_path)

    def test_secrets_never_appear_in_logs_or_errors(self, tmp_path: Path) -> None:
        """No secret value reaches a log record or an exception text, on success or failure."""
        self._check("secrets_never_appear_in_logs_or_errors", tmp_path)


def sink_conformance(fixture: SinkFixture[Any], name: str | None = None) -> type[SinkKit]:
    """A SinkKit test class for `fixture`; assign it to a module-level name starting with Test."""
    title = name or f"Test{fixture.adapter.__name__}Conformance"
    return type(
        title, (SinkKit,), {"fixture": fixture, "__doc__": f"Conformance of {fixture.adapter.__name__}."}
    )
