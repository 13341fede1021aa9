"""Rows of a large input set aside on disk, in a scratch SQLite file, and read back in order."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

# Rows written to the scratch file per statement.
_ROWS_PER_WRITE = 1000


class ScratchRows:
    """Rows set aside on disk as they are read, given back grouped by key or in key order.

    For inputs too large to hold: a billing export whose rows of one period may be anywhere in
    it, a folder of messages to be read oldest first. Keys compare as bytes; rows of one key
    come back in the order they were added. Memory holds a write buffer and, when grouping,
    one group; the scratch file is deleted on close.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="po-connector-rows-")
        self._db = sqlite3.connect(Path(self._folder.name) / "rows.sqlite3")
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE row (key BLOB NOT NULL, number INTEGER NOT NULL, data BLOB NOT NULL);"
        )
        self._pending: list[tuple[bytes, int, bytes]] = []
        self.count = 0

    def add(self, key: bytes, data: bytes) -> None:
        """Set one row aside under `key`."""
        self._pending.append((key, self.count, data))
        self.count += 1
        if len(self._pending) == _ROWS_PER_WRITE:
            self._flush()

    def groups(self) -> Iterator[list[bytes]]:
        """Each key's rows, the keys in order of their first row."""
        self._flush()
        rows = self._db.execute(
            "SELECT key, data FROM (SELECT key, number, data,"
            " min(number) OVER (PARTITION BY key) AS first FROM row) ORDER BY first, number"
        )
        group: list[bytes] = []
        current: bytes | None = None
        for key, data in rows:
            if key != current and group:
                yield group
                group = []
            current = key
            group.append(data)
        if group:
            yield group

    def in_key_order(self) -> Iterator[bytes]:
        """Every row, by key, then in the order added."""
        self._flush()
        for (data,) in self._db.execute("SELECT data FROM row ORDER BY key, number"):
            yield data

    def close(self) -> None:
        """Delete the scratch file."""
        self._db.close()
        self._folder.cleanup()

    def __enter__(self) -> ScratchRows:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO row VALUES (?, ?, ?)", self._pending)
            self._pending = []
