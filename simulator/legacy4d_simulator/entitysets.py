"""Server-side entity sets (``$method=entityset``; protocol doc 2.2, checklist 15-17).

Membership is frozen at creation; attribute values stay live. A set dies after ``timeout``
idle seconds (each use refreshes it) or when evicted as least recently used.
"""

from __future__ import annotations

import secrets
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class EntitySet:
    """A cached selection."""

    id: str
    table: str
    keys: array
    timeout: float
    saved_filter: str | None = None
    saved_orderby: str | None = None
    saved_params: str | None = None
    last_used: float = field(default_factory=time.monotonic)


class EntitySetStore:
    """Thread-safe LRU of entity sets."""

    def __init__(self, max_sets: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sets = max_sets
        self.clock = clock
        self._sets: OrderedDict[str, EntitySet] = OrderedDict()
        self._lock = threading.Lock()

    def add(
        self, table: str, keys: array, timeout: float, set_id: str | None = None, **saved: str | None
    ) -> EntitySet:
        """Store a new set (32 upper-case hex id, like 4D)."""
        es = EntitySet(
            set_id or secrets.token_hex(16).upper(),
            table,
            keys,
            timeout,
            saved.get("saved_filter"),
            saved.get("saved_orderby"),
            saved.get("saved_params"),
            self.clock(),
        )
        with self._lock:
            self._sets[es.id] = es
            while len(self._sets) > self.max_sets:
                self._sets.popitem(last=False)
        return es

    def get(self, set_id: str) -> EntitySet | None:
        """The live set, its clock refreshed; None when unknown or expired."""
        with self._lock:
            es = self._sets.get(set_id)
            if es is None:
                return None
            now = self.clock()
            if now - es.last_used > es.timeout:
                del self._sets[set_id]
                return None
            es.last_used = now
            self._sets.move_to_end(set_id)
            return es

    def release(self, set_id: str) -> bool:
        """Drop a set; False when it did not exist."""
        with self._lock:
            return self._sets.pop(set_id, None) is not None

    def ids(self) -> list[str]:
        """Ids of stored sets (for ``$info``)."""
        with self._lock:
            return list(self._sets)

    def clear(self) -> None:
        """Drop all sets (server restart)."""
        with self._lock:
            self._sets.clear()
