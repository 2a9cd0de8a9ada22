"""HTTP details of the thumbnail route: query parameters, content negotiation, ETag, 304."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from .config import MAX_SIZE, MIN_SIZE
from .rendering import RENDERING_VERSION, ImageFormat, RenderSpec

_FORMATS: dict[str, ImageFormat] = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}


class BadRequest(Exception):
    """An invalid query parameter; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ThumbnailQuery:
    size: int
    image_format: ImageFormat


def parse_query(
    get: Mapping[str, str], headers: Mapping[str, str], default_size: int
) -> ThumbnailQuery:
    """Read `?size=` and `?format=` (else the Accept header); BadRequest on invalid values."""
    raw_size = get.get("size")
    size = default_size
    if raw_size is not None:
        text = raw_size.strip()
        if not text.isdigit() or not MIN_SIZE <= int(text) <= MAX_SIZE:
            raise BadRequest(
                f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {raw_size!r}"
            )
        size = int(text)
    raw_format = get.get("format")
    if raw_format is not None:
        image_format = _FORMATS.get(raw_format.strip().lower())
        if image_format is None:
            raise BadRequest(f"format must be jpeg or png, got {raw_format!r}")
    else:
        image_format = negotiate(headers.get("accept", ""))
    return ThumbnailQuery(size, image_format)


def negotiate(accept: str) -> ImageFormat:
    """PNG only when the client names image/png and prefers it to JPEG; JPEG otherwise."""
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[media.lower()] = quality
    png = weights.get("image/png", 0.0)
    return "png" if png > 0 and png > weights.get("image/jpeg", 0.0) else "jpeg"


def etag(spec: RenderSpec) -> str:
    """A strong validator over everything that determines the bytes."""
    quality = spec.jpeg_quality if spec.image_format == "jpeg" else 0
    key = (
        f"{RENDERING_VERSION}|{spec.instance_id}|{spec.frame}|{spec.size}|"
        f"{spec.image_format}|{quality}|{spec.content_id}"
    )
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def matches_if_none_match(header: str | None, current: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison, `*` matches any current representation."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = current.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


def cache_control(max_age: int) -> str:
    """Thumbnails show patient images: never in shared caches; revalidate unless told otherwise."""
    return f"private, max-age={max_age}" if max_age > 0 else "private, no-cache"
