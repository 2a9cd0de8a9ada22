"""Merge the values read from one instance into what a series already has."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .config import PrivateTag

SeriesValues = dict[str, str]


def merge(
    current: Mapping[str, str], found: Mapping[str, str], tags: Sequence[PrivateTag]
) -> SeriesValues:
    """The first non-empty value of each configured tag wins; unconfigured keys are dropped."""
    merged: SeriesValues = {}
    for tag in tags:
        value = current.get(tag.name) or found.get(tag.name)
        if value:
            merged[tag.name] = value
    return merged


def is_complete(values: Mapping[str, str], tags: Sequence[PrivateTag]) -> bool:
    """Every configured tag has a value: more instances of the series cannot change anything."""
    return all(values.get(tag.name) for tag in tags)


def parse_metadata(text: str | bytes | None) -> SeriesValues:
    """The stored JSON object, or {} when absent or not a JSON object of strings."""
    if not text:
        return {}
    try:
        decoded = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {str(key): value for key, value in decoded.items() if isinstance(value, str) and value}


def to_metadata(values: Mapping[str, str]) -> str:
    """The JSON text stored in series metadata."""
    return json.dumps(dict(values), ensure_ascii=False, separators=(",", ":"))
