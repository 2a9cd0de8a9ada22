"""Turns changes of Orthanc's log and spooled deletions into CloudEvents."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import changes as ch
from ._kit import HostError, NotFound, quote_id
from .config import DicomEventsConfig
from .envelope import (
    OutgoingEvent,
    log_event_id,
    make_event,
    orthanc_date_to_rfc3339,
    spool_event_id,
    utc_now_rfc3339,
)
from .events import DELETED_TYPES, STABLE_TYPES, EventType, enabled_types
from .resources import ResourceReader
from .spool import DeadLetter, SpooledDeletion
from .stored_tags import StoredInstanceTags
from .tags import cut_long_values, select_instance_tags, select_main_tags
from .throttle import SeriesThrottle

# Instance metadata `Origin` as Orthanc stores it -> the names of orthanc.InstanceOrigin.
ORIGIN_NAMES = {
    "Unknown": "UNKNOWN",
    "DicomProtocol": "DICOM_PROTOCOL",
    "RestApi": "REST_API",
    "Plugins": "PLUGIN",
    "Lua": "LUA",
    "WebDav": "WEB_DAV",
}
_OPTIONAL_METADATA = {"RemoteAET": "remoteAet", "RemoteIP": "remoteIp", "CalledAET": "calledAet"}
_COLLECTIONS = {ch.SERIES: "series", ch.STUDY: "studies", ch.PATIENT: "patients"}
# Orthanc's errors about a stored file (InexistentFile, CorruptedFile, BadFileFormat, and
# RegularFileExpected, what Orthanc 1.10 says of a file missing from its storage): the change is
# tried again with the page a few times (a storage mount may come back), then given up on as a
# dead letter, so that one unreadable file never stalls the stream. Other errors retry forever.
FILE_ERRORS = frozenset({13, 14, 15, 2006})
FILE_ERROR_ATTEMPTS = 5


@dataclass(slots=True)
class StoredDraft:
    """A stored-instance event waiting for its `instanceCount` (and maybe for the throttle)."""

    change: ch.Change
    series_id: str
    study_id: str
    patient_id: str
    data: dict[str, Any]
    count: int = field(default=0)


Output = OutgoingEvent | StoredDraft


class EventBuilder:
    """Builds the events of one page of changes; holds the throttle's waiting items."""

    def __init__(
        self,
        config: DicomEventsConfig,
        reader: ResourceReader,
        identity: str,
        spool_identity: str,
        clock: Callable[[], float],
        stored_tags: StoredInstanceTags | None = None,
    ) -> None:
        self._config = config
        self._stored_tags = stored_tags
        self._selection = config.events
        self._types = enabled_types(config.events)
        self._reader = reader
        self._identity = identity
        self._spool_identity = spool_identity
        self._clock = clock
        self.throttle = self._empty_throttle()
        self._counts = InstanceCounter()
        # In a cluster, each node that received instances of a resource logs its own Stable*
        # change in the shared log: a repeat with no new instance since is not published.
        self._stable_once = config.cluster is not None and bool(
            self._types & set(STABLE_TYPES.values())
        )
        cluster = config.cluster
        self._repeats = StableRepeats(
            cluster.stable_age_seconds - cluster.clock_tolerance_seconds if cluster else 0
        )
        # Deleted events need the parents of instances, learnt while they were still stored.
        self._needs_instances = self._stable_once or bool(
            self._types & {EventType.INSTANCE_STORED, *DELETED_TYPES.values()}
        )
        self._page_instances: dict[str, dict[str, Any]] = {}
        self._file_failures: dict[int, int] = {}  # change seq -> failed attempts
        self.dead_letters: list[DeadLetter] = []  # of the last page built

    # -- one page ------------------------------------------------------------------------------

    def build(
        self, changes: Sequence[ch.Change], deletions: Sequence[SpooledDeletion]
    ) -> list[OutgoingEvent]:
        """Events of a page, in log order, deletions placed after the change they followed.

        Raises HostError when Orthanc could not answer (the page is then retried as a whole).
        """
        outputs: list[Output] = []
        self.dead_letters = []
        pending = sorted(deletions, key=lambda d: d.row)
        # A series created in this page starts from zero: counting it needs no request.
        self._counts.new_series = {c.resource_id for c in changes if c.change_type == ch.NEW_SERIES}
        self._page_instances = {}
        self._reader.forget_prefetched()
        if self._needs_instances:
            stored = [c.resource_id for c in changes if _is_new_instance(c)]
            self._page_instances = self._reader.describe_instances(stored)
        self._prefetch_stable(changes)
        for change in changes:
            while pending and pending[0].after_seq < change.seq:
                outputs.extend(self._from_deletion(pending.pop(0)))
            outputs.extend(self._from_change_or_give_up(change))
        for deletion in pending:
            outputs.extend(self._from_deletion(deletion))
        outputs.extend(self._refreshed(self.throttle.due()))
        return self._finish(outputs)

    def prime(self, changes: Sequence[ch.Change]) -> None:
        """Learn, from changes already published, which resources had their stable event since
        their last new instance (a node taking over the publishing reads back a little)."""
        if not self._stable_once:
            return
        stored = [c.resource_id for c in changes if _is_new_instance(c)]
        described = self._reader.describe_instances(stored)
        for change in changes:
            try:
                if _is_new_instance(change) and change.resource_id in described:
                    series_id = self._reader.series_of_instance(change.resource_id)
                    study_id, patient_id = self._reader.ancestors_of_series(series_id)
                    self._repeats.changed(change.date, series_id, study_id, patient_id)
                elif STABLE_TYPES.get(change.change_type or -1) is not None:
                    self._repeats.is_repeat(change)
            except NotFound:
                continue

    @property
    def repeated_stable_dropped(self) -> int:
        return self._repeats.dropped

    @property
    def premature_stable_dropped(self) -> int:
        return self._repeats.premature

    def flush_waiting(self) -> list[OutgoingEvent]:
        """Every item the throttle holds, now (at shutdown)."""
        return self._finish(self._refreshed(self.throttle.take_where(lambda _: True)))

    def earliest_waiting_seq(self) -> int | None:
        seqs = [draft.change.seq for draft in self.throttle.waiting()]
        return min(seqs) if seqs else None

    def reset_throttle(self) -> None:
        """Forget the waiting items and publish times: re-reading from the cursor rebuilds them."""
        self.throttle = self._empty_throttle()

    def _empty_throttle(self) -> SeriesThrottle[StoredDraft]:
        return SeriesThrottle(self._selection.stored_instance_throttle_ms / 1000, self._clock)

    def _prefetch_stable(self, changes: Sequence[ch.Change]) -> None:
        """The resources of the page's stable events: one bulk read per level, not one each."""
        for level, collection in _COLLECTIONS.items():
            ids = [
                c.resource_id
                for c in changes
                if c.level == level and STABLE_TYPES.get(c.change_type or -1) in self._types
            ]
            if len(ids) > 1:
                self._reader.prefetch(collection, ids)

    # -- changes of the log ---------------------------------------------------------------------

    def _from_change_or_give_up(self, change: ch.Change) -> list[Output]:
        try:
            return self._from_change(change)
        except HostError as error:
            self._give_up_or_raise(change, error)
            return []

    def _give_up_or_raise(self, change: ch.Change, error: HostError) -> None:
        """Re-raise `error` (the page is tried again), unless it is a file error seen too often:
        then the change becomes a dead letter."""
        if error.code not in FILE_ERRORS:
            raise error
        attempts = self._file_failures.get(change.seq, 0) + 1
        if attempts < FILE_ERROR_ATTEMPTS:
            self._file_failures[change.seq] = attempts
            raise error
        self._file_failures.pop(change.seq, None)
        event_type = (
            EventType.INSTANCE_STORED
            if _is_new_instance(change)
            else STABLE_TYPES.get(change.change_type or -1, EventType.INSTANCE_STORED)
        )
        reason = f"Orthanc could not read the stored file after {attempts} attempts: {error}"
        self.dead_letters.append(
            DeadLetter(
                log_event_id(self._identity, change.seq),
                event_type.value,
                change.resource_id,
                reason,
                utc_now_rfc3339(),
            )
        )

    def _from_change(self, change: ch.Change) -> list[Output]:
        try:
            if _is_new_instance(change):
                return self._stored_instance(change)
            event_type = STABLE_TYPES.get(change.change_type or -1)
            if event_type is not None and event_type in self._types:
                if self._stable_once and self._repeats.is_repeat(change):
                    return []
                return self._stable(change, event_type)
        except NotFound:
            return []  # deleted since: its own deleted event follows
        return []

    def _stored_instance(self, change: ch.Change) -> list[Output]:
        instance_id = change.resource_id
        metadata = self._page_instances.get(instance_id)
        if metadata is None:
            return []  # not needed, or deleted since: its own deleted event follows
        series_id = self._reader.series_of_instance(instance_id)  # learnt with the metadata
        study_id, patient_id = self._reader.ancestors_of_series(series_id)
        if self._stable_once:
            self._repeats.changed(change.date, series_id, study_id, patient_id)
        if EventType.INSTANCE_STORED not in self._types:
            return []
        count = self._counts.next(
            series_id, change.seq, lambda: self._series_instance_count(series_id)
        )
        origin = ORIGIN_NAMES.get(str(metadata.get("Origin", "")), "UNKNOWN")
        if origin in self._selection.stored_instance_skip_origins:
            return []
        data: dict[str, Any] = {
            "resourceType": "Instance",
            "resourceId": instance_id,
            "instanceId": instance_id,
            "patientId": patient_id,
            "studyId": study_id,
            "seriesId": series_id,
            "origin": origin,
        }
        for key, name in _OPTIONAL_METADATA.items():
            if metadata.get(key):
                data[name] = metadata[key]
        # Its tags are read when the event leaves (_finish): a throttled one may never leave.
        draft = StoredDraft(change, series_id, study_id, patient_id, data, count)
        outputs: list[Output] = []
        published = self.throttle.offer(series_id, draft)
        if published is not None:
            outputs.append(published)
        return outputs

    def _tags_of(self, draft: StoredDraft) -> dict[str, Any] | None:
        """The tags of a stored-instance event that leaves now; None when given up on."""
        try:
            return self._instance_tags(draft.change.resource_id)
        except NotFound:
            return {}  # deleted since it was stored: its deleted event follows
        except HostError as error:
            self._give_up_or_raise(draft.change, error)
            return None

    def _instance_tags(self, instance_id: str) -> dict[str, Any]:
        wanted = self._selection.stored_instance_tags
        if not wanted:
            return {}
        selected = self._stored_tags.get(instance_id) if self._stored_tags else None
        if selected is None:
            full = self._reader.get_json(f"/instances/{quote_id(instance_id)}/tags")

            def read_raw(group_element: str) -> bytes:
                uri = f"/instances/{quote_id(instance_id)}/content/{group_element}"
                return self._reader.raw(uri)

            selected = select_instance_tags(full, wanted, read_raw)
        return cut_long_values(selected, self._selection.tag_value_max_length)

    def _stable(self, change: ch.Change, event_type: EventType) -> list[Output]:
        level = change.level
        resource = self._reader.resource(_COLLECTIONS[level], change.resource_id)
        ids: dict[str, str] = {}
        if level == ch.SERIES:
            ids["studyId"], ids["patientId"] = self._reader.ancestors_of_series(change.resource_id)
            wanted = self._selection.stable_series_tags
            main = dict(resource.get("MainDicomTags", {}))
        elif level == ch.STUDY:
            ids["patientId"] = str(resource["ParentPatient"])
            wanted = self._selection.stable_study_tags
            main = {**resource.get("PatientMainDicomTags", {}), **resource.get("MainDicomTags", {})}
        else:
            wanted = self._selection.stable_patient_tags
            main = dict(resource.get("MainDicomTags", {}))
        data: dict[str, Any] = {
            "resourceType": ch.LEVEL_NAMES[level],
            "resourceId": change.resource_id,
            **ids,
            "tags": cut_long_values(
                select_main_tags(main, wanted), self._selection.tag_value_max_length
            ),
        }
        outputs: list[Output] = list(self._waiting_of(level, change.resource_id))
        # FIFO topics keep a study's events in order: series events go in their study's group.
        group = ids["studyId"] if level == ch.SERIES else change.resource_id
        outputs.append(
            make_event(
                event_id=log_event_id(self._identity, change.seq),
                source=self._config.source,
                event_type=event_type.value,
                subject=change.resource_id,
                time=orthanc_date_to_rfc3339(change.date),
                data=data,
                group=group,
                sequence=change.seq,
            )
        )
        return outputs

    def _waiting_of(self, level: int, resource_id: str) -> list[StoredDraft]:
        """Throttled items that must leave before an event about `resource_id`."""
        if not self.throttle.enabled:
            return []
        if level == ch.SERIES:
            item = self.throttle.take(resource_id)
            return self._refreshed([item] if item is not None else [])
        if level == ch.STUDY:
            taken = self.throttle.take_where(lambda draft: draft.study_id == resource_id)
        elif level == ch.PATIENT:
            taken = self.throttle.take_where(lambda draft: draft.patient_id == resource_id)
        else:
            taken = self.throttle.take_where(lambda d: d.data["instanceId"] == resource_id)
        return self._refreshed(taken)

    def _refreshed(self, drafts: list[StoredDraft]) -> list[StoredDraft]:
        """Throttled items leave with the series' count at the time they leave."""
        for draft in drafts:
            draft.count = max(draft.count, self._counts.current(draft.series_id))
        return drafts

    # -- deletions ------------------------------------------------------------------------------

    def _from_deletion(self, deletion: SpooledDeletion) -> list[Output]:
        event_type = DELETED_TYPES.get(deletion.level)
        if event_type is None or event_type not in self._types:
            return []
        ids = {
            key: value
            for key, value in (
                ("patientId", deletion.patient_id),
                ("studyId", deletion.study_id),
                ("seriesId", deletion.series_id),
            )
            if value
        }
        data: dict[str, Any] = {
            "resourceType": ch.LEVEL_NAMES[deletion.level],
            "resourceId": deletion.resource_id,
            **ids,
        }
        if deletion.level == ch.INSTANCE:
            data["instanceId"] = deletion.resource_id
        outputs: list[Output] = list(self._waiting_of(deletion.level, deletion.resource_id))
        if deletion.level == ch.INSTANCE and deletion.series_id:
            outputs.extend(self._waiting_of(ch.SERIES, deletion.series_id))
        group = deletion.study_id or (
            deletion.resource_id if deletion.level in (ch.STUDY, ch.PATIENT) else ""
        )
        outputs.append(
            make_event(
                event_id=spool_event_id(self._spool_identity, deletion.row),
                source=self._config.source,
                event_type=event_type.value,
                subject=deletion.resource_id,
                time=deletion.time,
                data=data,
                group=group or deletion.resource_id,
            )
        )
        return outputs

    # -- instanceCount --------------------------------------------------------------------------

    def _finish(self, outputs: Sequence[Output]) -> list[OutgoingEvent]:
        events: list[OutgoingEvent] = []
        for output in outputs:
            if isinstance(output, OutgoingEvent):
                events.append(output)
                continue
            tags = self._tags_of(output)
            if tags is None:
                continue  # its file stayed unreadable: a dead letter
            events.append(
                make_event(
                    event_id=log_event_id(self._identity, output.change.seq),
                    source=self._config.source,
                    event_type=EventType.INSTANCE_STORED.value,
                    subject=output.change.resource_id,
                    time=orthanc_date_to_rfc3339(output.change.date),
                    data={**output.data, "tags": tags, "instanceCount": max(1, output.count)},
                    group=output.study_id,
                    sequence=output.change.seq,
                )
            )
        return events

    def _series_instance_count(self, series_id: str) -> int:
        try:
            return len(self._reader.resource("series", series_id).get("Instances", []))
        except NotFound:
            return 0


