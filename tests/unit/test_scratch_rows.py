"""Rows set aside on disk and given back grouped by key or in key order."""

from __future__ import annotations

import random
from pathlib import Path

import adapters.scratch_rows
from adapters.scratch_rows import ScratchRows


def test_groups_come_in_order_of_their_first_row_with_rows_in_order_added() -> None:
    with ScratchRows() as rows:
        for key, data in [(b"b", b"1"), (b"a", b"2"), (b"b", b"3"), (b"c", b"4"), (b"a", b"5")]:
            rows.add(key, data)
        assert list(rows.groups()) == [[b"1", b"3"], [b"2", b"5"], [b"4"]]


def test_many_rows_in_any_order_are_grouped_whole(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(adapters.scratch_rows, "_ROWS_PER_WRITE", 7)  # several writes, one partial
    rng = random.Random(7)
    added = [(f"k{rng.randrange(40)}".encode(), str(n).encode()) for n in range(1000)]
    with ScratchRows() as rows:
        for key, data in added:
            rows.add(key, data)
        groups = list(rows.groups())
    expected: dict[bytes, list[bytes]] = {}
    for key, data in added:
        expected.setdefault(key, []).append(data)
    assert groups == list(expected.values())


def test_no_rows_give_no_groups_and_the_scratch_file_is_deleted_on_close() -> None:
    rows = ScratchRows()
    folder = Path(rows._folder.name)
    assert folder.is_dir()
    assert list(rows.groups()) == []
    rows.close()
    assert not folder.exists()


def test_rows_come_back_in_key_order_as_bytes_compare_and_in_order_added_within_a_key() -> None:
    with ScratchRows() as rows:
        added = [(b"b\x00z", b"1"), (b"a\x00y", b"2"), (b"b", b"3"), (b"a\x00y", b"4"), (b"\xc3\xa9", b"5")]
        for key, data in added:
            rows.add(key, data)
        assert list(rows.in_key_order()) == [b"2", b"4", b"3", b"1", b"5"]
