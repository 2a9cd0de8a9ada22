"""Parse and validate the optional `SeriesThumbnail` section and the metadata slot it needs.

Checked once, at start-up: an invalid value raises `ConfigurationError` naming the key path and the
value seen, so Orthanc refuses to start rather than run half-configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._kit import config_bool, config_int, config_object, reject_unknown_keys, user_metadata_index

SECTION = "SeriesThumbnail"
METADATA_NAME = "ThumbnailInstanceID"
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


def parse(orthanc_config: Mapping[str, Any]) -> SeriesThumbnailConfig:
    """Validate `SeriesThumbnail` (all keys optional) and `UserMetadata.ThumbnailInstanceID`."""
    section = config_object(orthanc_config.get(SECTION), SECTION)
    reject_unknown_keys(section, SECTION, frozenset(_KEYS) | _BOOL_KEYS)
    defaults = SeriesThumbnailConfig()

    def number(key: str, default: int) -> int:
        low, high = _KEYS[key]
        return config_int(section.get(key, default), f"{SECTION}.{key}", low, high)

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
    )


def shares_its_index(orthanc_config: Mapping[str, Any]) -> bool:
    """True when other Orthanc nodes may use the same index: PostgreSQL with `Lock: false`."""
    postgres = orthanc_config.get("PostgreSQL")
    return (
        isinstance(postgres, Mapping)
        and postgres.get("EnableIndex") is True
        and postgres.get("Lock", True) is False
    )
