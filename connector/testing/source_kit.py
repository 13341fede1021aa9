"""`SourceKit`: the standard pytest tests every PO source and billing source must pass.

    from connector.testing import SourceFixture, SourceKit

    class TestAcme(SourceKit):
        fixture = SourceFixture(adapter=AcmeSource, entry_point="acme", start=..., build=..., seed=...)

or `TestAcme = source_conformance(SourceFixture(...))`. Tests that do not apply to the adapter's
capabilities, or whose fixture piece is `not_applicable(...)`, are skipped with the reason; a
test whose fixture piece is missing fails and says what to provide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from connector.testing.fixtures import SourceFixture
from connector.testing.kit_base import ConformanceKit
from connector.testing.source_checks import SOURCE_CHECKS


class SourceKit(ConformanceKit):
    """Base of a source's conformance test class; set `fixture` in the subclass."""

    fixture: ClassVar[SourceFixture[Any]]
    checks = SOURCE_CHECKS

    def test_pull_ends_and_yields_every_record(self, tmp_path: Path) -> None:
        """Paging terminates and every seeded record arrives once, with no rejection."""
        self._check("pull_ends_and_yields_every_record", tmp_path)

    def test_cursor_only_moves_forward(self, tmp_path: Path) -> None:
        """Within a run and across runs, no batch cursor is behind the one before it."""
        self._check("cursor_only_moves_forward", tmp_path)

    def test_second_run_from_the_final_cursor_yields_nothing_new(self, tmp_path: Path) -> None:
        """A run from where the last one ended brings no record that is new or changed."""
        self._check("second_run_from_the_final_cursor_yields_nothing_new", tmp_path)

    def test_next_run_picks_up_records_added_since(self, tmp_path: Path) -> None:
        """Records added after a run arrive with the next run from its state."""
        self._check("next_run_picks_up_records_added_since", tmp_path)

    def test_interrupted_run_resumes_without_loss(self, tmp_path: Path) -> None:
        """A run stopped after its first committed batch, resumed, ends where an unbroken run does."""
        self._check("interrupted_run_resumes_without_loss", tmp_path)

    def test_records_are_valid_canonical_models(self, tmp_path: Path) -> None:
        """Every record revalidates as its canonical model and carries the adapter's name and tenant."""
        self._check("records_are_valid_canonical_models", tmp_path)

    def test_malformed_record_is_reported_and_the_run_goes_on(self, tmp_path: Path) -> None:
        """A bad record becomes an InputProblem naming where it is and why; the good ones arrive."""
        self._check("malformed_record_is_reported_and_the_run_goes_on", tmp_path)

    def test_refused_credentials_are_an_authentication_error(self, tmp_path: Path) -> None:
        """Credentials the remote refuses stop the pull with AuthenticationError (a config error)."""
        self._check("refused_credentials_are_an_authentication_error", tmp_path)

    def test_rate_limit_with_retry_after_is_retried(self, tmp_path: Path) -> None:
        """429 with Retry-After is waited out and the pull completes."""
        self._check("rate_limit_with_retry_after_is_retried", tmp_path)

    def test_persistent_server_error_is_retried_then_fails_retryable(self, tmp_path: Path) -> None:
        """A 5xx on every read is retried, then the pull fails with RetryableError."""
        self._check("persistent_server_error_is_retried_then_fails_retryable", tmp_path)

    def test_secrets_never_appear_in_logs_errors_or_payloads(self, tmp_path: Path) -> None:
        """No secret value reaches a log record, an exception text or a stored raw payload."""
        self._check("secrets_never_appear_in_logs_errors_or_payloads", tmp_path)

    def test_fetch_returns_the_po_with_that_number(self, tmp_path: Path) -> None:
        """fetch(po_number) returns that PO (resync) and nothing for an unknown number."""
        self._check("fetch_returns_the_po_with_that_number", tmp_path)


def source_conformance(fixture: SourceFixture[Any], name: str | None = None) -> type[SourceKit]:
    """A SourceKit test class for `fixture`; assign it to a module-level name starting with Test."""
    title = name or f"Test{fixture.adapter.__name__}Conformance"
    return type(
        title, (SourceKit,), {"fixture": fixture, "__doc__": f"Conformance of {fixture.adapter.__name__}."}
    )
