"""Raw element bytes to the stored text."""

from __future__ import annotations

import base64
import struct

import pytest

from orthanc_series_private_tags.values import decode_value, is_empty, python_encodings


@pytest.mark.parametrize(
    ("raw", "vr", "expected"),
    [
        (b"QUEUE-7 ", "LO", "QUEUE-7"),
        (b"1.2.840.10008\x00", "UI", "1.2.840.10008"),
        (b"A\\B ", "CS", "A\\B"),
        (b" padded \\ two ", "LO", "padded\\two"),
        (b"line one\\not a separator ", "UT", "line one\\not a separator"),
        (b"Doe^John", "PN", "Doe^John"),
    ],
)
def test_text_comes_out_as_text_without_padding(raw: bytes, vr: str, expected: str) -> None:
    assert decode_value(raw, vr, True) == expected


def test_text_is_decoded_with_the_specific_character_set() -> None:
    latin1 = python_encodings(b"ISO_IR 100")
    assert decode_value("Müller".encode("latin-1"), "LO", True, latin1) == "Müller"
    assert decode_value("Grüße".encode(), "LO", True, python_encodings(b"ISO_IR 192")) == "Grüße"


def test_unknown_character_set_falls_back_to_the_default_repertoire() -> None:
    assert python_encodings(b"NOT_A_CHARSET") == ("iso8859",)
    assert python_encodings(None) == ("iso8859",)


@pytest.mark.parametrize(
    ("raw", "vr", "little_endian", "expected"),
    [
        (struct.pack("<2H", 3, 65535), "US", True, "3\\65535"),
        (struct.pack(">h", -2), "SS", False, "-2"),
        (struct.pack("<i", -70000), "SL", True, "-70000"),
        (struct.pack("<f", 0.1), "FL", True, "0.1"),
        (struct.pack("<2d", 2.0, 1.5), "FD", True, "2\\1.5"),
        (struct.pack("<4H", 0x0055, 0x1011, 0x0008, 0x0018), "AT", True, "0055,1011\\0008,0018"),
    ],
)
def test_numeric_binary_vrs_come_out_as_decimal_text(
    raw: bytes, vr: str, little_endian: bool, expected: str
) -> None:
    assert decode_value(raw, vr, little_endian) == expected


@pytest.mark.parametrize("vr", ["OB", "OW", "UN", "OF"])
def test_other_binary_vrs_come_out_as_base64(vr: str) -> None:
    raw = bytes(range(256))
    assert base64.b64decode(decode_value(raw, vr, True)) == raw


def test_emptiness_ignores_text_padding_but_not_binary_zeros() -> None:
    assert is_empty(b"  ", "LO")
    assert is_empty(b"", "OB")
    assert not is_empty(b"\x00\x00", "OB")
    assert not is_empty(b"x ", "LO")
