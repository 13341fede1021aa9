"""The example adapter package installs, registers its entry point and passes its kit tests."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.kit.venvs import overlay_venv, pip_install_editable, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "adapters" / "po-connector-jsonproc"


@pytest.mark.slow
def test_installed_example_is_listed_and_passes_the_conformance_kit(tmp_path: Path) -> None:
    package = tmp_path / "po-connector-jsonproc"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    python = overlay_venv(tmp_path / "venv")

    pip_install_editable(python, package)

    listed = run(python, "-m", "connector", "--json", "adapters", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["jsonproc"]["kind"] == "source"
    assert rows["jsonproc"]["package"] == "po-connector-jsonproc"
    assert rows["jsonproc"]["error"] is None
    assert rows["jsonproc"]["capabilities"] == ["fetch-one", "incremental"]
    assert "coupa" in rows  # the built-ins are still there beside it

    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "15 passed" in tests.stdout


def test_the_running_environment_is_not_touched() -> None:
    assert "jsonproc" not in {ep.name for ep in entry_points(group="po_connector.adapters")}
