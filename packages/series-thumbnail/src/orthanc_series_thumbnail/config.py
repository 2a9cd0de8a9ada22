"""Parse and validate the optional `SeriesThumbnail` section and the metadata slot it needs.

Checked once, at start-up: an invalid value raises `ConfigurationError` naming the key path and the
value seen, so Orthanc refuses to start rather than run half-configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._kit import (
    ConfigurationError,
    config_bool,
    config_int,
    config_object,
    reject_unknown_keys,
    user_content_type_index,
    user_metadata_index,
)

SECTION = "SeriesThumbnail"
METADATA_NAME = "ThumbnailInstanceID"
ATTACHMENT_NAME = "SeriesThumbnail"
_ATTACHMENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_SIZE, MAX_SIZE = 16, 1024


@dataclass(frozen=True, slots=True)
class SeriesThumbnailConfig:
    default_size: int = 256
    jpeg_quality: int = 90
    cache_megabytes: int = 64
    max_age_seconds: int = 0
    prerender_on_stable: bool = True
    metadata_name: str = METADATA_NAME
    metadata_index: int = 2001
    # The `UserContentType` holding the default thumbnail on its series; None: memory only.
    attachment_name: str | None = None
    attachment_index: int | None = None
    # Several Orthanc nodes on one index (PostgreSQL without its lock): another node may have
    # stored the choice for an instance list that changed since, so it is never read back.
    shared_index: bool = False


_KEYS = {
    "Size": (MIN_SIZE, MAX_SIZE),
    "JpegQuality": (1, 100),
    "CacheSizeMB": (0, 65536),
    "MaxAgeSeconds": (0, 31_536_000),
}
_BOOL_KEYS = frozenset({"PrerenderOnStable"})
_STRING_KEYS = frozenset({"AttachmentName"})


def parse(orthanc_config: Mapping[str, Any]) -> SeriesThumbnailConfig:
    """Validate `SeriesThumbnail` (all keys optional) and `UserMetadata.ThumbnailInstanceID`."""
    section = config_object(orthanc_config.get(SECTION), SECTION)
    reject_unknown_keys(section, SECTION, frozenset(_KEYS) | _BOOL_KEYS | _STRING_KEYS)
    defaults = SeriesThumbnailConfig()

    def number(key: str, default: int) -> int:
        low, high = _KEYS[key]
        return config_int(section.get(key, default), f"{SECTION}.{key}", low, high)

    attachment_name, attachment_index = attachment(orthanc_config, section)
    return SeriesThumbnailConfig(
        default_size=number("Size", defaults.default_size),
        jpeg_quality=number("JpegQuality", defaults.jpeg_quality),
        cache_megabytes=number("CacheSizeMB", defaults.cache_megabytes),
        max_age_seconds=number("MaxAgeSeconds", defaults.max_age_seconds),
        prerender_on_stable=config_bool(
            section.get("PrerenderOnStable", defaults.prerender_on_stable),
            f"{SECTION}.PrerenderOnStable",
        ),
        metadata_index=user_metadata_index(orthanc_config, METADATA_NAME, 2001),
        shared_index=shares_its_index(orthanc_config),
        attachment_name=attachment_name,
        attachment_index=attachment_index,
    )


def attachment(
    orthanc_config: Mapping[str, Any], section: Mapping[str, Any]
) -> tuple[str | None, int | None]:
    """The attachment that keeps the default thumbnail across restarts, when declared.

    Not declaring the default name leaves thumbnails in memory only (configurations written for
    earlier versions keep working); an `AttachmentName` given explicitly must be declared.
    """
    path = f"{SECTION}.AttachmentName"
    name = section.get("AttachmentName", ATTACHMENT_NAME)
    if not isinstance(name, str) or not _ATTACHMENT_NAME_PATTERN.fullmatch(name):
        raise ConfigurationError(path, name, "expected 1 to 64 letters, digits, '_' or '-'")
    index = user_content_type_index(orthanc_config, name)
    if index is None and "AttachmentName" in section:
        raise ConfigurationError(
            f"UserContentType.{name}",
            None,
            f"declare the attachment {name!r} that {path} names in UserContentType (e.g. 2001)",
        )
    return (name, index) if index is not None else (None, None)


def shares_its_index(orthanc_config: Mapping[str, Any]) -> bool:
    """True when other Orthanc nodes may use the same index: PostgreSQL with `Lock: false`."""
    postgres = orthanc_config.get("PostgreSQL")
    return (
        isinstance(postgres, Mapping)
        and postgres.get("EnableIndex") is True
        and postgres.get("Lock", True) is False
    )
