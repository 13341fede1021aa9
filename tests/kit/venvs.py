"""A throw-away virtual environment layered on the running one, to pip-install packages into.

The new environment sees every package of the running one (through a .pth file that adds its
site-packages), so installing an adapter package there registers its entry point without
touching the running environment.
"""

from __future__ import annotations

import subprocess
import sysconfig
import venv
from pathlib import Path

from tests.support.shared import require_service


def overlay_venv(where: Path) -> Path:
    """Create a venv at `where` that also sees the running environment; return its python."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    # An `import` line in a .pth runs at start-up; addsitedir also runs the parent's .pth files
    # (the editable install of po-connector among them).
    Path(purelib, "_parent_environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def pip_install_editable(python: Path, package: Path) -> None:
    """`pip install --no-deps -e package` into the venv of `python`; skips when no index is reachable."""
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-e", str(package)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    offline = (
        "Could not find a version that satisfies" in result.stderr or "NewConnectionError" in result.stderr
    )
    require_service(not offline, f"pip cannot fetch the build backend (setuptools): {result.stderr[-300:]}")
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python args...` in `cwd`, capturing its output."""
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
