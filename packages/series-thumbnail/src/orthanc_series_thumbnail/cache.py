"""A thread-safe LRU of rendered thumbnails bounded by the bytes it holds."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from .rendering import RenderSpec

# A refusal ("no image because ...") is cached too, charged as this many bytes.
_REFUSAL_COST = 256


@dataclass(frozen=True, slots=True)
class Rendered:
    """A thumbnail's bytes, or why there is none."""

    body: bytes | None = None
    refusal: str | None = None

    @property
    def cost(self) -> int:
        return len(self.body) if self.body is not None else _REFUSAL_COST


class RenderCache:
    """Maps a RenderSpec to its thumbnail; evicts least recently used entries over budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[RenderSpec, Rendered] = OrderedDict()
        self._by_instance: dict[str, set[RenderSpec]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, spec: RenderSpec) -> Rendered | None:
        with self._lock:
            entry = self._entries.get(spec)
            if entry is not None:
                self._entries.move_to_end(spec)
            return entry

    def put(self, spec: RenderSpec, entry: Rendered) -> None:
        if entry.cost > self.max_bytes:
            return
        with self._lock:
            self._remove(spec)
            self._entries[spec] = entry
            self._by_instance.setdefault(spec.instance_id, set()).add(spec)
            self._bytes += entry.cost
            while self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))

    def forget_instance(self, instance_id: str) -> None:
        """Drop every entry rendered from this instance (deleted, or overwritten in place)."""
        with self._lock:
            for spec in list(self._by_instance.get(instance_id, ())):
                self._remove(spec)

    def _remove(self, spec: RenderSpec) -> None:
        entry = self._entries.pop(spec, None)
        if entry is None:
            return
        self._bytes -= entry.cost
        specs = self._by_instance.get(spec.instance_id)
        if specs is not None:
            specs.discard(spec)
            if not specs:
                del self._by_instance[spec.instance_id]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"Entries": len(self._entries), "Bytes": self._bytes, "MaxBytes": self.max_bytes}
