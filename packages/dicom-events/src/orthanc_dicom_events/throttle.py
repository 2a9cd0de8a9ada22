"""Per-series throttle of stored-instance events.

The first instance of a series goes out at once; later ones within the interval of the last publish
replace each other; once the interval has passed, the latest one goes out. So the last instance of a
burst is always published, about one interval after it was stored at most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass(slots=True)
class _SeriesState(Generic[Item]):
    last_publish: float
    pending: Item | None = None


class SeriesThrottle(Generic[Item]):
    """Decides which stored-instance items to publish now; pure logic with an injected clock."""

    def __init__(self, interval_seconds: float, clock: Callable[[], float]) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._series: dict[str, _SeriesState[Item]] = {}

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def offer(self, series_id: str, item: Item) -> Item | None:
        """The item when it is to be published now, else None (it waits, replacing older ones)."""
        if not self.enabled:
            return item
        now = self._clock()
        state = self._series.get(series_id)
        if state is None or now - state.last_publish >= self._interval:
            self._series[series_id] = _SeriesState(last_publish=now)
            return item
        state.pending = item
        return None

    def take(self, series_id: str) -> Item | None:
        """The waiting item of a series, published now because a later event of it must follow."""
        state = self._series.get(series_id)
        if state is None or state.pending is None:
            return None
        item, state.pending = state.pending, None
        state.last_publish = self._clock()
        return item

    def take_where(self, matches: Callable[[Item], bool]) -> list[Item]:
        """The waiting items `matches` accepts (e.g. every series of a study), taken out."""
        taken: list[Item] = []
        for series_id, state in self._series.items():
            if state.pending is not None and matches(state.pending):
                taken.extend(item for item in [self.take(series_id)] if item is not None)
        return taken

    def due(self) -> list[Item]:
        """Waiting items whose interval has passed; forgets series idle for a whole interval."""
        now = self._clock()
        ready: list[Item] = []
        for series_id, state in list(self._series.items()):
            if now - state.last_publish < self._interval:
                continue
            if state.pending is None:
                del self._series[series_id]  # bounded memory: idle series are forgotten
                continue
            ready.append(state.pending)
            state.pending = None
            state.last_publish = now
        return ready

    def next_due_in(self) -> float | None:
        """Seconds until the earliest waiting item is due, None when nothing waits."""
        waits = [
            state.last_publish + self._interval - self._clock()
            for state in self._series.values()
            if state.pending is not None
        ]
        return max(0.0, min(waits)) if waits else None

    def waiting(self) -> list[Item]:
        return [state.pending for state in self._series.values() if state.pending is not None]

    def series_waiting(self) -> list[str]:
        return [sid for sid, state in self._series.items() if state.pending is not None]
