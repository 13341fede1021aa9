"""Start-up cost of the command line against a bare interpreter, measured in one run.

    python benchmarks/startup.py [--runs N]

Times `po-connector --help`, `--version`, `sync --help` and `status` on a copy of the bundled
example (best of N runs each, wall clock, a fresh process every time) and `python -c pass` with
the same interpreter, and prints each as milliseconds over the bare interpreter. The goal is
150 ms over bare for `--help`, `--version` and `status`: the verbs import SQLAlchemy, Alembic,
pydantic and the adapters only when they run, not to print help.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.cli import copy_example  # noqa: E402


def best_of(command: list[str], runs: int, cwd: Path) -> float:
    """The fastest of `runs` wall-clock timings of `command`, in seconds."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=False)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = copy_example(Path(folder))
        cli = [sys.executable, "-m", "connector"]
        subprocess.run([*cli, "sync", "--config", str(config), "-q"], cwd=REPO, check=True)
        bare = best_of([sys.executable, "-c", "pass"], args.runs, REPO)
        print(f"bare interpreter: {bare * 1000:.0f} ms")
        for label, extra in (
            ("--help", ["--help"]),
            ("--version", ["--version"]),
            ("sync --help", ["sync", "--help"]),
            ("status", ["status", "--config", str(config)]),
        ):
            took = best_of([*cli, *extra], args.runs, REPO)
            over = (took - bare) * 1000
            print(f"{label:<12} {took * 1000:6.0f} ms  ({over:+.0f} ms over bare, {took / bare:.1f}x)")


if __name__ == "__main__":
    main()
