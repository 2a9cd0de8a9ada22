"""Parse and validate the optional `SeriesThumbnail` section and the metadata slot it needs.

Checked once, at start-up: an invalid value raises `ConfigurationError` naming the key path and the
value seen, so Orthanc refuses to start rather than run half-configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECTION = "SeriesThumbnail"
METADATA_NAME = "ThumbnailInstanceID"
MIN_SIZE, MAX_SIZE = 16, 1024


class ConfigurationError(ValueError):
    """An invalid configuration value; the message names the key path and the value seen."""

    def __init__(self, path: str, value: object, problem: str) -> None:
        self.path = path
        self.value = value
        super().__init__(f"{path}: {problem} (value seen: {value!r})")


@dataclass(frozen=True, slots=True)
class SeriesThumbnailConfig:
    default_size: int = 256
    jpeg_quality: int = 90
    cache_megabytes: int = 64
    max_age_seconds: int = 0
    prerender_on_stable: bool = True
    metadata_name: str = METADATA_NAME
    metadata_index: int = 2001


_KEYS = {
    "Size": (MIN_SIZE, MAX_SIZE),
    "JpegQuality": (1, 100),
    "CacheSizeMB": (0, 65536),
    "MaxAgeSeconds": (0, 31_536_000),
}
_BOOL_KEYS = {"PrerenderOnStable"}


def parse(orthanc_config: Mapping[str, Any]) -> SeriesThumbnailConfig:
    """Validate `SeriesThumbnail` (all keys optional) and `UserMetadata.ThumbnailInstanceID`."""
    section = orthanc_config.get(SECTION, {})
    if not isinstance(section, Mapping):
        raise ConfigurationError(SECTION, section, "expected a JSON object")
    for key in section:
        if key not in _KEYS and key not in _BOOL_KEYS:
            raise ConfigurationError(f"{SECTION}.{key}", section[key], "unknown key")
    defaults = SeriesThumbnailConfig()
    size = _int_in_range(section, "Size", defaults.default_size)
    quality = _int_in_range(section, "JpegQuality", defaults.jpeg_quality)
    cache = _int_in_range(section, "CacheSizeMB", defaults.cache_megabytes)
    max_age = _int_in_range(section, "MaxAgeSeconds", defaults.max_age_seconds)
    prerender = section.get("PrerenderOnStable", defaults.prerender_on_stable)
    if not isinstance(prerender, bool):
        raise ConfigurationError(
            f"{SECTION}.PrerenderOnStable", prerender, "expected true or false"
        )
    index = _metadata_index(orthanc_config.get("UserMetadata"))
    return SeriesThumbnailConfig(
        default_size=size,
        jpeg_quality=quality,
        cache_megabytes=cache,
        max_age_seconds=max_age,
        prerender_on_stable=prerender,
        metadata_index=index,
    )


def _int_in_range(section: Mapping[str, Any], key: str, default: int) -> int:
    low, high = _KEYS[key]
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{SECTION}.{key}", value, f"expected an integer from {low} to {high}"
        )
    return value


def _metadata_index(raw: object) -> int:
    path = f"UserMetadata.{METADATA_NAME}"
    if not isinstance(raw, Mapping) or METADATA_NAME not in raw:
        raise ConfigurationError(
            path, None, f"declare the series metadata {METADATA_NAME!r} in UserMetadata (e.g. 2001)"
        )
    index = raw[METADATA_NAME]
    if isinstance(index, bool) or not isinstance(index, int) or not 1024 <= index <= 65535:
        raise ConfigurationError(path, index, "expected an integer between 1024 and 65535")
    return index
