"""Counters the worker keeps and what `GET /dicom-events/status` and the metrics show."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

METRIC_PREFIX = "orthanc_dicom_events_"


@dataclass(slots=True)
class Counters:
    broker_state: str = "starting"
    last_published_seq: int = 0
    log_end_seq: int = 0
    spooled_deletions: int = 0
    throttled_waiting: int = 0
    published: int = 0
    failed_attempts: int = 0
    unroutable: int = 0
    start_failures: int = 0
    dead_letters: int = 0
    last_dead_letter: dict[str, str] | None = None
    last_error: str | None = None


class Status:
    """Thread-safe counters: written by the publisher thread, read by the REST route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = Counters()

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._counters, key, value)

    def add(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                setattr(self._counters, key, getattr(self._counters, key) + value)

    def snapshot(self) -> Counters:
        with self._lock:
            return Counters(**asdict(self._counters))


def backlog(counters: Counters) -> int:
    """Changes not yet published plus deletions waiting in the spool."""
    return max(0, counters.log_end_seq - counters.last_published_seq) + counters.spooled_deletions


def as_json(counters: Counters) -> dict[str, Any]:
    return {
        "State": counters.broker_state,
        "LastPublishedSequence": counters.last_published_seq,
        "LastChangeSequence": counters.log_end_seq,
        "Backlog": backlog(counters),
        "SpooledDeletions": counters.spooled_deletions,
        "ThrottledWaiting": counters.throttled_waiting,
        "Published": counters.published,
        "Failed": counters.failed_attempts,
        "Unroutable": counters.unroutable,
        "StartFailures": counters.start_failures,
        "DeadLetters": counters.dead_letters,
        "LastDeadLetter": counters.last_dead_letter,
        "LastError": counters.last_error,
    }


def metrics(counters: Counters) -> dict[str, float]:
    """Values for orthanc.SetMetricsValue (shown by /tools/metrics-prometheus)."""
    return {
        METRIC_PREFIX + "published_total": counters.published,
        METRIC_PREFIX + "failed_total": counters.failed_attempts,
        METRIC_PREFIX + "unroutable_total": counters.unroutable,
        METRIC_PREFIX + "start_failures_total": counters.start_failures,
        METRIC_PREFIX + "dead_letters_total": counters.dead_letters,
        METRIC_PREFIX + "backlog": backlog(counters),
        METRIC_PREFIX + "last_published_sequence": counters.last_published_seq,
        METRIC_PREFIX + "broker_connected": 1.0 if counters.broker_state == "connected" else 0.0,
    }
