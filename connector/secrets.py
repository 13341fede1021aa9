"""Secrets come only from the environment or from files, never from the config text itself."""

from __future__ import annotations

import os
from pathlib import Path

from connector.errors import ConfigError
from connector.redact import GLOBAL_REDACTOR


def resolve_secret(
    *, env: str | None = None, file: Path | str | None = None, key: str, base_dir: Path | None = None
) -> str:
    """Read a secret from the environment variable `env` or the file `file`.

    A relative `file` is relative to `base_dir` (the config file's folder) when given.

    `key` is the config key that asked for it, so an error names it. The value is registered
    with the process-wide redactor so it never reaches logs or error text.
    """
    value: str | None = None
    if env:
        value = os.environ.get(env)
        if value is None and not file:
            raise ConfigError(f"{key}: environment variable {env} is not set")
    if value is None and file:
        path = base_dir / file if base_dir is not None else Path(file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read secret file {path}: {exc.strerror}") from None
    if value is None:
        raise ConfigError(f"{key}: no secret configured (set {key}_env or {key}_file)")
    if not value:
        raise ConfigError(f"{key}: the secret is empty")
    GLOBAL_REDACTOR.add(value)
    return value
