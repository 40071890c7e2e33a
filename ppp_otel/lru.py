"""A bounded map that forgets the least recently used entry first; thread-safe.

What the analyzer remembers of open trajectories, what ingest knows of spans
it placed, and the LLM classifier's answers are all kept in one of these, so
none of them grows without bound in a long-running process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

from ppp_otel.forksafe import renew_locks_in_child

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUMap(Generic[K, V]):
    """At most ``capacity`` entries (0 keeps none); a read or a write makes an entry the newest."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        renew_locks_in_child(self)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
