"""Parse and validate `SeriesMainPrivateDicomTags` and the metadata slot it needs.

Checked once, at start-up: an invalid value raises `ConfigurationError` naming the key path and the
value seen, so Orthanc refuses to start rather than run half-configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._kit import ConfigurationError, config_object, user_metadata_index

TAGS_KEY = "SeriesMainPrivateDicomTags"
METADATA_NAME = "SeriesPrivateTags"
EXISTENCE_PREFIX = "!!"
_DICTIONARY_KEY = re.compile(r"^([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})$")


@dataclass(frozen=True, slots=True)
class PrivateTag:
    """One configured private tag, resolved through Orthanc's `Dictionary`."""

    name: str
    group: int
    element: int
    vr: str
    private_creator: str | None
    existence_only: bool

    @property
    def element_offset(self) -> int:
        """The low byte of the element: its place inside whatever block the creator reserved."""
        return self.element & 0xFF


@dataclass(frozen=True, slots=True)
class SeriesPrivateTagsConfig:
    tags: tuple[PrivateTag, ...]
    metadata_name: str
    metadata_index: int
    # Orthanc's own storage settings, to read stored files directly (see storage.py).
    storage: Mapping[str, Any] = field(default_factory=dict)
    # Several Orthanc nodes on one index (PostgreSQL without its lock): what the others write
    # reaches this node only through the shared change log, which the worker follows.
    shared_index: bool = False
    node_name: str = "Orthanc"  # Orthanc's `Name`: who runs a reconstruct, for the other nodes


def shares_its_index(orthanc_config: Mapping[str, Any]) -> bool:
    """True when other Orthanc nodes may use the same index: PostgreSQL with `Lock: false`."""
    postgres = orthanc_config.get("PostgreSQL")
    return (
        isinstance(postgres, Mapping)
        and postgres.get("EnableIndex") is True
        and postgres.get("Lock", True) is False
    )


def parse(orthanc_config: Mapping[str, Any]) -> SeriesPrivateTagsConfig:
    """Validate the private-tag list against `Dictionary` and `UserMetadata`."""
    raw = orthanc_config.get(TAGS_KEY)
    if not isinstance(raw, list) or not raw:
        raise ConfigurationError(TAGS_KEY, raw, "expected a non-empty list of tag names")
    dictionary = _dictionary_by_name(orthanc_config.get("Dictionary"))
    tags: list[PrivateTag] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        path = f"{TAGS_KEY}[{index}]"
        if not isinstance(entry, str):
            raise ConfigurationError(path, entry, "expected a tag name (string)")
        existence_only = entry.startswith(EXISTENCE_PREFIX)
        name = entry.removeprefix(EXISTENCE_PREFIX)
        if name in seen:
            raise ConfigurationError(path, entry, "tag listed twice")
        if name not in dictionary:
            raise ConfigurationError(path, entry, "tag name not declared in Dictionary")
        seen.add(name)
        group, element, vr, creator = dictionary[name]
        if vr == "SQ" and not existence_only:
            raise ConfigurationError(
                path, entry, f"a sequence has no single value: use {EXISTENCE_PREFIX}{name}"
            )
        tags.append(PrivateTag(name, group, element, vr, creator, existence_only))
    index = user_metadata_index(orthanc_config, METADATA_NAME, 2000)
    storage = {
        key: orthanc_config[key]
        for key in ("StorageDirectory", "StorageCompression")
        if key in orthanc_config
    }
    return SeriesPrivateTagsConfig(
        tuple(tags),
        METADATA_NAME,
        index,
        storage,
        shared_index=shares_its_index(orthanc_config),
        node_name=str(orthanc_config.get("Name") or "Orthanc"),
    )


def _dictionary_by_name(raw: object) -> dict[str, tuple[int, int, str, str | None]]:
    declared = config_object(raw, "Dictionary")
    by_name: dict[str, tuple[int, int, str, str | None]] = {}
    for key, entry in declared.items():
        match = _DICTIONARY_KEY.match(key)
        if not match or not isinstance(entry, list) or len(entry) < 2:
            continue  # Orthanc itself validates Dictionary; only well-formed entries can match
        vr, name = entry[0], entry[1]
        creator = entry[4] if len(entry) >= 5 and isinstance(entry[4], str) else None
        by_name[str(name)] = (int(match[1], 16), int(match[2], 16), str(vr), creator)
    return by_name
