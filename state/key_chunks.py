"""Long key lists asked about or written a chunk at a time: one IN list per chunk stays well
inside every database's parameter limit (PostgreSQL's protocol takes 65,535 per statement,
SQLite builds 32,766 or 250,000), however large the book."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

KEYS_PER_QUERY = 500

_T = TypeVar("_T")


def chunks(items: Sequence[_T], size: int | None = None) -> Iterator[Sequence[_T]]:
    """`items` in consecutive slices of `size` (KEYS_PER_QUERY by default)."""
    step = size or KEYS_PER_QUERY
    for start in range(0, len(items), step):
        yield items[start : start + step]
