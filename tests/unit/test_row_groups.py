"""Rows set aside on disk and given back grouped by key."""

from __future__ import annotations

import random
from pathlib import Path

import adapters.row_groups
from adapters.row_groups import RowGroups


def test_groups_come_in_order_of_their_first_row_with_rows_in_order_added() -> None:
    with RowGroups() as rows:
        for key, data in [("b", b"1"), ("a", b"2"), ("b", b"3"), ("c", b"4"), ("a", b"5")]:
            rows.add(key, data)
        assert list(rows.groups()) == [[b"1", b"3"], [b"2", b"5"], [b"4"]]


def test_many_rows_in_any_order_are_grouped_whole(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(adapters.row_groups, "_ROWS_PER_WRITE", 7)  # several writes, one partial
    rng = random.Random(7)
    added = [(f"k{rng.randrange(40)}", str(n).encode()) for n in range(1000)]
    with RowGroups() as rows:
        for key, data in added:
            rows.add(key, data)
        groups = list(rows.groups())
    expected: dict[str, list[bytes]] = {}
    for key, data in added:
        expected.setdefault(key, []).append(data)
    assert groups == list(expected.values())


def test_no_rows_give_no_groups_and_the_scratch_file_is_deleted_on_close() -> None:
    rows = RowGroups()
    folder = Path(rows._folder.name)
    assert folder.is_dir()
    assert list(rows.groups()) == []
    rows.close()
    assert not folder.exists()
