"""Helpers shared by the unit tests of orthanc-dicom-events."""

from __future__ import annotations

from typing import Any


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
