"""The installed product's version, for state that must be recomputed after an upgrade."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version


@cache
def product_version() -> str:
    """po-connector's version as installed ("unknown" when run from a bare source tree)."""
    try:
        return _installed_version("po-connector")
    except PackageNotFoundError:
        return "unknown"
