"""Bounded in-process caches: entries that expire (subject keys and links of the audit),
and the keys of what this process already wrote (subject-index entries)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """At most ``size`` entries, each reused for ``ttl`` seconds; ``None`` may be cached."""

    def __init__(self, ttl: float, size: int, now: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self._now = ttl, size, now
        self._entries: OrderedDict[str, tuple[float, V | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, V | None]:
        """(found and fresh, value)."""
        entry = self._entries.get(key)
        if entry is None or self._now() - entry[0] >= self.ttl:
            return False, None
        return True, entry[1]

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys without a fresh entry, each once, in a stable order."""
        return sorted({k for k in keys if not self.get(k)[0]})

    def put(self, key: str, value: V | None) -> None:
        self._entries[key] = (self._now(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class Seen:
    """The last ``size`` keys marked, least recently marked or asked forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def unseen(self, keys: Iterable[str]) -> list[str]:
        """The keys not marked, each once, in their first order (the marked ones refreshed)."""
        out: dict[str, None] = {}
        for key in keys:
            if key in self._keys:
                self._keys.move_to_end(key)
            else:
                out[key] = None
        return list(out)

    def mark(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def __len__(self) -> int:
        return len(self._keys)
