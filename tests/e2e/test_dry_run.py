"""`sync --dry-run` and `reconcile --dry-run`: see what would be invoiced and held; nothing stays.

Over the real CLI on the example, with the state on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from state.tables import invoice_outbox, po_records, processed_inputs, runs
from tests.support.cli import EXAMPLE_INVOICES, copy_example, run_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    config = copy_example(tmp_path)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'out' / 'po-connector.db'}"
        return config, {}, url
    url = request.getfixturevalue("postgres_url")
    return config, {"PO_CONNECTOR__STATE__URL": url}, url


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (po_records, invoice_outbox, processed_inputs, runs)
            }
    finally:
        engine.dispose()


def invoices(config: Path) -> list[Path]:
    return sorted((config.parent / "out" / "invoices").glob("*.xml"))


def test_a_dry_run_shows_what_would_be_invoiced_and_held_and_keeps_nothing(
    setup: tuple[Path, dict[str, str], str],
) -> None:
    config, env, url = setup
    preview = run_cli("sync", "--dry-run", "--config", str(config), "--json", env=env)
    assert preview.code == 0, preview.stderr
    data = preview.json()
    assert data["dry_run"] is True and data["invoices_pushed"] == 0
    planned = {(i["customer_ref"], i["po_number"]): i for i in data["would_invoice"]}
    assert len(data["would_invoice"]) == EXAMPLE_INVOICES
    nov = {(i["customer_ref"], i["po_number"], i["period_start"]): i for i in data["would_invoice"]}
    wayne = nov[("CUST-WAYNE", "WE-PO-0077", "2026-11-01")]
    assert (wayne["net"], wayne["tax"], wayne["gross"], wayne["currency"]) == (
        "1700.00",
        "160.00",
        "1860.00",
        "GBP",
    )
    assert wayne["sink"] == "files" and wayne["period_start"] == "2026-11-01"
    held = {(h["status"], h["customer_ref"]) for h in data["would_hold"]}
    assert ("mismatch", "CUST-UMBRELLA") in held and ("missing_po", "CUST-INITECH") in held
    hooli = planned[("CUST-HOOLI", "")]  # po_required = false: invoiced without a PO
    assert (hooli["net"], hooli["tax"], hooli["gross"]) == ("200.00", "14.50", "214.50")
    assert invoices(config) == []
    assert counts(url) == {"po_records": 0, "invoice_outbox": 0, "processed_inputs": 0, "runs": 0}
    # Nothing was consumed: the real run finds and invoices the same.
    real = run_cli("sync", "--config", str(config), "--json", env=env).json()
    assert real["invoices_pushed"] == EXAMPLE_INVOICES and len(invoices(config)) == EXAMPLE_INVOICES


def test_a_dry_run_after_the_real_one_would_invoice_nothing(setup: tuple[Path, dict[str, str], str]) -> None:
    config, env, url = setup
    assert run_cli("sync", "--config", str(config), "-q", env=env).code == 0
    before = counts(url)
    text = run_cli("sync", "--dry-run", "--config", str(config), env=env)
    assert text.code == 0
    assert "nothing was committed and nothing was sent" in text.stdout
    assert "would invoice: nothing" in text.stdout and "would hold: 3" in text.stdout
    assert counts(url) == before
    again = run_cli("reconcile", "--dry-run", "--config", str(config), "--json", env=env).json()
    assert again["would_invoice"] == [] and len(again["would_hold"]) == 3
    assert counts(url) == before


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block_after(marker: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("```text", text.index(marker)) + len("```text\n")
    return text[start : text.index("```", start)].rstrip("\n").splitlines()


def test_the_readme_shows_the_example_dry_run_as_it_prints(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    shown = run_cli("sync", "--dry-run", "--config", str(config), "-q")
    assert shown.code == 0
    # -q keeps a dry run's preview: it is the result asked for, not a summary
    assert shown.stdout.rstrip("\n").splitlines() == _readme_block_after("`sync --dry-run` shows the same")


def test_the_readme_lists_the_sync_json_keys_as_printed(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    keys = list(run_cli("sync", "--config", str(config), "--json").json())
    text = " ".join(README.read_text(encoding="utf-8").split())
    listed = text[text.index("`sync --json` prints `") + len("`sync --json` prints `") :]
    assert [key.strip() for key in listed[: listed.index("`")].split(",")] == keys
