"""The default thumbnail of a series kept as an Orthanc attachment of that series.

An attachment outlives a restart and is shared by every Orthanc node on the same index and
storage. Its bytes start with a header naming what they were rendered from (the ETag, which
covers instance, frame, size, format, quality, file contents and rendering version); a read
whose header differs from the current choice is ignored, so even an attachment that escaped
invalidation (a change while Orthanc was stopped, another node's write) is never served stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ._kit import HostError, NotFound, OrthancHost, quote_id

MAGIC = b"orthanc-series-thumbnail 1\n"
_REMEMBERED_SERIES = 10_000


def encode(key: str, body: bytes) -> bytes:
    return MAGIC + key.encode("ascii") + b"\n" + body


def decode(stored: bytes, key: str) -> bytes | None:
    """The image bytes when `stored` was written for `key`, else None."""
    expected = MAGIC + key.encode("ascii") + b"\n"
    return stored[len(expected) :] if stored.startswith(expected) else None


class AttachmentStore:
    """Reads, writes and removes one user-defined attachment per series."""

    def __init__(self, host: OrthancHost, name: str, index: int) -> None:
        self._host = host
        self.name = name
        self.index = index
        # What this process wrote last per series: a second write of the same is skipped.
        self._written: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._counts = {"Loaded": 0, "Stored": 0, "Removed": 0, "Ignored": 0}

    def load(self, series_id: str, key: str) -> bytes | None:
        """The stored thumbnail when it was rendered for `key`; None when absent or another."""
        try:
            stored = self._host.get(self._uri(series_id) + "/data")
        except HostError:
            return None  # none stored (or the series is gone)
        body = decode(stored, key)
        self._count("Loaded" if body is not None else "Ignored")
        if body is not None:
            self._remember(series_id, key)
        return body

    def save(self, series_id: str, key: str, body: bytes) -> None:
        with self._lock:
            if self._written.get(series_id) == key:
                return
        try:
            self._host.put_attachment(self._uri(series_id), encode(key, body))
        except HostError as error:
            self._host.log_warning(
                f"series-thumbnail: cannot store the thumbnail of series {series_id}: {error}"
            )
            return
        self._remember(series_id, key)
        self._count("Stored")

    def holds(self, series_id: str, key: str) -> bool:
        """Whether this process stored (or read) the series' thumbnail for `key`."""
        with self._lock:
            return self._written.get(series_id) == key

    def remove(self, series_id: str) -> None:
        """Drop the series' stored thumbnail (it shows a choice that no longer holds)."""
        with self._lock:
            self._written.pop(series_id, None)
        try:
            self._host.delete_attachment(self._uri(series_id))
        except NotFound:
            return  # none stored, or the series is gone with its attachments
        except HostError as error:
            self._host.log_warning(
                f"series-thumbnail: cannot remove the thumbnail of series {series_id}: {error}"
            )
            return
        self._count("Removed")

    def stats(self) -> dict[str, int | str | bool]:
        with self._lock:
            return {"Enabled": True, "Name": self.name, "Index": self.index, **self._counts}

    def _uri(self, series_id: str) -> str:
        return f"/series/{quote_id(series_id)}/attachments/{self.name}"

    def _remember(self, series_id: str, key: str) -> None:
        with self._lock:
            self._written[series_id] = key
            self._written.move_to_end(series_id)
            while len(self._written) > _REMEMBERED_SERIES:
                self._written.popitem(last=False)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1
