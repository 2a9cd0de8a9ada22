"""Pick the configured tags of an instance, including private ones and values of any length.

Orthanc's JSON turns values longer than 256 characters into `TooLong`/null, so those are read raw
from `/instances/{id}/content/{gggg-eeee}`. Private tags are matched by the name Orthanc gives them,
which it does only when the private creator declared in `Dictionary` matches the file's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

PRIVATE_CREATOR = "PrivateCreator"  # Orthanc's name for every private creator element
_GROUP_ELEMENT = re.compile(r"^([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})$")
_TEXT_PADDING = " \x00"
_DEFAULT_CHARSET = "ISO_IR 6"


def select_instance_tags(
    full_tags: Mapping[str, Any],
    wanted: Iterable[str],
    read_raw: Callable[[str], bytes],
) -> dict[str, Any]:
    """Configured tags from `/instances/{id}/tags` (full format); absent tags are left out.

    `read_raw("gggg-eeee")` returns the raw value bytes of a top-level element.
    """
    by_name: dict[str, str] = {}
    for tag_key, tag_entry in full_tags.items():
        if isinstance(tag_entry, Mapping) and isinstance(tag_entry.get("Name"), str):
            by_name.setdefault(tag_entry["Name"], tag_key)
    charset = _charset(full_tags)
    selected: dict[str, Any] = {}
    for name in wanted:
        if name == PRIVATE_CREATOR:
            creators = _private_creators(full_tags)
            if creators:
                selected[name] = creators[0] if len(creators) == 1 else creators
            continue
        key = _key_for(name, by_name)
        entry = full_tags.get(key) if key else None
        if not isinstance(entry, Mapping):
            continue
        kind = entry.get("Type")
        if kind == "String":
            selected[name] = entry.get("Value")
        elif kind == "Sequence":
            selected[name] = _simplify_sequence(entry.get("Value"))
        elif kind == "TooLong" and key is not None:
            raw = read_raw(key.replace(",", "-"))
            selected[name] = decode_text(raw, charset)
        else:  # Null (empty value) or binary
            selected[name] = None
    return selected


def select_main_tags(main_tags: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, Any]:
    """Configured tags from a resource's main DICOM tags (simplified JSON)."""
    return {name: main_tags[name] for name in wanted if name in main_tags}


def decode_text(raw: bytes, charset: str) -> str:
    """A raw text value decoded with the instance's character set, padding removed."""
    from pydicom.charset import convert_encodings, decode_bytes

    codes = [code.strip() for code in charset.split("\\") if code.strip()] or [_DEFAULT_CHARSET]
    text: str = decode_bytes(raw, convert_encodings(codes), set())
    return text.rstrip(_TEXT_PADDING)


def _private_creators(full_tags: Mapping[str, Any]) -> list[str]:
    """Every private creator value of the instance's top level, in tag order."""
    return [
        str(entry["Value"])
        for _, entry in sorted(full_tags.items())
        if isinstance(entry, Mapping)
        and entry.get("Name") == PRIVATE_CREATOR
        and isinstance(entry.get("Value"), str)
    ]


def _key_for(name: str, by_name: Mapping[str, str]) -> str | None:
    match = _GROUP_ELEMENT.match(name)
    if match:
        return f"{match.group(1).lower()},{match.group(2).lower()}"
    return by_name.get(name)


def _charset(full_tags: Mapping[str, Any]) -> str:
    entry = full_tags.get("0008,0005")
    if isinstance(entry, Mapping) and isinstance(entry.get("Value"), str):
        return str(entry["Value"])
    return _DEFAULT_CHARSET


def _simplify_sequence(items: object) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    simplified = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        simplified.append(
            {
                str(entry.get("Name", key)): entry.get("Value")
                if entry.get("Type") == "String"
                else None
                for key, entry in item.items()
                if isinstance(entry, Mapping)
            }
        )
    return simplified


TRUNCATION_MARKER = "...[truncated]"


def cut_long_values(tags: dict[str, Any], max_length: int) -> dict[str, Any]:
    """Text values longer than `max_length` cut, ending with TRUNCATION_MARKER: an event stays
    publishable (SNS takes 256 KiB) whatever an instance carries."""
    return {name: _cut(value, max_length) for name, value in tags.items()}


def _cut(value: Any, max_length: int) -> Any:
    if isinstance(value, str) and len(value) > max_length:
        return value[: max_length - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    if isinstance(value, list):
        return [_cut(item, max_length) for item in value]
    if isinstance(value, dict):
        return {key: _cut(item, max_length) for key, item in value.items()}
    return value
