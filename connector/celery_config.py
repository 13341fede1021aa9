"""The `[celery]` section: broker, queue, worker concurrency, retries of a busy partition, schedule.

Read by `po-connector worker`, `po-connector schedule` and `sync --tenants DIR --via celery`.
Nothing here imports Celery, so a config with this section loads where the extra is missing.
The broker and result backend URLs may carry a password: then they come from the environment
(`broker_url_env`) or a file (`broker_url_file`), never from the config text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.errors import ConfigError
from connector.redact import GLOBAL_REDACTOR, mask_url_passwords
from connector.secrets import resolve_secret

_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)
_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/:@\s]*:(?P<password>[^/@\s]+)@", re.IGNORECASE)


class ScheduleEntry(BaseModel):
    """One entry of beat's schedule: run `job` for every tenant config in the folder `tenants`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    job: Literal["sync", "push"] = "sync"
    tenants: Path
    cron: str | None = None  # "minute hour day-of-month month day-of-week", in UTC
    every_seconds: int | None = Field(default=None, ge=1, le=31 * 86_400)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleEntry:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("set exactly one of cron (e.g. '15 2 * * *') and every_seconds")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(
                f"cron {self.cron!r} needs five fields: minute hour day-of-month month day-of-week"
            )
        return self


class CelerySettings(BaseModel):
    """Scale-out on Celery: where tasks go and how workers, beat and the fan-out behave."""

    model_config = ConfigDict(extra="forbid")

    # RabbitMQ on this host as guest (the amqp transport's default user); a URL with a password
    # comes from broker_url_env or broker_url_file.
    broker_url: str = "amqp://127.0.0.1:5672//"
    broker_url_env: str | None = None
    broker_url_file: Path | None = None
    # Where the fan-out collects each task's outcome; the runs table has them all the same.
    result_backend: str = "rpc://"
    result_backend_env: str | None = None
    result_backend_file: Path | None = None
    queue: str = Field(default="po-connector", pattern=r"^[A-Za-z0-9._:-]{1,200}$")
    concurrency: int | None = Field(default=None, ge=1, le=256)  # None: one process per CPU
    # A task whose partition is held by another run (exit 75) is tried again this often, then
    # reports 75: a worker lost on another host keeps its lease until it expires.
    busy_retries: int = Field(default=3, ge=0, le=100)
    busy_retry_seconds: int = Field(default=60, ge=1, le=86_400)
    wait_timeout_seconds: int = Field(default=7200, ge=1, le=7 * 86_400)
    schedule_file: Path = Path("celerybeat-schedule")
    schedule: list[ScheduleEntry] = []

    @model_validator(mode="after")
    def _names_once(self) -> CelerySettings:
        names = [entry.name for entry in self.schedule]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"schedule names must be unique: {', '.join(twice)} used twice")
        return self

    def broker(self, base_dir: Path) -> str:
        """The broker URL, read from the environment or a file when so configured."""
        return self._url("broker_url", self.broker_url, self.broker_url_env, self.broker_url_file, base_dir)

    def backend(self, base_dir: Path) -> str:
        """The result backend URL, read like the broker's."""
        return self._url(
            "result_backend", self.result_backend, self.result_backend_env, self.result_backend_file, base_dir
        )

    @staticmethod
    def _url(key: str, inline: str, env: str | None, file: Path | None, base_dir: Path) -> str:
        url = inline
        if env or file:
            url = resolve_secret(env=env, file=file, key=f"celery.{key}", base_dir=base_dir)
        for one in url.split(";"):  # Celery takes several brokers, tried in turn
            found = _PASSWORD.match(one.strip())
            if found:
                GLOBAL_REDACTOR.add(found["password"])
        return url


def refuse_passwords_in_file(raw: dict[str, Any], path: Path) -> None:
    """A `[celery]` URL written in the config file must not carry credentials (the environment
    override `PO_CONNECTOR__CELERY__BROKER_URL` may: it is not the file)."""
    section = raw.get("celery")
    if not isinstance(section, dict):
        return
    for key in ("broker_url", "result_backend"):
        value = section.get(key)
        if isinstance(value, str) and any(_CREDENTIALS.match(one.strip()) for one in value.split(";")):
            raise ConfigError(
                f"config {path}: celery.{key} = {mask_url_passwords(value)!r}: a URL with a password "
                f"must not be written in the config; set celery.{key}_env (an environment variable) "
                f"or celery.{key}_file (a file) instead"
            )
