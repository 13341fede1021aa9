"""Runs one check inside pytest: skips, missing pieces and known deviations become test outcomes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.testing.fixtures import MissingFixture, SinkFixture, SkipCheck, SourceFixture

Fixture = SourceFixture[Any] | SinkFixture[Any]


def run_in_pytest(check: Callable[[Any, Path], None], fixture: Fixture, name: str, path: Path) -> None:
    """Run `check`; a known deviation must fail (xfail) and fails the test once it passes."""
    __tracebackhide__ = True
    deviation = fixture.known_deviations.get(name)
    missing: MissingFixture | None = None
    try:
        check(fixture, path)
    except SkipCheck as skip:
        pytest.skip(skip.reason)
    except MissingFixture as exc:
        missing = exc
    except Exception as exc:
        if deviation is None:
            raise
        pytest.xfail(f"known deviation: {deviation} [{type(exc).__name__}: {exc}]")
    if missing is not None:
        # Raised afresh, outside the handler, so the report is the one line saying what to provide.
        raise MissingFixture(str(missing)) from None
    if deviation is not None:
        pytest.fail(
            f"{name} now passes for {fixture.adapter.__name__}: remove it from known_deviations "
            f"({deviation})",
            pytrace=False,
        )
