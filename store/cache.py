"""A small in-memory cache whose entries are forgotten once they are older than a given age."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values kept for `max_age` seconds after they were put, by `clock` (monotonic seconds;
    a test passes its own). With `size`, putting a value when `size` are kept forgets them all
    first: simpler than an LRU and safe for a cache that is rarely that full. Not thread-safe:
    each cache belongs to one thread (or the event loop). A value is never None, so get()
    answers None for a value it does not have (never put, too old, or invalidated)."""

    def __init__(
        self,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        size: int | None = None,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The value put under `key` less than `max_age` seconds ago, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry[0] >= self.max_age:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self._size is not None and key not in self._entries and len(self) >= self._size:
            self._entries.clear()
        self._entries[key] = (self._clock(), value)

    def invalidate(self, key: K | None = None) -> None:
        """Forget the value under `key`, or every value when no key is given."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
