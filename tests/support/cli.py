"""Run the po-connector CLI as a user does: a separate process on a copy of the example."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Invoices the bundled example writes as it ships: Acme October and November, Globex annual and
# SSO, Wayne October and November on its blanket PO, and Hooli (no PO needed).
EXAMPLE_INVOICES = 7


@dataclass
class Result:
    """What a CLI process left behind."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def copy_example(target: Path) -> Path:
    """A private copy of the bundled example (config, inbox, billing, maps); returns the config."""
    shutil.copytree(REPO / "examples", target / "examples")
    # The e-invoice rules are read in place, beside the repository: point the copy at them.
    rules = (REPO / "../shared/fixtures/en16931").resolve()
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('rules_dir = "../shared/fixtures/en16931"', f"rules_dir = {json.dumps(str(rules))}")
    (target / "config.toml").write_text(text, encoding="utf-8")
    return target / "config.toml"


def untax_example(config: Path) -> None:
    """Turn a copied example into its pre-tax form: no tax columns, no UK case, tax not required,
    and every customer needing a PO (a PO-less invoice is refused by a cXML buyer).

    For the exactly-once protocol tests of sinks whose tax mapping is tested in their own sandbox
    tests: they check counts and duplicates, not tax, and need no tax code configuration.
    """
    examples = config.parent / "examples"
    billing = examples / "billing.csv"
    kept = []
    for line in billing.read_text(encoding="utf-8").splitlines():
        if "CUST-WAYNE" in line:
            continue
        kept.append(",".join(line.split(",")[:12]))
    billing.write_text("\n".join(kept) + "\n", encoding="utf-8")
    (examples / "inbox" / "wayne-po.eml").unlink(missing_ok=True)
    customers = examples / "customers.toml"
    lines = customers.read_text(encoding="utf-8").splitlines()
    master = [line for line in lines if not line.startswith(("tax =", "po_required ="))]
    customers.write_text("\n".join(master) + "\n", encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace("required = true", "required = false")
    config.write_text(text, encoding="utf-8")


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> Result:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PO_CONNECTOR")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