def _is_new_instance(change: ch.Change) -> bool:
    return change.change_type == ch.NEW_INSTANCE and change.level == ch.INSTANCE


class InstanceCounter:
    """Instances stored so far per series, counted along the log (bounded, oldest forgotten).

    The count given to a change is remembered by its sequence number: a page read again (after
    a failed round) gets the same counts, so the same event id always carries the same payload.
    """

    def __init__(self, size: int = 10_000, remembered: int = 100_000) -> None:
        self._size = size
        self._counts: dict[str, int] = {}
        self._by_seq: dict[int, int] = {}
        self._remembered = remembered
        self.new_series: set[str] = set()

    def next(self, series_id: str, seq: int, fetch: Callable[[], int]) -> int:
        """The count including the instance of change `seq`."""
        known = self._by_seq.get(seq)
        if known is not None:
            return known
        if series_id in self._counts:
            count = self._counts.pop(series_id) + 1
        elif series_id in self.new_series:
            count = 1
        else:
            count = fetch()  # first sight of an older series: what Orthanc holds now
        self._counts[series_id] = count
        if len(self._counts) > self._size:
            del self._counts[next(iter(self._counts))]
        self._by_seq[seq] = count
        if len(self._by_seq) > self._remembered:
            del self._by_seq[next(iter(self._by_seq))]
        return count

    def current(self, series_id: str) -> int:
        return self._counts.get(series_id, 0)


