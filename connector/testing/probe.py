"""Collects every text an adapter lets out (log records, exception text) to look for secrets in."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from connector.testing.fixtures import expect


class TextProbe(logging.Handler):
    """A logging handler that keeps each record's message, arguments and traceback as text."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(record.getMessage())
        except (TypeError, ValueError):
            self.texts.append(f"{record.msg!r} {record.args!r}")
        if record.exc_info and record.exc_info[1] is not None:
            self.texts.append("".join(traceback.format_exception(record.exc_info[1])))
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extra:
            self.texts.append(repr(extra))

    def add_error(self, error: BaseException) -> None:
        """Keep what an exception shows: str, repr and its chain's traceback."""
        self.texts.append(f"{error!s} {error!r}")
        self.texts.append("".join(traceback.format_exception(error)))

    def attempt(self, action: Callable[[], Any]) -> BaseException | None:
        """Run `action`; keep the text of whatever it raised."""
        try:
            action()
        except Exception as exc:  # every error text is inspected, whatever its type
            self.add_error(exc)
            return exc
        return None

    def assert_clean(self, secrets: Iterable[str], what: str) -> None:
        text = "\n".join(self.texts)
        for secret in secrets:
            if not secret:
                continue
            expect(
                secret not in text,
                f"{what}: a secret ({secret[:2]}…, {len(secret)} characters) appears in logs or error text",
            )


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def probing() -> Iterator[TextProbe]:
    """Capture every log record, DEBUG included, for the duration of the block."""
    probe = TextProbe()
    root = logging.getLogger()
    level = root.level
    root.addHandler(probe)
    root.setLevel(logging.DEBUG)
    try:
        yield probe
    finally:
        root.removeHandler(probe)
        root.setLevel(level)
