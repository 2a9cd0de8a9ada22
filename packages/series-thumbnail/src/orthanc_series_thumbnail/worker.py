"""Reacts to Orthanc's changes off Orthanc's threads, coalescing repeated changes per series."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

from ._kit import BackgroundThread, OrthancHost

_STOP_TIMEOUT_SECONDS = 5.0
# The work for a stable series (choose, store the choice, pre-render) waits for a pause in
# Orthanc's changes, at most this long per series. Orthanc 1.12+ (Python plugin 5+) delivers
# changes from one queue and, on SIGTERM, delivers what is queued before ORTHANC_STOPPED; with
# that work running alongside, 20,000 queued changes took 14-28 s to deliver, 3 s without it.
QUIET_SECONDS = 0.05
MOST_WAIT_SECONDS = 1.0
# A metadata or attachment update of a series this worker just wrote to is the echo of its own
# write, not Orthanc's activity: counted, each queued series would wait a whole pause after the
# previous one's writes. Echoes come within moments; a late one only costs one pause.
ECHO_SECONDS = 5.0
_ECHO_SERIES = 10_000


class SeriesTask(Enum):
    CHANGED = "changed"  # forget the choice (clear metadata)
    STABLE = "stable"  # choose, persist, pre-render
    STORE = "store"  # store the default thumbnail a request rendered for a stable series


class ChangeWorker:
    """One background thread; pending work is at most one entry per series or instance."""

    def __init__(
        self,
        host: OrthancHost,
        on_changed: Callable[[str], None],
        on_stable: Callable[[str], None],
        on_instance_deleted: Callable[[str], None],
        on_store: Callable[[str], None] = lambda series_id: None,
    ) -> None:
        self._host = host
        self._handlers = {
            SeriesTask.CHANGED: on_changed,
            SeriesTask.STABLE: on_stable,
            SeriesTask.STORE: on_store,
        }
        self._on_instance_deleted = on_instance_deleted
        self._series: OrderedDict[str, list[SeriesTask]] = OrderedDict()
        self._deleted_instances: list[str] = []
        self._condition = threading.Condition()
        self._thread = BackgroundThread(host, "series-thumbnail", self._run)
        self._busy = False
        self._last_change = float("-inf")
        self._written: OrderedDict[str, float] = OrderedDict()  # series -> echoes expected until

    def note_change(self) -> None:
        """Orthanc signalled a change (the change callback's first step)."""
        self._last_change = time.monotonic()

    def last_activity(self) -> float:
        """When Orthanc last signalled a change that counts as activity (`time.monotonic()`)."""
        return self._last_change

    def note_update(self, series_id: str) -> None:
        """Orthanc signalled a metadata or attachment update of a series: activity, unless it
        echoes this worker's own write."""
        now = time.monotonic()
        with self._condition:
            own = self._written.get(series_id, float("-inf")) >= now
        if not own:
            self._last_change = now

    def series_changed(self, series_id: str) -> None:
        # A change after "stable" means the series is unstable again: only the reset remains.
        self._submit(series_id, [SeriesTask.CHANGED])

    def series_stable(self, series_id: str) -> None:
        self._add(series_id, SeriesTask.STABLE)

    def store_requested(self, series_id: str) -> None:
        """A request rendered a stable series' default thumbnail that is not stored yet."""
        self._add(series_id, SeriesTask.STORE)

    def _add(self, series_id: str, task: SeriesTask) -> None:
        with self._condition:
            tasks = self._series.get(series_id, [])
            if task not in tasks:
                self._series[series_id] = [*tasks, task]
            self._condition.notify()

    def instance_deleted(self, instance_id: str) -> None:
        with self._condition:
            self._deleted_instances.append(instance_id)
            self._condition.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        """Stop after the current task; pending work is dropped (metadata heals on next request)."""
        return self._thread.stop(_STOP_TIMEOUT_SECONDS, wake=self._wake)

    def _wake(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no work is pending (for tests and benchmarks)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._series and not self._deleted_instances and not self._busy,
                timeout,
            )

    def pending(self) -> int:
        with self._condition:
            return len(self._series) + len(self._deleted_instances)

    def _submit(self, series_id: str, tasks: list[SeriesTask]) -> None:
        with self._condition:
            self._series[series_id] = tasks
            self._series.move_to_end(series_id)
            self._condition.notify()

    def _run(self) -> None:
        stopping = self._thread.stopping
        while True:
            with self._condition:
                self._busy = False
                self._condition.notify_all()
                self._condition.wait_for(
                    lambda: stopping.is_set() or bool(self._series) or bool(self._deleted_instances)
                )
                if stopping.is_set():
                    return
                self._busy = True
                deleted, self._deleted_instances = self._deleted_instances, []
                work = self._series.popitem(last=False) if self._series else None
            for instance_id in deleted:
                self._guarded(
                    f"deleted instance {instance_id}", self._on_instance_deleted, instance_id
                )
            if work is not None:
                series_id, tasks = work
                if SeriesTask.STABLE in tasks or SeriesTask.STORE in tasks:
                    self._wait_for_quiet(stopping)
                self._expect_echoes(series_id)  # echoes may come while the tasks still run
                for task in tasks:
                    self._guarded(
                        f"{task.value} series {series_id}", self._handlers[task], series_id
                    )
                self._expect_echoes(series_id)

    def _expect_echoes(self, series_id: str) -> None:
        with self._condition:
            self._written[series_id] = time.monotonic() + ECHO_SECONDS
            self._written.move_to_end(series_id)
            while len(self._written) > _ECHO_SERIES:
                self._written.popitem(last=False)

    def _wait_for_quiet(self, stopping: threading.Event) -> None:
        deadline = time.monotonic() + MOST_WAIT_SECONDS
        while not stopping.is_set():
            now = time.monotonic()
            quiet_for = now - self._last_change
            if quiet_for >= QUIET_SECONDS or now >= deadline:
                return
            stopping.wait(min(QUIET_SECONDS - quiet_for, deadline - now))

    def _guarded(self, what: str, action: Callable[[str], None], resource_id: str) -> None:
        try:
            action(resource_id)
        except Exception as error:
            self._host.log_warning(f"series-thumbnail: {what}: {error!r}")
