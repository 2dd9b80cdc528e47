"""Bounded hand-over between threads: prefetch ahead of a consumer, stopping with it."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.pipeline.queues import prefetch


def test_prefetch_yields_everything_in_order():
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch([])) == []


def test_prefetch_reraises_producer_error():
    def source():
        yield 1
        yield 2
        raise InputError("frame 2 is truncated")

    got = []
    with pytest.raises(InputError, match="frame 2 is truncated"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_runs_ahead_in_the_background():
    produced = []

    def source():
        for i in range(20):
            produced.append(i)
            yield i

    items = prefetch(source(), depth=4)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # One item consumed, four queued, one held by the producer waiting for room.
    assert len(produced) == 6
    items.close()


@pytest.mark.parametrize("stop", ["close", "raise"])
def test_prefetch_stops_producer_when_consumer_stops(stop):
    state = {"produced": 0, "closed": False}

    def endless():
        try:
            while True:
                state["produced"] += 1
                yield state["produced"]
        finally:
            state["closed"] = True

    threads = threading.active_count()
    with closing(prefetch(endless(), depth=2)) as items:
        if stop == "close":
            assert [next(items) for _ in range(3)] == [1, 2, 3]
        else:
            with pytest.raises(ZeroDivisionError):
                for item in items:
                    if item == 3:
                        raise ZeroDivisionError
    # close() joined the producer, which closed its source.
    assert state["closed"] and state["produced"] <= 3 + 2 + 1
    assert threading.active_count() == threads
