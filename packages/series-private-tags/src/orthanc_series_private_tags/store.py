"""Series metadata `SeriesPrivateTags`, mirrored in memory so a listing needs no call per series.

Orthanc 1.10 cannot return metadata in bulk, so the plugin keeps a copy: filled at start-up, updated
by every write the plugin makes, dropped when a series is deleted or its metadata changed by
someone else, and read lazily for any series not mirrored yet. The mirror is only ever a copy of
what Orthanc holds, never the other way round.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ._kit import NotFound, OrthancHost, quote_id
from .config import PrivateTag
from .merge import SeriesValues, is_complete, parse_metadata, to_metadata


@dataclass(frozen=True, slots=True)
class SeriesEntry:
    """What the plugin knows of one series: its values and their JSON, ready to splice."""

    values: SeriesValues
    json: bytes
    complete: bool


class SeriesTagStore:
    """Reads and writes the metadata of each series, through an in-memory mirror."""

    def __init__(self, host: OrthancHost, metadata_name: str, tags: Sequence[PrivateTag]) -> None:
        self._host = host
        self._metadata_name = metadata_name
        self._tags = tuple(tags)
        self._lock = threading.Lock()
        self._entries: dict[str, SeriesEntry] = {}
        # Our own writes come back as UPDATED_METADATA changes: those echoes need no re-read.
        self._own_writes: dict[str, int] = {}
        # Bumped by every change, so a lazy read that raced with one does not cache stale data.
        self._generation = 0
        self._empty = self._entry({})

    def _entry(self, values: SeriesValues) -> SeriesEntry:
        kept = {tag.name: values[tag.name] for tag in self._tags if values.get(tag.name)}
        return SeriesEntry(kept, json.dumps(kept).encode(), is_complete(kept, self._tags))

    def _metadata_uri(self, series_id: str) -> str:
        return f"/series/{quote_id(series_id)}/metadata/{self._metadata_name}"

    def _read(self, series_id: str) -> SeriesEntry:
        # All metadata at once: a series without ours yet is then not an error to handle.
        try:
            uri = f"/series/{quote_id(series_id)}/metadata?expand"
            metadata = json.loads(self._host.get(uri))
        except NotFound:
            metadata = {}  # no such series: nothing to serve
        text = metadata.get(self._metadata_name) if isinstance(metadata, dict) else None
        return self._entry(parse_metadata(text if isinstance(text, str) else None))

    def get(self, series_id: str) -> SeriesEntry:
        """The series' entry from the mirror, read from Orthanc when not mirrored yet."""
        # A dict read is atomic: the hit, by far the common case, needs no lock.
        entry = self._entries.get(series_id)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._entries.get(series_id)
            generation = self._generation
        if entry is not None:
            return entry
        entry = self._read(series_id)
        with self._lock:
            if self._generation == generation:
                self._entries.setdefault(series_id, entry)
        return entry

    def mirrored_entry(self, series_id: str) -> SeriesEntry | None:
        """The series' entry if mirrored, without asking Orthanc."""
        return self._entries.get(series_id)

    def refresh(self, series_id: str) -> SeriesEntry:
        """Re-read one series from Orthanc (its metadata may have been changed by someone else)."""
        with self._lock:
            self._generation += 1
            self._entries.pop(series_id, None)
        return self.get(series_id)

    def metadata_changed(self, series_id: str) -> None:
        """Orthanc reported a metadata change: re-read, unless it is the echo of our own write.

        Orthanc keeps the last write, and this re-reads after whichever echo comes last, so the
        mirror ends equal to Orthanc even when someone else writes at the same time.
        """
        with self._lock:
            pending = self._own_writes.get(series_id, 0)
            if pending:
                if pending == 1:
                    del self._own_writes[series_id]
                else:
                    self._own_writes[series_id] = pending - 1
                return
        self.refresh(series_id)

    def write(self, series_id: str, values: SeriesValues) -> SeriesEntry:
        """Store the values as the series' metadata, then mirror them; NotFound if it is gone."""
        entry = self._entry(values)
        self._host.put_metadata(self._metadata_uri(series_id), to_metadata(entry.values).encode())
        with self._lock:
            self._generation += 1
            self._entries[series_id] = entry
            self._own_writes[series_id] = self._own_writes.get(series_id, 0) + 1
        return entry

    def created(self, series_id: str) -> None:
        """Orthanc reported a new series: it has no metadata yet, so there is nothing to read."""
        with self._lock:
            # Only when absent: the worker may already have written values for it.
            self._entries.setdefault(series_id, self._empty)

    def forget(self, series_id: str) -> None:
        """Drop a deleted series from the mirror."""
        with self._lock:
            self._generation += 1
            self._entries.pop(series_id, None)
            self._own_writes.pop(series_id, None)

    def mirrored(self) -> int:
        with self._lock:
            return len(self._entries)
