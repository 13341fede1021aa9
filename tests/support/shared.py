"""Access to third-party fixtures in ../shared/fixtures, read in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_FIXTURES = Path(
    os.environ.get(
        "PO_CONNECTOR_SHARED_FIXTURES", Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
    )
)


def in_ci() -> bool:
    """True when running under CI, where a missing service or fixture is a failure."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(available: bool, reason: str) -> None:
    """Skip outside CI when a needed service or fixture is missing; fail under CI=true."""
    if available:
        return
    if in_ci():
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def shared_fixture(relative: str) -> Path:
    """Path of a file under shared/fixtures; skips (or fails under CI) when it is absent."""
    path = SHARED_FIXTURES / relative
    require_service(path.exists(), f"shared fixture {path} is not present")
    return path
