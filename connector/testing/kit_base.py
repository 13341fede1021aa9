"""What the source and sink conformance kits share: running a named check, and the port checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from connector.testing.runner import run_in_pytest


class ConformanceKit:
    """Base of `SourceKit` and `SinkKit`: the subclass sets `checks`, the adapter's test `fixture`."""

    fixture: ClassVar[Any]
    checks: ClassVar[Mapping[str, Callable[[Any, Path], None]]]

    def _check(self, name: str, path: Path) -> None:
        __tracebackhide__ = True
        run_in_pytest(self.checks[name], self.fixture, name, path)

    def test_declares_its_port(self, tmp_path: Path) -> None:
        """The class says which port it implements, what it can do and how it is configured."""
        self._check("declares_its_port", tmp_path)

    def test_built_adapter_implements_the_port(self, tmp_path: Path) -> None:
        """The built adapter has a name and the methods of its port (and of what it declares)."""
        self._check("built_adapter_implements_the_port", tmp_path)

    def test_registered_under_its_entry_point(self, tmp_path: Path) -> None:
        """`po-connector adapters list` finds the adapter under its name, loaded and of its kind."""
        self._check("registered_under_its_entry_point", tmp_path)
