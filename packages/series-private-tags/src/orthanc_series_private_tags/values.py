"""Turn the raw bytes of a DICOM element into the text stored in series metadata.

Text VRs come out as text, multi-valued ones joined with a backslash as Orthanc shows them;
numeric binary VRs as decimal text (backslash-joined when multi-valued); every other binary VR
(OB, OW, OD, OF, OL, OV, UN) as standard base64 of the value bytes, as DICOMweb's InlineBinary.
"""

from __future__ import annotations

import base64
import struct
import warnings
from collections.abc import Sequence

from pydicom.charset import convert_encodings, decode_bytes

# Text whose bytes depend on Specific Character Set (PS3.5 6.1.2.3).
CHARSET_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})
# Text that is always in the default repertoire.
ASCII_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
TEXT_VRS = CHARSET_TEXT_VRS | ASCII_TEXT_VRS
# VRs whose backslash is text, not a value separator.
_SINGLE_VALUED_TEXT = frozenset({"ST", "LT", "UT", "UR"})

_NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "UV": "Q",
    "SV": "q",
    "FL": "f",
    "FD": "d",
}
_BACKSLASH = 0x5C
_PN_DELIMITERS = {_BACKSLASH, 0x5E, 0x3D}  # ^ and = reset the ISO 2022 state too
DEFAULT_ENCODINGS: tuple[str, ...] = ("iso8859",)


def python_encodings(specific_character_set: bytes | None) -> tuple[str, ...]:
    """Python codecs for a raw (0008,0005) value; the default repertoire when absent."""
    if not specific_character_set:
        return DEFAULT_ENCODINGS
    terms = [term.strip() for term in specific_character_set.decode("ascii", "replace").split("\\")]
    with warnings.catch_warnings():
        # An unknown term falls back to the default repertoire; a warning per instance is noise.
        warnings.simplefilter("ignore")
        try:
            return tuple(convert_encodings(terms))
        except LookupError:
            return DEFAULT_ENCODINGS


def is_empty(raw: bytes, vr: str) -> bool:
    """True when the element has no value (padding only, for text)."""
    if vr in TEXT_VRS:
        return not raw.strip(b" \x00")
    return not raw


def decode_value(
    raw: bytes, vr: str, little_endian: bool, encodings: Sequence[str] = DEFAULT_ENCODINGS
) -> str:
    """The stored form of an element value of the given VR."""
    if vr in TEXT_VRS:
        return _decode_text(raw, vr, encodings)
    if vr == "AT":
        return _decode_attribute_tags(raw, little_endian)
    number_format = _NUMBER_FORMATS.get(vr)
    if number_format is not None:
        return _decode_numbers(raw, number_format, little_endian)
    return base64.b64encode(raw).decode("ascii")


def _decode_text(raw: bytes, vr: str, encodings: Sequence[str]) -> str:
    if vr in CHARSET_TEXT_VRS:
        delimiters = _PN_DELIMITERS if vr == "PN" else {_BACKSLASH}
        if vr in _SINGLE_VALUED_TEXT:
            delimiters = set()
        text = decode_bytes(raw, encodings, delimiters)
    else:
        text = raw.decode("ascii", "replace")
    # Trailing padding is an encoding detail (even length), not part of the value.
    text = text.rstrip(" \x00")
    if vr in _SINGLE_VALUED_TEXT:
        return text
    return "\\".join(part.strip(" ") for part in text.split("\\"))


def _decode_numbers(raw: bytes, number_format: str, little_endian: bool) -> str:
    size = struct.calcsize(number_format)
    count = len(raw) // size
    byte_order = "<" if little_endian else ">"
    numbers = struct.unpack(f"{byte_order}{count}{number_format}", raw[: count * size])
    return "\\".join(_format_number(number, number_format) for number in numbers)


def _format_number(number: float, number_format: str) -> str:
    if isinstance(number, int):
        return str(number)
    if number_format == "f":
        # A float32 widened to a double prints noise digits (0.1 -> 0.10000000149011612).
        number = float(f"{number:.7g}")
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def _decode_attribute_tags(raw: bytes, little_endian: bool) -> str:
    count = len(raw) // 4
    byte_order = "<" if little_endian else ">"
    words = struct.unpack(f"{byte_order}{count * 2}H", raw[: count * 4])
    return "\\".join(f"{words[i]:04X},{words[i + 1]:04X}" for i in range(0, len(words), 2))
