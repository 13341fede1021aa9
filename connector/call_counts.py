"""Requests each adapter sent in a run, counted wherever its HTTP client was built.

Kept apart from `connector.http` so a run can count calls without importing an HTTP stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class CallCounts:
    """Requests sent and throttled (429) answers received, per adapter name, for one run.

    Counting is on inside `counting(name)`: every `HttpClient` request made there (in this
    thread or context) counts against `name`, whichever client the adapter built.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    @contextmanager
    def counting(self, name: str) -> Iterator[None]:
        """Count the requests made inside against `name` (listed, with zeros, even if none)."""
        with self._lock:
            self._counts.setdefault(name, {"calls": 0, "throttled": 0})
        token = _COUNTING.set((self, name))
        try:
            yield
        finally:
            _COUNTING.reset(token)

    def add(self, name: str, key: str) -> None:
        """One more `key` ("calls" or "throttled") for `name`."""
        with self._lock:
            by_key = self._counts.setdefault(name, {"calls": 0, "throttled": 0})
            by_key[key] = by_key.get(key, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """name -> {"calls": n, "throttled": n}, for every name counted (zeros included)."""
        with self._lock:
            return {name: dict(by_key) for name, by_key in self._counts.items()}


_COUNTING: ContextVar[tuple[CallCounts, str] | None] = ContextVar("po_connector_http_counting", default=None)


def count_call(key: str) -> None:
    """One more `key` for the adapter counting in this context, if any."""
    current = _COUNTING.get()
    if current is not None:
        current[0].add(current[1], key)
