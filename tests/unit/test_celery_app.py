"""The Celery app a `[celery]` section makes: task options, beat's entries (no broker needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from connector.celery_config import CelerySettings, ScheduleEntry
from connector.errors import ConfigError
from tests.support.shared import require_service


@pytest.fixture(autouse=True)
def _celery_installed() -> None:
    installed = importlib.util.find_spec("celery") is not None
    require_service(installed, "celery is not installed: pip install -e '.[test]'")


def app_for(tmp_path: Path, **settings: Any) -> Any:
    from connector.celery_app import make_app

    return make_app(CelerySettings(**settings), tmp_path)


def test_a_task_is_acknowledged_after_its_run_and_given_back_when_its_worker_dies(tmp_path: Path) -> None:
    from connector.celery_app import FAN_OUT_TASK, RUN_TASK

    app = app_for(tmp_path, queue="books-eu")
    for name in (RUN_TASK, FAN_OUT_TASK):
        task = app.tasks[name]
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
    assert app.tasks[FAN_OUT_TASK].ignore_result is True
    assert app.conf.task_default_queue == "books-eu"
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]


def test_the_broker_password_never_reaches_the_app_s_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BROKER", "amqp://po:app-Secret-pw@mq:5672/books")
    app = app_for(tmp_path, broker_url_env="TEST_BROKER")
    assert app.conf.broker_url == "amqp://po:app-Secret-pw@mq:5672/books"  # what kombu connects with
    assert "app-Secret-pw" not in app.conf.po_connector_broker


def test_each_schedule_entry_starts_the_fan_out_over_its_tenants_folder(tmp_path: Path) -> None:
    from celery.schedules import crontab, schedule

    from connector.celery_app import FAN_OUT_TASK

    app = app_for(
        tmp_path,
        schedule=[
            ScheduleEntry(name="nightly", tenants=Path("tenants"), cron="15 2 * * 1-5"),
            ScheduleEntry(name="hourly-push", job="push", tenants=Path("/srv/tenants"), every_seconds=3600),
        ],
    )
    nightly, hourly = app.conf.beat_schedule["nightly"], app.conf.beat_schedule["hourly-push"]
    assert nightly["task"] == hourly["task"] == FAN_OUT_TASK
    assert nightly["args"] == (str(tmp_path / "tenants"), "sync")
    assert hourly["args"] == ("/srv/tenants", "push")
    assert isinstance(nightly["schedule"], crontab)
    assert nightly["schedule"].minute == {15} and nightly["schedule"].hour == {2}
    assert nightly["schedule"].day_of_week == {1, 2, 3, 4, 5}
    assert isinstance(hourly["schedule"], schedule) and hourly["schedule"].run_every.total_seconds() == 3600


def test_a_cron_field_celery_cannot_read_is_a_config_error_naming_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"celery.schedule\[0\].cron = '61 2 \* \* \*'"):
        app_for(tmp_path, schedule=[ScheduleEntry(name="n", tenants=Path("t"), cron="61 2 * * *")])
