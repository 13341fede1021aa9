"""Long key lists cut into IN lists a database takes."""

from __future__ import annotations

from state.key_chunks import KEYS_PER_QUERY, chunks


def test_every_key_comes_once_in_order_in_slices_of_the_chunk_size() -> None:
    keys = [f"k{n}" for n in range(2 * KEYS_PER_QUERY + 3)]
    sliced = list(chunks(keys))
    assert [len(part) for part in sliced] == [KEYS_PER_QUERY, KEYS_PER_QUERY, 3]
    assert [key for part in sliced for key in part] == keys
    assert list(chunks(keys[:5], 2)) == [["k0", "k1"], ["k2", "k3"], ["k4"]]
    assert list(chunks([])) == []
