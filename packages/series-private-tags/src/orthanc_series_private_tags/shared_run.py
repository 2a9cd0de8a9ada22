"""One reconstruct at a time among Orthanc nodes sharing an index and a storage folder.

Nodes on one PostgreSQL index also share Orthanc's storage folder, the one place besides the
database that every node reaches (a plugin's global properties are kept per node). There:
- `reconstruct.lock`: the node running a reconstruct holds an exclusive `flock` on it for the
  whole run; the kernel (or the NFS server) releases it when that process ends, however it ends;
- `reconstruct.json`: that run's progress, written by it (atomically, at most twice a second and at
  each state change) and read by the other nodes' `GET /with-private-tags/reconstruct`;
- `reconstruct.stop`: a stop asked through another node, seen by the running one between series.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from typing import IO, Any

FOLDER = "series-private-tags"
PUBLISH_SECONDS = 0.5


class SharedRun:
    """The lock, the progress file and the stop request of the reconstruct in `folder`."""

    def __init__(self, folder: str, node: str) -> None:
        self.folder = folder
        self.node = node
        self._lock_file: IO[bytes] | None = None
        self._published_at = float("-inf")
        os.makedirs(folder, exist_ok=True)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    @property
    def claimed(self) -> bool:
        return self._lock_file is not None

    def claim(self) -> bool:
        """Take the lock for a run on this node; False when another node runs one."""
        if self._lock_file is not None:
            return True
        handle = open(self._path("reconstruct.lock"), "ab")  # noqa: SIM115 (held for the run)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path("reconstruct.stop"))  # an old request is not for this run
        return True

    def release(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            handle.close()  # closing drops the flock

    def running_elsewhere(self) -> bool:
        """True while some node holds the lock (this one excepted)."""
        if self._lock_file is not None:
            return False
        try:
            with open(self._path("reconstruct.lock"), "ab") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        return False

    def publish(self, progress: dict[str, Any], force: bool = False) -> None:
        """Write this node's progress for the others (throttled unless `force`)."""
        now = time.monotonic()
        if not force and now - self._published_at < PUBLISH_SECONDS:
            return
        self._published_at = now
        record = {**progress, "Node": self.node, "UpdatedAt": time.time()}
        temporary = self._path(f"reconstruct.json.{os.getpid()}")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(temporary, self._path("reconstruct.json"))

    def read(self) -> dict[str, Any] | None:
        """The last progress a node published; a run whose node died reads as interrupted."""
        try:
            with open(self._path("reconstruct.json"), encoding="utf-8") as handle:
                record = json.load(handle)
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(record, dict):
            return None
        if record.get("State") == "Running" and not self.running_elsewhere():
            record["State"] = "Stopped"
            record["Interrupted"] = True  # its node ended without finishing: start it again
        return record

    def request_stop(self) -> None:
        with open(self._path("reconstruct.stop"), "w", encoding="utf-8") as handle:
            handle.write(self.node)

    def stop_requested(self) -> bool:
        """A stop asked through another node (taken: asked once, seen once)."""
        try:
            os.remove(self._path("reconstruct.stop"))
        except FileNotFoundError:
            return False
        return True
