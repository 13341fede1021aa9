"""`sync --tenants DIR`: one run per tenant config, each outcome printed, the worst exit code."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli import EXAMPLE_INVOICES, REPO, run_cli
from tests.support.shared import require_service
from tests.support.tenants import write_tenants


def invoices(root: Path, tenant: str) -> list[Path]:
    return sorted((root / "data" / tenant / "out" / "invoices").glob("*.xml"))


def test_every_tenant_is_synced_once_and_a_bad_config_or_a_second_config_of_a_partition_is_refused(
    tmp_path: Path,
) -> None:
    folder = write_tenants(tmp_path, 2)
    (folder / "broken.toml").write_text('tenant = "t09"\n[state]\nurl = "sqlite:///x.db"\nbogus = 1\n')
    shutil.copy(folder / "t01.toml", folder / "t01b.toml")  # the same tenant on the same state

    result = run_cli("sync", "--tenants", str(folder), "--json")
    assert result.code == 2, result.stderr
    report = result.json()
    assert report["command"] == "sync" and report["via"] == "local" and report["exit_code"] == 2
    outcomes = {Path(o["config"]).name: o for o in report["tenants"]}
    assert sorted(outcomes) == ["broken.toml", "t01.toml", "t01b.toml", "t02.toml"]
    for name, tenant in (("t01.toml", "t01"), ("t02.toml", "t02")):
        assert outcomes[name]["tenant"] == tenant
        assert outcomes[name]["exit_code"] == 0
        assert outcomes[name]["invoices_pushed"] == EXAMPLE_INVOICES
        assert outcomes[name]["run_id"]
        assert len(invoices(tmp_path, tenant)) == EXAMPLE_INVOICES
    assert outcomes["broken.toml"]["exit_code"] == 2
    assert outcomes["broken.toml"]["run_id"] is None
    assert "configuration error" in outcomes["broken.toml"]["errors"][0]
    assert "state.bogus" in outcomes["broken.toml"]["errors"][0]
    again = outcomes["t01b.toml"]
    assert again["exit_code"] == 2 and again["run_id"] is None
    assert "same state database as t01.toml" in again["errors"][0]
    assert any(error.startswith("t01: ") for error in report["errors"])

    # The run of each tenant is in its own runs table, as a cron run's would be.
    runs = run_cli("runs", "list", "--config", str(folder / "t02.toml"), "--json")
    assert runs.code == 0, runs.stderr
    assert [run["id"] for run in runs.json()] == [outcomes["t02.toml"]["run_id"]]

    (folder / "broken.toml").unlink()
    (folder / "t01b.toml").unlink()
    second = run_cli("sync", "--tenants", str(folder))
    assert second.code == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0].startswith("tenant t01  exit 0") and "pushed 0" in lines[0] and "(t01.toml)" in lines[0]
    assert lines[1].startswith("tenant t02  exit 0")
    assert lines[-1] == "2 tenant(s) via local: exit 0"


def test_a_tenant_whose_partition_is_held_reports_75_and_the_others_still_run(tmp_path: Path) -> None:
    folder = write_tenants(tmp_path, 2)
    # A run of t02 that is alive (this test's process) holds the partition.
    from datetime import timedelta

    from connector.model import utcnow
    from state import runs
    from state.db import open_state
    from tests.support.tenants import state_url

    engine = open_state(state_url(folder, "t02"))
    try:
        with engine.begin() as conn:
            now = utcnow()
            holder = runs.start_run(conn, "t02", "sync", now, "sync:t02")
            assert runs.acquire_lease(conn, "sync:t02", holder, now, 300)[0]
        result = run_cli("sync", "--tenants", str(folder), "--json")
        assert result.code == 75, result.stderr
        outcomes = {o["tenant"]: o for o in result.json()["tenants"]}
        assert outcomes["t01"]["exit_code"] == 0 and outcomes["t01"]["invoices_pushed"] == EXAMPLE_INVOICES
        assert outcomes["t02"]["exit_code"] == 75
        assert f"held by run {holder}" in outcomes["t02"]["errors"][0]
        assert invoices(tmp_path, "t02") == []
        with engine.begin() as conn:
            runs.release_lease(conn, "sync:t02", holder)
            runs.finish_run(conn, holder, status="ok", exit_code=0, counts={}, now=now + timedelta(seconds=1))
    finally:
        engine.dispose()


def test_tenants_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    via = run_cli("sync", "--via", "celery", "--config", str(tmp_path / "none.toml"))
    assert via.code == 2 and "--via and --wait go with --tenants DIR" in via.stderr
    dry = run_cli("sync", "--tenants", str(tmp_path), "--dry-run")
    assert dry.code == 2 and "--dry-run previews one config" in dry.stderr
    missing = run_cli("sync", "--tenants", str(tmp_path / "nowhere"))
    assert missing.code == 2 and "not found: tenants folder" in missing.stderr
    empty = run_cli("sync", "--tenants", str(tmp_path))
    assert empty.code == 2 and "not found: no tenant config (*.toml)" in empty.stderr


def test_a_broker_that_cannot_be_reached_exits_75_naming_it_without_its_password(tmp_path: Path) -> None:
    require_service(importlib.util.find_spec("celery") is not None, "celery is not installed")
    folder = write_tenants(tmp_path, 1)
    control = tmp_path / "control.toml"
    control.write_text('[celery]\nbroker_url_env = "E2E_BROKER_URL"\n', encoding="utf-8")
    # Port 1 on this host: nothing listens there, the connection is refused at once.
    env = {"E2E_BROKER_URL": "amqp://po:Broker-Secret-77@127.0.0.1:1//"}
    result = run_cli("sync", "--tenants", str(folder), "--via", "celery", "--config", str(control), env=env)
    assert result.code == 75, result.stderr
    named = "unavailable: celery.broker_url amqp://po:***@127.0.0.1:1//: cannot send to the broker"
    assert named in result.stderr
    assert "Broker-Secret-77" not in result.stderr + result.stdout
    assert invoices(tmp_path, "t01") == []


def test_without_the_celery_extra_the_celery_verbs_say_how_to_install_it(tmp_path: Path) -> None:
    control = tmp_path / "control.toml"
    control.write_text("[celery]\n", encoding="utf-8")
    folder = write_tenants(tmp_path, 1)
    # As if celery were not installed: importing it fails the way a missing package does.
    probe = "import sys; sys.modules['celery'] = None; from connector.cli import main; main()"
    for args in (["worker"], ["schedule"], ["sync", "--tenants", str(folder), "--via", "celery"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args, "--config", str(control)],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "celery is not installed: pip install 'po-connector[celery]'" in done.stderr
    assert invoices(tmp_path, "t01") == []
