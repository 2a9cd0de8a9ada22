"""The configured tags of stored-instance events, taken while Orthanc stores the instance.

When stored-instance events are not throttled, every stored instance is published, and reading
its tags afterwards (`GET /instances/{id}/tags`) is a lookup in Orthanc's index plus a parse of
the file. Orthanc's on-stored-instance callback hands over the parsed instance instead: its JSON
costs the same on every Orthanc, where from Orthanc 1.12.5 on the lookup's cost grows with an
SQLite index (the plugin decides where the cache is used, see plugin.py).

A cache, never the source of events: the change log stays that. An instance with nothing here
(stored before a restart or on another node, evicted, or a configured value too long for
Orthanc's JSON, which the REST path reads raw) has its tags read through the REST API as before.
With a throttle, most instances are never published, so nothing is captured: the callback would
cost every instance what the REST read costs only the published ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .tags import select_instance_tags

# About 400 bytes per entry with three short tags (8 MiB in all); anything older is read again.
CAPACITY = 20_000


class _TooLong(Exception):
    """A configured value Orthanc's JSON leaves out: the REST path reads it raw."""


def _refuse_raw(_group_element: str) -> bytes:
    raise _TooLong


class StoredInstanceTags:
    """Instance id -> its configured tags, filled by Orthanc's on-stored-instance callback."""

    def __init__(
        self,
        wanted: Iterable[str],
        skipped_origins: Iterable[int] = (),
        capacity: int = CAPACITY,
    ) -> None:
        self._wanted = tuple(wanted)
        self._skipped = frozenset(skipped_origins)
        self._capacity = capacity
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.captured = 0

    def on_stored_instance(self, dicom: Any, instance_id: str) -> None:
        """Orthanc's callback, on the storing thread: must never raise into the store."""
        try:
            if dicom.GetInstanceOrigin() in self._skipped:
                return  # its event is never published
            full: Mapping[str, Any] = json.loads(dicom.GetInstanceJson())
            selected = select_instance_tags(full, self._wanted, _refuse_raw)
        except Exception:  # _TooLong, or anything Orthanc could not give: the REST path reads it
            return
        with self._lock:
            self._entries.pop(instance_id, None)  # stored again: the newest, at the end
            self._entries[instance_id] = selected
            if len(self._entries) > self._capacity:
                del self._entries[next(iter(self._entries))]
            self.captured += 1

    def get(self, instance_id: str) -> dict[str, Any] | None:
        """The tags captured when the instance was stored, or None. Kept after the read: a page
        that failed to publish is built again."""
        with self._lock:
            selected = self._entries.get(instance_id)
        return dict(selected) if selected is not None else None

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._entries.pop(instance_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def origin_codes(orthanc: Any, names: Iterable[str]) -> frozenset[int]:
    """`orthanc.InstanceOrigin` values of origin names (the configuration's spelling)."""
    origins = orthanc.InstanceOrigin
    return frozenset(int(getattr(origins, name)) for name in names if hasattr(origins, name))
