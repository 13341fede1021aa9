"""Logging for cron and for people: JSON lines when stderr is not a terminal, text when it is.

Every record passes through the process-wide redactor, so a secret that reached a message or
an exception is masked before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from connector.redact import GLOBAL_REDACTOR

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": GLOBAL_REDACTOR(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, int | bool | None) else GLOBAL_REDACTOR(str(value))
        if record.exc_info:
            data["exception"] = GLOBAL_REDACTOR(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


class RedactingTextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, redacted like the JSON ones."""

    def format(self, record: logging.LogRecord) -> str:
        return GLOBAL_REDACTOR(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Send logs to stderr only; stdout is kept for the command's result."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(RedactingTextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
