"""The reference side of a metric, computed once per frame for renditions scored in parallel threads."""

from __future__ import annotations

import threading
from typing import Any, Callable


class _Entry:
    def __init__(self):
        self.lock = threading.Lock()
        self.fetches = 0
        self.computed = False
        self.value: Any = None


class SharedReference:
    """What a metric needs of each reference frame, shared by ``users`` renditions' scorers (one branch
    thread each): the first to ask for a frame computes it while the others wait, and the last to fetch
    it lets it go, so only the frames between the slowest and the fastest rendition are held."""

    def __init__(self, users: int):
        self.users = users
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}

    def __len__(self) -> int:
        """How many frames are held (asked for by some renditions, not yet by all)."""
        return len(self._entries)

    def get(self, index: int, compute: Callable[[], Any]) -> Any:
        """Frame ``index``'s reference side: ``compute()``'s result, called once across the users."""
        with self._lock:
            entry = self._entries.setdefault(index, _Entry())
            entry.fetches += 1
            if entry.fetches == self.users:
                del self._entries[index]
        with entry.lock:
            if not entry.computed:
                entry.value, entry.computed = compute(), True
        return entry.value
