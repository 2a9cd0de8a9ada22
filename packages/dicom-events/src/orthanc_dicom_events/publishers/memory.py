"""A publisher that keeps events in memory: for tests and dry runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..envelope import OutgoingEvent
from . import PublishError


class MemoryPublisher:
    """Records events; `fail_next(n)` or `down = True` simulate a broker outage."""

    def __init__(self) -> None:
        self.events: list[OutgoingEvent] = []
        self.down = False
        self.calls = 0
        self._failures_left = 0
        self._lock = threading.Lock()
        self.closed = False

    def fail_next(self, count: int) -> None:
        self._failures_left = count

    def publish(self, events: Sequence[OutgoingEvent]) -> int:
        with self._lock:
            self.calls += 1
            if self.down or self._failures_left > 0:
                self._failures_left = max(0, self._failures_left - 1)
                raise PublishError("broker unreachable (simulated)")
            self.events.extend(events)
            return 0

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    @property
    def connected(self) -> bool:
        return not self.down

    def types(self) -> list[str]:
        with self._lock:
            return [event.type for event in self.events]
