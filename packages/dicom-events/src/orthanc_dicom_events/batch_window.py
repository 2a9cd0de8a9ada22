"""How long the publisher gathers changes after one wakes it: short when changes trickle in,
longer while Orthanc stores a burst.

Every round (read a page of the change log, describe its resources, publish, wait for the
broker's confirms, move the cursor) costs about the same whatever it carries, so under a steady
ingest of hundreds of instances a second, rounds of a few changes spent most of the publisher's
CPU on that fixed part. The window doubles after each round that found the log busy and falls
back to the configured minimum as soon as one did not: a trickle keeps the low latency of the
minimum, a burst is published in fewer, larger rounds.
"""

from __future__ import annotations

# A round that read at least this many changes found Orthanc busy storing (about 1.5 changes
# per stored instance: at 100 instances/s a 50 ms window gathers 7 or 8).
BUSY_ROUND_CHANGES = 24


class BatchWindow:
    def __init__(self, minimum_ms: int, maximum_ms: int) -> None:
        self._minimum = minimum_ms / 1000
        self._maximum = max(minimum_ms, maximum_ms) / 1000
        self._current = self._minimum
        self._changes = 0

    def read(self, changes: int) -> None:
        """Changes read from the log since the last wait."""
        self._changes += changes

    def next_seconds(self) -> float:
        """The wait for the round that starts now; the count starts again."""
        if self._changes >= BUSY_ROUND_CHANGES:
            self._current = min(self._maximum, self._current * 2)
        else:
            self._current = self._minimum
        self._changes = 0
        return self._current
