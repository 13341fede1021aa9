"""Creates in flight at once: every item called once, outcomes recorded on the caller's thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from connector.concurrent_push import push_concurrency, run_in_flight


class _Sink:
    def __init__(self, concurrency: object) -> None:
        self.push_concurrency = concurrency


def test_concurrency_is_what_the_sink_declares_within_the_ceiling() -> None:
    assert push_concurrency(object(), 8) == 1  # a sink that declares nothing sends one at a time
    assert push_concurrency(_Sink(5), 8) == 5
    assert push_concurrency(_Sink(50), 8) == 8
    assert push_concurrency(_Sink(0), 8) == 1
    assert push_concurrency(_Sink("4"), 8) == 1


def test_calls_overlap_but_outcomes_are_recorded_on_the_calling_thread() -> None:
    caller = threading.get_ident()
    active, peak, lock = [0], [0], threading.Lock()
    recorded: list[tuple[int, int]] = []

    def call(item: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return item * 10

    def record(item: int, outcome: Future[int]) -> None:
        assert threading.get_ident() == caller
        recorded.append((item, outcome.result()))

    left = run_in_flight(list(range(12)), call, record, workers=4, stopped=lambda: False)
    assert left == []
    assert sorted(recorded) == [(i, i * 10) for i in range(12)]
    assert peak[0] == 4


def test_a_stop_submits_nothing_more_and_returns_the_rest() -> None:
    recorded: list[int] = []
    left = run_in_flight(
        list(range(10)),
        lambda item: item,
        lambda item, outcome: recorded.append(outcome.result()),
        workers=2,
        stopped=lambda: len(recorded) >= 3,
    )
    assert len(recorded) + len(left) == 10 and 3 <= len(recorded) <= 4
    assert set(recorded).isdisjoint(left)


def test_an_error_of_the_recorder_waits_for_calls_in_flight_then_propagates() -> None:
    finished: list[int] = []

    def call(item: int) -> int:
        time.sleep(0.05)
        finished.append(item)
        return item

    def record(item: int, outcome: Future[int]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_flight([1, 2, 3], call, record, workers=3, stopped=lambda: False)
    assert sorted(finished) == [1, 2, 3]  # nothing left running behind the caller's back
