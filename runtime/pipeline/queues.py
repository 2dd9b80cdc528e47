"""Handing items between threads through bounded queues, so that a fast producer waits for a slow consumer
and memory stays constant, without ever blocking past the moment a run is told to stop."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
POLL = 0.05  # seconds between checks of the stop flag while waiting on a full queue


def put_until(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` on ``target``, waiting while it is full; False (nothing put) once ``stop`` is set."""
    while not stop.is_set():
        try:
            target.put(item, timeout=POLL)
            return True
        except queue.Full:
            pass
    return False


_DONE = object()


def prefetch(iterable: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``iterable`` in a daemon thread, at most ``depth`` items ahead.

    The producer's exception is re-raised in the consumer. When the consumer stops
    early (the generator is closed or raises), the producer stops after its current
    item, closes the source iterator, and is joined.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        source = iter(iterable)
        try:
            for item in source:
                if not put_until(items, (item, None), stop):
                    break
            else:
                put_until(items, (_DONE, None), stop)
        except BaseException as exc:  # handed to the consumer
            put_until(items, (_DONE, exc), stop)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = items.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