class StableRepeats:
    """Which Stable* changes of the shared log not to publish (cluster mode).

    Each node tracks stability alone: it logs a Stable* change `StableAge` after the last
    instance *it* received. Two kinds are dropped:
    - a repeat: the resource's stable event was published and no instance of it came since;
    - a premature one: an instance of the resource, received by another node, is younger than
      `quiet_seconds` at the change's date (the resource was not quiet cluster-wide); the node
      that received that instance logs a later Stable* change of its own, which is published.
    Decisions are kept by sequence number, so a page read again gets the same answers (and the
    same event ids); every map is bounded, oldest forgotten.
    """

    def __init__(self, quiet_seconds: float = 0.0, size: int = 100_000) -> None:
        self._quiet = quiet_seconds
        self._size = size
        self._settled: dict[tuple[int, str], None] = {}
        self._last_instance: dict[tuple[int, str], float] = {}
        self._decisions: dict[int, bool] = {}
        self.dropped = 0
        self.premature = 0

    def is_repeat(self, change: ch.Change) -> bool:
        """True when the stable change must not be published."""
        known = self._decisions.get(change.seq)
        if known is not None:
            return known
        key = (change.level, change.resource_id)
        drop = True
        if key in self._settled:
            self.dropped += 1
        elif self._premature(key, change.date):
            self.premature += 1
        else:
            drop = False
            _bounded_put(self._settled, key, None, self._size)
        _bounded_put(self._decisions, change.seq, drop, self._size)
        return drop

    def changed(self, date: str, series_id: str, study_id: str, patient_id: str) -> None:
        """A new instance: its series, study and patient are no longer settled."""
        when = _epoch(date)
        for key in ((ch.SERIES, series_id), (ch.STUDY, study_id), (ch.PATIENT, patient_id)):
            self._settled.pop(key, None)
            if when is not None:
                self._last_instance.pop(key, None)
                _bounded_put(self._last_instance, key, when, self._size)

    def _premature(self, key: tuple[int, str], date: str) -> bool:
        last, when = self._last_instance.get(key), _epoch(date)
        return last is not None and when is not None and when - last < self._quiet


def _bounded_put(mapping: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    mapping[key] = value
    if len(mapping) > size:
        del mapping[next(iter(mapping))]


def _epoch(date: str) -> float | None:
    """Orthanc's `20240131T235959` (UTC) in seconds, None when unreadable."""
    try:
        return datetime.strptime(date, "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
