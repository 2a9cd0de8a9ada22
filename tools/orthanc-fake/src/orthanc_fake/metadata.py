"""Metadata names and numbers, as Orthanc 1.10 resolves them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .enums import ErrorCode
from .errors import orthanc_error

# Orthanc's MetadataType enumeration; resources list their metadata in this numeric order.
SYSTEM_METADATA: dict[str, int] = {
    "IndexInSeries": 1,
    "ReceptionDate": 2,
    "RemoteAET": 3,
    "ExpectedNumberOfInstances": 4,
    "ModifiedFrom": 5,
    "AnonymizedFrom": 6,
    "LastUpdate": 7,
    "Origin": 8,
    "TransferSyntax": 9,
    "SopClassUid": 10,
    "RemoteIP": 11,
    "CalledAET": 12,
    "HttpUsername": 13,
    "PixelDataOffset": 14,
}
FIRST_USER_METADATA = 1024
LAST_USER_METADATA = 65535


class MetadataNames:
    """Translates between metadata names (system or `UserMetadata`) and numbers."""

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        user = {
            str(name): int(number)
            for name, number in dict(configuration.get("UserMetadata") or {}).items()
        }
        self._numbers = {**SYSTEM_METADATA, **user}
        self._names = {number: name for name, number in self._numbers.items()}

    def number_of(self, name: str) -> int:
        """The number `name` stands for (a bare number is accepted), else INEXISTENT_ITEM."""
        if name in self._numbers:
            return self._numbers[name]
        if name.isdigit():
            return int(name)
        raise orthanc_error(ErrorCode.INEXISTENT_ITEM)

    def name_of(self, number: int) -> str:
        return self._names.get(number, str(number))

    def writable_number_of(self, name: str) -> int:
        """Number of a metadata that PUT/DELETE may change: only the user range."""
        number = self.number_of(name)
        if not FIRST_USER_METADATA <= number <= LAST_USER_METADATA:
            # Orthanc answers 403 over HTTP, and UNKNOWN_RESOURCE to a plugin.
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return number


# Orthanc's FileContentType names; user-defined ones come from `UserContentType`.
SYSTEM_CONTENT_TYPES: dict[str, int] = {"dicom": 1, "dicom-as-json": 2, "dicom-until-pixel-data": 3}


class ContentTypeNames:
    """Translates attachment names (`dicom` or `UserContentType`) to numbers and back."""

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        user = {}
        for name, declared in dict(configuration.get("UserContentType") or {}).items():
            # An index, or [index, "mime/type"].
            user[str(name)] = int(declared[0] if isinstance(declared, list) else declared)
        self._numbers = {**SYSTEM_CONTENT_TYPES, **user}
        self._names = {number: name for name, number in self._numbers.items()}

    def user_number_of(self, name: str) -> int:
        """The number of a user-defined attachment; INEXISTENT_ITEM for an unknown name."""
        number = self._numbers.get(name)
        if number is None or number < FIRST_USER_METADATA:
            raise orthanc_error(ErrorCode.INEXISTENT_ITEM)
        return number

    def name_of(self, number: int) -> str:
        return self._names.get(number, str(number))
