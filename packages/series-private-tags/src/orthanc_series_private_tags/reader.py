"""Read the configured private tags of one DICOM file, honouring their private creators.

A private tag (gggg,xxEE) belongs to whichever block (gggg,00xx) its creator reserved in this file,
so the reader looks the creator up first and then takes element EE of that block: a creator
reserved at (0055,0011) instead of (0055,0010) still matches, and a tag of another creator never
does. Values are kept whole, whatever their length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from io import BytesIO
from typing import Any

from pydicom.filereader import data_element_generator, read_partial
from pydicom.tag import BaseTag

from .config import PrivateTag
from .values import decode_value, is_empty, python_encodings

EXISTS = "EXISTS"
_SPECIFIC_CHARACTER_SET = 0x00080005
_TRANSFER_SYNTAX_UID = 0x00020010
_FIRST_BLOCK, _LAST_BLOCK = 0x10, 0xFF
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PREAMBLE_END = 132  # 128-byte preamble, then "DICM"
_IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"

# Elements read, by tag: pydicom's raw elements (`value`, `length`, `VR`, `is_little_endian`).
Elements = Mapping[int, Any]


class DicomReadError(Exception):
    """The bytes could not be parsed as DICOM."""


class PrivateTagReader:
    """Extracts `{tag name: value}` for the configured tags from DICOM bytes."""

    def __init__(self, tags: Sequence[PrivateTag]) -> None:
        self._tags = tuple(tags)
        wanted = _wanted_tags(self._tags)
        # Built once: converting hundreds of candidate tags per read would dominate the cost.
        self._specific_tags: list[BaseTag | int] = [BaseTag(key) for key in sorted(wanted)]
        self._wanted = frozenset(wanted)
        self._last_wanted = max(wanted)

    def _past_last_wanted(self, tag: BaseTag, vr: str | None, length: int) -> bool:
        # Top-level elements come in ascending order: nothing after the last wanted tag matters,
        # which also skips pixel data unless a configured tag sits after it. (Compared as plain
        # ints: BaseTag's own comparisons are Python code, run for every element.)
        return int.__gt__(tag, self._last_wanted)

    def read(self, data: bytes) -> dict[str, str]:
        """Values of the configured tags present and non-empty; `EXISTS` for existence-only ones."""
        try:
            elements = self._elements(data)
        except Exception as error:  # pydicom raises many types on malformed input
            raise DicomReadError(str(error)) from error
        blocks = _creator_blocks(elements)
        encodings = python_encodings(_raw_bytes(elements, _SPECIFIC_CHARACTER_SET))
        found: dict[str, str] = {}
        for tag in self._tags:
            value = _tag_value(elements, tag, blocks, encodings)
            if value is not None:
                found[tag.name] = value
        return found

    def _elements(self, data: bytes) -> Elements:
        """The wanted top-level elements, raw.

        pydicom's element generator is used directly: building its Dataset objects cost ten
        times more than the scan itself, for the few elements wanted here. Files without the
        Part 10 header, or deflated, go through pydicom's full reader.
        """
        stream = BytesIO(data)
        if data[128:_PREAMBLE_END] != b"DICM":
            return self._elements_by_dataset(stream)
        stream.seek(_PREAMBLE_END)
        transfer_syntax = ""
        for element in data_element_generator(
            stream, False, True, stop_when=lambda tag, vr, length: tag >> 16 != 0x0002
        ):
            if element.tag == _TRANSFER_SYNTAX_UID and isinstance(element.value, bytes):
                transfer_syntax = element.value.decode("ascii", "replace").strip(" \x00")
        if transfer_syntax == _DEFLATED:
            return self._elements_by_dataset(BytesIO(data))
        wanted = self._wanted
        return {
            int(element.tag): element
            for element in data_element_generator(
                stream,
                transfer_syntax == _IMPLICIT_VR_LITTLE_ENDIAN,
                transfer_syntax != _EXPLICIT_VR_BIG_ENDIAN,
                stop_when=self._past_last_wanted,
            )
            if int(element.tag) in wanted
        }

    def _elements_by_dataset(self, stream: BytesIO) -> Elements:
        dataset = read_partial(
            stream,
            stop_when=self._past_last_wanted,
            force=True,
            specific_tags=self._specific_tags,
        )
        # keys(), not iteration: iterating a Dataset converts every raw element.
        return {int(key): dataset.get_item(key) for key in dataset.keys()}  # noqa: SIM118


def _wanted_tags(tags: Iterable[PrivateTag]) -> set[int]:
    wanted = {_SPECIFIC_CHARACTER_SET}
    for tag in tags:
        if tag.private_creator is None:
            wanted.add(tag.group << 16 | tag.element)
            continue
        for block in range(_FIRST_BLOCK, _LAST_BLOCK + 1):
            wanted.add(tag.group << 16 | block)
            wanted.add(tag.group << 16 | block << 8 | tag.element_offset)
    return wanted


def _creator_blocks(elements: Elements) -> dict[tuple[int, str], int]:
    """(group, creator) -> block number, for every private creator element read."""
    blocks: dict[tuple[int, str], int] = {}
    for key in sorted(elements):
        group, element = key >> 16, key & 0xFFFF
        if group % 2 == 1 and _FIRST_BLOCK <= element <= _LAST_BLOCK:
            raw = _raw_bytes(elements, key)
            if raw is None:
                continue
            creator = raw.decode("ascii", "replace").strip(" \x00")
            # The first reservation of a creator in a group is the one readers use.
            blocks.setdefault((group, creator), element)
    return blocks


def _tag_value(
    elements: Elements,
    tag: PrivateTag,
    blocks: dict[tuple[int, str], int],
    encodings: Sequence[str],
) -> str | None:
    if tag.private_creator is None:
        key = tag.group << 16 | tag.element
    else:
        block = blocks.get((tag.group, tag.private_creator))
        if block is None:
            return None
        key = tag.group << 16 | block << 8 | tag.element_offset
    element = elements.get(key)
    if element is None:
        return None
    if tag.existence_only:
        return EXISTS
    raw_value = getattr(element, "value", None)
    if not isinstance(raw_value, bytes):
        return None  # a sequence, or a value pydicom already converted: not a configured scalar
    declared_length = getattr(element, "length", len(raw_value))
    if declared_length != _UNDEFINED_LENGTH and len(raw_value) < declared_length:
        raise DicomReadError(f"{tag.name}: value truncated ({len(raw_value)} of {declared_length})")
    file_vr = getattr(element, "VR", None)
    # Implicit VR files carry no VR, and explicit files may say UN: the Dictionary VR decides then.
    vr = file_vr if file_vr and file_vr != "UN" else tag.vr
    if is_empty(raw_value, vr):
        return None
    little_endian = bool(getattr(element, "is_little_endian", True))
    return decode_value(raw_value, vr, little_endian, encodings)


def _raw_bytes(elements: Elements, key: int) -> bytes | None:
    value = getattr(elements.get(key), "value", None)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("ascii", "replace")
    return None
