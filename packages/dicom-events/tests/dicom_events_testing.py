"""Helpers shared by the unit tests of orthanc-dicom-events."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from orthanc_dicom_events.envelope import OutgoingEvent
from orthanc_dicom_events.publishers import PublishError, Refusal


def base_config(**events: Any) -> dict[str, Any]:
    """An Orthanc configuration with a valid RabbitMQ `DicomEvents` section."""
    return {
        "Name": "UnitOrthanc",
        "DicomEvents": {
            "Events": events,
            "Broker": {
                "Type": "rabbitmq",
                "RabbitConfig": {"URL": "amqp://user:s3cret@127.0.0.1:5672/", "Exchange": "dicom"},
            },
        },
    }


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll until `predicate()` is true (the publisher runs on its own thread)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class MemoryPublisher:
    """An in-memory broker: records events; `fail_next(n)` or `down = True` simulate an outage."""

    def __init__(self) -> None:
        self.events: list[OutgoingEvent] = []
        self.down = False
        self.calls = 0
        self._failures_left = 0
        self._lock = threading.Lock()
        self.closed = False
        self.refuse: dict[str, str] = {}  # event type -> reason the broker gives for good

    def fail_next(self, count: int) -> None:
        self._failures_left = count

    def publish(self, events: Sequence[OutgoingEvent]) -> list[Refusal]:
        with self._lock:
            self.calls += 1
            if self.down or self._failures_left > 0:
                self._failures_left = max(0, self._failures_left - 1)
                raise PublishError("broker unreachable (simulated)")
            refused = [Refusal(e.id, self.refuse[e.type]) for e in events if e.type in self.refuse]
            refused_ids = {refusal.event_id for refusal in refused}
            self.events.extend(e for e in events if e.id not in refused_ids)
            return refused

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
