"""The `[celery]` section and the exit code of a command made of several runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import exits
from connector.config import load_config
from connector.errors import ConfigError
from connector.redact import GLOBAL_REDACTOR


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_celery_section_the_broker_is_rabbitmq_on_this_host_as_guest(tmp_path: Path) -> None:
    celery = load_config(write(tmp_path, "")).settings.celery
    assert celery.broker(tmp_path) == "amqp://127.0.0.1:5672//"
    assert celery.backend(tmp_path) == "rpc://"
    assert celery.queue == "po-connector"
    assert celery.concurrency is None and celery.schedule == []


def test_a_broker_url_with_a_password_in_the_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    config = write(tmp_path, '[celery]\nbroker_url = "amqp://po:Hunter2-secret@mq.internal:5672/po"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "Hunter2-secret" not in message
    assert "amqp://po:***@mq.internal:5672/po" in message
    assert "celery.broker_url_env" in message and "celery.broker_url_file" in message


def test_the_broker_url_comes_from_the_environment_or_a_file_and_its_password_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BROKER_URL", "amqp://po:from-env-Secret@mq:5672/po")
    config = write(tmp_path, '[celery]\nbroker_url_env = "TEST_BROKER_URL"\n')
    assert load_config(config).settings.celery.broker(tmp_path) == "amqp://po:from-env-Secret@mq:5672/po"
    assert "from-env-Secret" not in GLOBAL_REDACTOR("connecting with from-env-Secret")

    (tmp_path / "broker-url").write_text("redis://:file-Secret-pw@cache:6379/0\n", encoding="utf-8")
    config = write(tmp_path, '[celery]\nresult_backend_file = "broker-url"\n')
    assert load_config(config).settings.celery.backend(tmp_path) == "redis://:file-Secret-pw@cache:6379/0"

    config = write(tmp_path, '[celery]\nbroker_url_env = "TEST_BROKER_URL_UNSET"\n')
    with pytest.raises(ConfigError, match=r"celery\.broker_url: environment variable TEST_BROKER_URL_UNSET"):
        load_config(config).settings.celery.broker(tmp_path)


def test_an_environment_override_may_carry_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PO_CONNECTOR__CELERY__BROKER_URL", "amqp://po:override-Secret@mq//")
    assert (
        load_config(write(tmp_path, "")).settings.celery.broker(tmp_path) == "amqp://po:override-Secret@mq//"
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('name = "n"\ntenants = "t"\n', "exactly one of cron"),
        ('name = "n"\ntenants = "t"\ncron = "15 2 * * *"\nevery_seconds = 60\n', "exactly one of cron"),
        ('name = "n"\ntenants = "t"\ncron = "15 2 * *"\n', "needs five fields"),
        ('name = "n"\ntenants = "t"\ncron = "15 2 * * *"\njob = "resync"\n', "celery.schedule.0.job"),
    ],
)
def test_a_bad_schedule_entry_names_its_key(tmp_path: Path, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, f"[[celery.schedule]]\n{entry}"))


def test_schedule_names_are_unique(tmp_path: Path) -> None:
    entry = '[[celery.schedule]]\nname = "nightly"\ntenants = "t"\nevery_seconds = 60\n'
    with pytest.raises(ConfigError, match="nightly used twice"):
        load_config(write(tmp_path, entry * 2))


def test_the_worst_exit_code_is_the_one_most_in_need_of_a_person() -> None:
    assert exits.worst([]) == exits.EXIT_OK
    assert exits.worst([0, 0]) == 0
    assert exits.worst([0, 75, 0]) == 75
    assert exits.worst([75, 1, 0]) == 1
    assert exits.worst([1, 2, 75]) == 2
    assert exits.worst([2, 137]) == 137  # killed by a signal: nothing is known, it ranks first
