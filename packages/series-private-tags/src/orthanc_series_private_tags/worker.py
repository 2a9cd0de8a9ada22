"""The one background thread that reads DICOM files and writes series metadata.

Orthanc's callbacks only enqueue; this thread does the REST calls and the parsing, off Orthanc's
store path. Being the only writer, it cannot lose an update when two instances of one series
arrive together. It works in this order: changes (new instances, deleted series, metadata edited
by others), then the start-up mirroring of existing series, then the backfill, one series at a time
so that live ingest never waits long behind it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from ._kit import BackgroundThread, HostError, NotFound, OrthancHost, quote_id
from .config import PrivateTag
from .merge import SeriesValues, is_complete, merge
from .reader import DicomReadError, PrivateTagReader
from .reconstruct import Reconstruction
from .shared_run import SharedRun
from .storage import StorageFiles
from .store import SeriesTagStore

WARM_UP_CHUNK = 200
# New instances are handled in batches: one `POST /tools/bulk-content` names the series of up to
# this many, instead of one `GET /instances/{id}` each (every call competes with stores for the
# index). Waking up, the worker first lets a burst gather for BATCH_WINDOW_SECONDS.
CAPTURE_BATCH = 250
BATCH_WINDOW_SECONDS = 0.1
BULK_CONTENT = "/tools/bulk-content"
# An instance Orthanc could not serve (a transient error, a file missing from the storage) is tried
# again later, alone, this many times in all; a batch never fails as a whole.
CAPTURE_ATTEMPTS = 5
# Series of new instances as Orthanc signalled them, kept until the capture looks (bounded).
SERIES_HINTS = 100_000
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# On a shared index, how often the change log is read for metadata other nodes wrote: the most a
# listing on this node lags behind a capture made by another (plus one read of the series).
SHARED_LOG_POLL_SECONDS = 1.0
SHARED_LOG_PAGE = 1000


class Event(Enum):
    INSTANCE_STORED = "instance-stored"
    SERIES_DELETED = "series-deleted"
    SERIES_METADATA_CHANGED = "series-metadata-changed"
    SERIES_WRITTEN_ELSEWHERE = "series-written-elsewhere"


class _NewInstance(NamedTuple):
    instance_id: str
    series_id: str
    file_uuid: str | None = None  # where Orthanc's storage keeps it, when known
    file_size: int | None = None


@dataclass(frozen=True, slots=True)
class _Change:
    event: Event
    resource_id: str


class Worker:
    """Captures private tags of new instances and runs the backfill, on one thread."""

    def __init__(
        self,
        host: OrthancHost,
        store: SeriesTagStore,
        tags: Sequence[PrivateTag],
        reconstruction: Reconstruction,
        storage_settings: Mapping[str, Any] | None = None,
        shared_index: bool = False,
        shared_run: SharedRun | None = None,
    ) -> None:
        self._host = host
        self._storage_settings = dict(storage_settings or {})
        self.files: StorageFiles | None = None
        self._store = store
        self._tags = tuple(tags)
        self._reader = PrivateTagReader(self._tags)
        self.reconstruction = reconstruction
        self._wakeup = threading.Condition()
        self._changes: deque[_Change] = deque()
        self._to_warm_up: deque[str] = deque()
        self._attempts: dict[str, int] = {}  # instance -> failed captures so far
        self._deferred: list[tuple[float, str]] = []  # (due time, instance) to capture again
        self._thread = BackgroundThread(host, "series-private-tags", self._run)
        self.captured_instances = 0
        self.skipped_instances = 0
        self._bulk_supported = True
        self._series_hints: dict[str, str] = {}  # new instance -> its series, as signalled
        self._log_position: int | None = None  # in the shared change log (shared index only)
        self._shared_index = shared_index
        self._shared_run = shared_run
        self._next_log_poll = 0.0

    # Producers (Orthanc's threads): cheap, never block on I/O.

    def instance_stored(self, instance_id: str) -> None:
        self._push(_Change(Event.INSTANCE_STORED, instance_id))

    def instance_in_series(self, instance_id: str, series_id: str) -> None:
        """The series Orthanc signalled for a new instance (a hint: no lookup to skip it)."""
        with self._wakeup:
            self._series_hints[instance_id] = series_id
            while len(self._series_hints) > SERIES_HINTS:
                del self._series_hints[next(iter(self._series_hints))]

    def series_deleted(self, series_id: str) -> None:
        self._push(_Change(Event.SERIES_DELETED, series_id))

    def series_metadata_changed(self, series_id: str) -> None:
        self._push(_Change(Event.SERIES_METADATA_CHANGED, series_id))

    def wake(self) -> None:
        """New backfill work was queued."""
        with self._wakeup:
            self._wakeup.notify()

    def _push(self, change: _Change) -> None:
        with self._wakeup:
            self._changes.append(change)
            self._wakeup.notify()

    # Life cycle.

    def start(self) -> None:
        """Start the thread and mirror the series already stored (call once Orthanc has started)."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to finish its current item and wait for it, at most `timeout` seconds."""
        return self._thread.stop(timeout, wake=self.wake)

    def pending_changes(self) -> int:
        with self._wakeup:
            return len(self._changes)

    def _run(self) -> None:
        stopping = self._thread.stopping
        self._safely(self.open_storage)
        self._safely(self._queue_warm_up)
        while True:
            with self._wakeup:
                if not self._has_work():
                    self._wakeup.wait_for(
                        lambda: stopping.is_set() or self._has_work(), self._sleep_at_most()
                    )
                    self._wakeup.wait_for(stopping.is_set, BATCH_WINDOW_SECONDS)
                if stopping.is_set():
                    return
            if self._shared_index and time.monotonic() >= self._next_log_poll:
                self._next_log_poll = time.monotonic() + SHARED_LOG_POLL_SECONDS
                self._safely(self.follow_shared_log)
            self.run_pending(max_items=WARM_UP_CHUNK)

    def _sleep_at_most(self) -> float | None:
        retry = self._next_retry_in()
        if not self._shared_index:
            return retry
        poll = max(0.0, self._next_log_poll - time.monotonic())
        return poll if retry is None else min(retry, poll)

    def follow_shared_log(self) -> int:
        """Queue a re-read of each series whose metadata changed since the last look (another
        node's capture or reconstruct, which calls back only on that node); how many."""
        if self._log_position is None:
            self._log_position = int(json.loads(self._host.get("/changes?last"))["Last"])
            return 0
        series: dict[str, None] = {}
        while True:
            uri = f"/changes?since={self._log_position}&limit={SHARED_LOG_PAGE}"
            page = json.loads(self._host.get(uri))
            for change in page.get("Changes") or []:
                if change.get("ChangeType") == "UpdatedMetadata" and (
                    change.get("ResourceType") == "Series"
                ):
                    series[str(change["ID"])] = None
                self._log_position = max(self._log_position, int(change["Seq"]))
            if page.get("Done", True) or not page.get("Changes"):
                break
        with self._wakeup:
            self._changes.extend(_Change(Event.SERIES_WRITTEN_ELSEWHERE, s) for s in series)
        return len(series)

    def _has_work(self) -> bool:
        self._requeue_due_retries()
        return bool(self._changes or self._to_warm_up) or self.reconstruction.is_running()

    def _next_retry_in(self) -> float | None:
        if not self._deferred:
            return None
        return max(0.0, min(due for due, _ in self._deferred) - time.monotonic())

    def _requeue_due_retries(self) -> None:
        """Move the instances whose retry is due back to the queue (caller holds the lock)."""
        if not self._deferred:
            return
        now = time.monotonic()
        due = [instance for when, instance in self._deferred if when <= now]
        if due:
            self._deferred = [(when, i) for when, i in self._deferred if when > now]
            self._changes.extend(_Change(Event.INSTANCE_STORED, i) for i in due)

    def _capture_later(self, instance_ids: list[str], error: Exception) -> None:
        """Orthanc could not serve these instances now: try each again later, a few times."""
        now = time.monotonic()
        with self._wakeup:
            for instance_id in instance_ids:
                attempts = self._attempts.get(instance_id, 0) + 1
                if attempts >= CAPTURE_ATTEMPTS:
                    self._attempts.pop(instance_id, None)
                    self._host.log_error(
                        f"series-private-tags: instance {instance_id} not captured after"
                        f" {attempts} attempts ({error}); POST /with-private-tags/reconstruct"
                        " fills its series later"
                    )
                    continue
                self._attempts[instance_id] = attempts
                delay = min(RETRY_FIRST_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
                self._deferred.append((now + delay, instance_id))
        self._host.log_warning(
            f"series-private-tags: {len(instance_ids)} instance(s) to capture again: {error}"
        )

    def open_storage(self) -> None:
        """Decide whether stored files can be read directly (see storage.py)."""
        system = json.loads(self._host.get("/system"))
        self.files = StorageFiles.from_configuration(self._storage_settings, system)

    def _queue_warm_up(self) -> None:
        series_ids = json.loads(self._host.get("/series"))
        with self._wakeup:
            self._to_warm_up.extend(str(series_id) for series_id in series_ids)

    # The work itself; also called directly by tests, without the thread.

    def run_pending(self, max_items: int | None = None) -> int:
        """Handle queued changes first, then warm-up, then backfill; returns items handled."""
        handled = 0
        while max_items is None or handled < max_items:
            with self._wakeup:
                if self._thread.stopping.is_set() and self._thread.running:
                    break
                self._requeue_due_retries()
                change = self._changes.popleft() if self._changes else None
                stored: list[str] = []
                while change is not None and change.event is Event.INSTANCE_STORED:
                    stored.append(change.resource_id)
                    next_is_stored = self._changes and (
                        self._changes[0].event is Event.INSTANCE_STORED
                    )
                    if len(stored) >= CAPTURE_BATCH or not next_is_stored:
                        change = None
                    else:
                        change = self._changes.popleft()
                warm_up = None
                if change is None and not stored and self._to_warm_up:
                    warm_up = self._to_warm_up.popleft()
            if stored:
                self._safely(self._capture_all, stored)
            elif change is not None:
                self._safely(self._apply, change)
            elif warm_up is not None:
                self._safely(self._store.get, warm_up)
            else:
                shared = self._shared_run
                if shared is not None and shared.claimed and shared.stop_requested():
                    self.reconstruction.stop()  # asked through another node
                series_id = self.reconstruction.next_series()
                if series_id is None:
                    self._end_shared_run()
                    break
                self.reconstruction.finished(series_id, self._reconstruct(series_id))
                if shared is not None and shared.claimed:
                    shared.publish(self.reconstruction.progress())
            handled += 1
        return handled

    def _end_shared_run(self) -> None:
        """A run that finished or stopped: its last progress for the others, then the lock."""
        shared = self._shared_run
        if shared is None or not shared.claimed or self.reconstruction.is_running():
            return
        shared.publish(self.reconstruction.progress(), force=True)
        shared.release()

    def _safely(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except Exception as error:  # the thread must outlive any single bad item
            name = getattr(action, "__name__", repr(action))
            self._host.log_warning(f"series-private-tags: {name}{args}: {error!r}")

    def _apply(self, change: _Change) -> None:
        if change.event is Event.INSTANCE_STORED:
            self._capture_all([change.resource_id])
        elif change.event is Event.SERIES_DELETED:
            self._store.forget(change.resource_id)
        elif change.event is Event.SERIES_WRITTEN_ELSEWHERE:
            self._store.refresh(change.resource_id)
        else:
            self._store.metadata_changed(change.resource_id)

    def _capture_all(self, instance_ids: list[str]) -> None:
        """Read the instances of series still missing a tag, in order; one write per series.

        Of a series Orthanc signalled, the first instance goes first, alone: it usually carries
        every configured tag, and then the series' other instances of the batch are skipped
        without being looked up (a lookup's cost grows with the index on Orthanc 1.13).
        What Orthanc cannot serve now is captured again later, instance by instance: one
        failing call never costs the rest of the batch.
        """
        seen: set[str] = set()
        leaders: list[str] = []
        followers: list[tuple[str, str]] = []
        for instance_id, series_id in self._not_yet_complete(instance_ids):
            if series_id is not None and series_id in seen:
                followers.append((instance_id, series_id))
                continue
            leaders.append(instance_id)
            if series_id is not None:
                seen.add(series_id)
        merged: dict[str, SeriesValues] = {}
        read_for: dict[str, list[str]] = {}
        self._read_into(leaders, merged, read_for)
        rest = [i for i, series_id in followers if not self._known_complete(series_id, merged)]
        self._read_into(rest, merged, read_for)
        self._write(merged, read_for)

    def _known_complete(
        self, series_id: str, merged: dict[str, SeriesValues] | None = None
    ) -> bool:
        """Every configured tag known for the series: from this batch's merge, else from the
        mirror (no call to Orthanc); counts the instance as skipped when so."""
        values = (merged or {}).get(series_id)
        if values is None:
            entry = self._store.mirrored_entry(series_id)
            complete = entry is not None and entry.complete
        else:
            complete = is_complete(values, self._tags)
        if complete:
            self.skipped_instances += 1
        return complete

    def _read_into(
        self,
        instance_ids: list[str],
        merged: dict[str, SeriesValues],
        read_for: dict[str, list[str]],
    ) -> None:
        """Look the instances up in one call and merge what each one carries (no write)."""
        if not instance_ids:
            return
        try:
            instances = self._series_of(instance_ids)
        except HostError as error:
            self._capture_later(instance_ids, error)
            return
        for instance in instances:
            series_id = instance.series_id
            values = merged.get(series_id)
            try:
                if values is None:
                    values = self._store.get(series_id).values
            except HostError as error:
                self._capture_later([instance.instance_id], error)
                continue
            if is_complete(values, self._tags):
                self.skipped_instances += 1  # every tag known: no DICOM read
                continue
            try:
                found = self._read_instance(instance.instance_id, instance)
            except NotFound:
                continue  # deleted before we got to it
            except DicomReadError as error:
                message = f"series-private-tags: instance {instance.instance_id}: {error}"
                self._host.log_warning(message)
                continue
            except HostError as error:
                self._capture_later([instance.instance_id], error)
                continue
            self.captured_instances += 1
            self._attempts.pop(instance.instance_id, None)
            merged[series_id] = merge(values, found, self._tags)
            read_for.setdefault(series_id, []).append(instance.instance_id)

    def _write(self, merged: dict[str, SeriesValues], read_for: dict[str, list[str]]) -> None:
        """One write per series, of what the batch added."""
        for series_id, values in merged.items():
            try:
                if self._shared_index:
                    # Another node may have written this series since the mirror read it: what
                    # Orthanc holds now comes first, so its values are kept, ours only fill in.
                    values = merge(self._store.refresh(series_id).values, values, self._tags)
                if values != self._store.get(series_id).values:
                    self._store.write(series_id, values)
            except NotFound:
                continue  # the series is gone: nothing to keep
            except HostError as error:
                self._capture_later(read_for[series_id], error)

    def _not_yet_complete(self, instance_ids: list[str]) -> list[tuple[str, str | None]]:
        """Leave out, with no call to Orthanc, the instances whose series (as Orthanc signalled
        it) is known complete: in a long series, every instance after the first few. The others
        come with their signalled series, None when Orthanc signalled none."""
        with self._wakeup:
            hints = {i: self._series_hints.pop(i, None) for i in instance_ids}
        remaining: list[tuple[str, str | None]] = []
        for instance_id in instance_ids:
            series_id = hints[instance_id]
            if series_id is None or not self._known_complete(series_id):
                remaining.append((instance_id, series_id))
        return remaining

    def _series_of(self, instance_ids: list[str]) -> list[_NewInstance]:
        """The instances still stored, with their series (and file), in the given order."""
        if self._bulk_supported:
            body = {"Resources": instance_ids, "Level": "Instance", "Metadata": False}
            try:
                answer = json.loads(self._host.post(BULK_CONTENT, json.dumps(body).encode()))
            except NotFound:
                self._bulk_supported = False  # no such route before Orthanc 1.9.4
            else:
                described = {item.get("ID"): item for item in answer}
                return [
                    _NewInstance(
                        i,
                        str(described[i]["ParentSeries"]),
                        described[i].get("FileUuid"),
                        described[i].get("FileSize"),
                    )
                    for i in instance_ids
                    if described.get(i, {}).get("ParentSeries")
                ]
        found: list[_NewInstance] = []
        for instance_id in instance_ids:
            try:
                instance = json.loads(self._host.get(f"/instances/{quote_id(instance_id)}"))
            except NotFound:
                continue
            found.append(_NewInstance(instance_id, str(instance["ParentSeries"])))
        return found

    def _read_instance(self, instance_id: str, known: _NewInstance | None = None) -> SeriesValues:
        if known is not None and self.files is not None:
            data = self.files.read(known.file_uuid, known.file_size)
            if data is not None:
                return self._reader.read(data)
        return self._reader.read(self._host.get(f"/instances/{quote_id(instance_id)}/file"))

    def _reconstruct(self, series_id: str) -> str | None:
        """Fill one series from its instances; returns an error message or None."""
        try:
            entry = self._store.refresh(series_id)
            if entry.complete:
                return None
            series = json.loads(self._host.get(f"/series/{quote_id(series_id)}"))
            values = entry.values
            errors: list[str] = []
            for instance_id in series.get("Instances", []):
                try:
                    values = merge(values, self._read_instance(str(instance_id)), self._tags)
                except NotFound:
                    continue
                except DicomReadError as error:
                    errors.append(f"instance {instance_id}: {error}")
                    continue
                if is_complete(values, self._tags):
                    break
            if values != entry.values:
                self._store.write(series_id, values)
            return "; ".join(errors) or None
        except NotFound:
            return None  # deleted meanwhile: nothing left to fill
        except (HostError, ValueError, KeyError) as error:
            return str(error)
