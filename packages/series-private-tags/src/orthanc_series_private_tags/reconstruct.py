"""Progress of the backfill that fills series stored before the plugin (or a tag) was configured.

Only bookkeeping lives here; the worker thread does the reading. A stopped run keeps its remaining
series, so starting again resumes it; a finished one starts over.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

MAX_REPORTED_ERRORS = 100


class State(StrEnum):
    IDLE = "Idle"
    RUNNING = "Running"
    STOPPED = "Stopped"
    DONE = "Done"


class Reconstruction:
    """Which series remain to be reconstructed, and how far the run has come."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = State.IDLE
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._done = 0
        self._total = 0
        self._error_count = 0
        self._errors: deque[dict[str, str]] = deque(maxlen=MAX_REPORTED_ERRORS)

    def start(self, all_series: Iterable[str]) -> None:
        """Resume a stopped run, keep a running one, or start over with every series."""
        with self._lock:
            if self._state is State.RUNNING:
                return
            if self._state is State.STOPPED and self._pending:
                self._state = State.RUNNING
                return
            self._reset()
            self._enqueue(all_series)
            self._state = State.RUNNING if self._pending else State.DONE

    def add(self, series_id: str) -> None:
        """Reconstruct one more series (within the current run, which resumes if stopped)."""
        with self._lock:
            if self._state in (State.IDLE, State.DONE):
                self._reset()
            self._enqueue([series_id])
            self._state = State.RUNNING

    def stop(self) -> None:
        """Pause: the remaining series are kept for the next start."""
        with self._lock:
            if self._state is State.RUNNING:
                self._state = State.STOPPED

    def next_series(self) -> str | None:
        """The next series to work on, or None when there is nothing to do now."""
        with self._lock:
            if self._state is not State.RUNNING:
                return None
            if not self._pending:
                self._state = State.DONE
                return None
            series_id = self._pending.popleft()
            self._queued.discard(series_id)
            return series_id

    def finished(self, series_id: str, error: str | None = None) -> None:
        """Record one series as handled, with the error that stopped it if any."""
        with self._lock:
            self._done += 1
            if error is not None:
                self._error_count += 1
                self._errors.append({"Series": series_id, "Error": error})
            if self._state is State.RUNNING and not self._pending:
                self._state = State.DONE

    def is_running(self) -> bool:
        with self._lock:
            return self._state is State.RUNNING

    def progress(self) -> dict[str, Any]:
        """What `GET /with-private-tags/reconstruct` reports."""
        with self._lock:
            return {
                "State": self._state.value,
                "Done": self._done,
                "Total": self._total,
                "Remaining": len(self._pending),
                "ErrorCount": self._error_count,
                "Errors": list(self._errors),
            }

    def _reset(self) -> None:
        self._pending.clear()
        self._queued.clear()
        self._done = self._total = self._error_count = 0
        self._errors.clear()

    def _enqueue(self, series_ids: Iterable[str]) -> None:
        for series_id in series_ids:
            if series_id not in self._queued:
                self._queued.add(series_id)
                self._pending.append(series_id)
                self._total += 1
