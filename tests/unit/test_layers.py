"""The layering of the code, checked: import-linter contracts in pyproject.toml, and no import circle."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "state", "adapters", "mappings")


@contextmanager
def loggers_kept() -> Iterator[None]:
    """import-linter's CLI configures logging with dictConfig, which disables every logger that
    exists; later tests asserting on our log records would see nothing."""
    loggers = [logging.getLogger(name) for name in logging.root.manager.loggerDict]
    disabled = {logger.name: logger.disabled for logger in loggers}
    try:
        yield
    finally:
        for logger in loggers:
            logger.disabled = disabled[logger.name]


def test_import_contracts_are_kept() -> None:
    """Core -> no adapters or mappings; state -> model and errors only; adapters -> no state."""
    with loggers_kept():
        exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert exit_code == 0, "an import-linter contract is broken: run `lint-imports` for the chain"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circle_between_product_modules() -> None:
    """Imports inside functions count too: a deferred import is a circle all the same."""
    assert _cycles(grimp.build_graph(*PACKAGES)) == []


def test_the_circle_finder_sees_a_circle() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_command_line_loads_no_database_or_model_library_to_print_help() -> None:
    import subprocess
    import sys

    heavy = "{'sqlalchemy', 'alembic', 'pydantic', 'adapters', 'rich', 'celery', 'kombu'}"
    probe = f"import sys, connector.cli; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded


def test_reading_the_state_of_a_migrated_database_loads_no_migration_library(tmp_path: Path) -> None:
    import subprocess
    import sys

    from state.db import open_state

    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).dispose()  # migrated here; the probe only reads
    probe = (
        "import sys; from state.db import make_engine, current_revision, head_revision; "
        f"engine = make_engine({url!r}); assert current_revision(engine) == head_revision(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
