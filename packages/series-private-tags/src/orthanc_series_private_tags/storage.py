"""Reads stored DICOM files straight from Orthanc's default filesystem storage, when that is safe.

Through the REST API (`GET /instances/{id}/file`) every read is also a lookup in Orthanc's index,
which stores wait for while it runs. Orthanc's built-in storage keeps a file of attachment `uuid` at
`StorageDirectory/uuid[0:2]/uuid[2:4]/uuid`, and `POST /tools/bulk-content` already gave the uuid
and size of each new instance, so the file can be read without asking Orthanc again.

Only used when nothing else could be in the way: no storage plugin, no storage compression. Each
read is checked (the file exists, has the size Orthanc recorded and starts like a DICOM file);
anything else returns None and the caller reads through the REST API. After many misses and no
hit, direct reads are given up for good (a relative `StorageDirectory` Orthanc resolved against
another directory than ours, for instance).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DICOM_MAGIC = slice(128, 132)
GIVE_UP_AFTER_MISSES = 20


class StorageFiles:
    """Direct, read-only access to the files of Orthanc's filesystem storage."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.enabled = True
        self.hits = 0
        self._misses = 0

    @classmethod
    def from_configuration(
        cls, orthanc_config: Mapping[str, Any], system: Mapping[str, Any]
    ) -> StorageFiles | None:
        """None when files may not be where the built-in storage puts them, or not as stored."""
        if system.get("StorageAreaPlugin") or orthanc_config.get("StorageCompression") is True:
            return None
        root = orthanc_config.get("StorageDirectory", "OrthancStorage")
        if not isinstance(root, str) or not root:
            return None
        return cls(os.path.abspath(root))

    def read(self, file_uuid: object, size: object) -> bytes | None:
        """The file's bytes, or None when they cannot be trusted to be that attachment."""
        if not self.enabled or not isinstance(file_uuid, str) or not _UUID.match(file_uuid):
            return None
        path = os.path.join(self.root, file_uuid[0:2], file_uuid[2:4], file_uuid)
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError:
            data = b""
        if len(data) != size or data[_DICOM_MAGIC] != b"DICM":
            self._missed()
            return None
        self.hits += 1
        return data

    def _missed(self) -> None:
        self._misses += 1
        if self.hits == 0 and self._misses >= GIVE_UP_AFTER_MISSES:
            self.enabled = False
