"""Reading configured private tags from DICOM bytes, private creators honoured."""

from __future__ import annotations

import pytest
from spt_testing import CREATOR, NO_SAMPLES, OTHER_CREATOR, SAMPLES, configuration

from orthanc_fake.dicom import PrivateBlock, make_instance
from orthanc_series_private_tags.config import PrivateTag, parse
from orthanc_series_private_tags.reader import EXISTS, DicomReadError, PrivateTagReader


def reader(tags: list[str] | None = None) -> PrivateTagReader:
    return PrivateTagReader(parse(configuration(tags)).tags)


def dicom(*blocks: PrivateBlock) -> bytes:
    return make_instance("P", "1.2.3", "1.2.3.4", "1.2.3.4.5", private_blocks=blocks)


def test_values_of_the_creator_block_are_read() -> None:
    data = dicom(PrivateBlock(0x55, CREATOR, {0x11: ("UT", "queue"), 0x12: ("LO", "1.2.9")}))
    assert reader().read(data) == {"QueueID": "queue", "SourceSeries": "1.2.9"}


def test_a_10_kB_value_comes_back_whole() -> None:
    long_value = "".join(chr(ord("a") + i % 26) for i in range(10_240))
    data = dicom(PrivateBlock(0x55, CREATOR, {0x11: ("UT", long_value)}))
    assert reader().read(data)["QueueID"] == long_value


def test_a_creator_reserved_at_another_block_still_matches() -> None:
    data = dicom(
        PrivateBlock(0x55, OTHER_CREATOR, {0x11: ("UT", "not ours")}, block=0x10),
        PrivateBlock(0x55, CREATOR, {0x11: ("UT", "ours")}, block=0x11),
    )
    assert reader().read(data) == {"QueueID": "ours"}


def test_a_tag_of_another_creator_is_not_matched() -> None:
    data = dicom(
        PrivateBlock(0x55, OTHER_CREATOR, {0x11: ("UT", "x"), 0x13: ("CS", "Y")}, block=0x10)
    )
    assert reader().read(data) == {}


def test_existence_only_tags_give_exists_whatever_their_value() -> None:
    data = dicom(PrivateBlock(0x55, CREATOR, {0x13: ("CS", "")}))
    assert reader().read(data) == {"OutputFlag": EXISTS}


def test_empty_values_are_absent() -> None:
    data = dicom(PrivateBlock(0x55, CREATOR, {0x11: ("UT", ""), 0x12: ("LO", "  ")}))
    assert reader().read(data) == {}


def test_binary_and_numeric_vrs() -> None:
    data = dicom(PrivateBlock(0x55, CREATOR, {0x14: ("US", 7), 0x15: ("OB", b"\x00\x01\xff\x10")}))
    assert reader(["Priority", "Blob"]).read(data) == {"Priority": "7", "Blob": "AAH/EA=="}


def test_a_tag_declared_without_creator_is_read_at_its_own_address() -> None:
    config = configuration(["Plain"])
    config["Dictionary"]["0009,1001"] = ["LO", "Plain", 1, 1]
    data = make_instance("P", "1.2.3", "1.2.3.4", "1.2.3.4.5", elements=[(0x00091001, "LO", "v")])
    assert PrivateTagReader(parse(config).tags).read(data) == {"Plain": "v"}


def test_a_truncated_value_is_a_read_error_not_a_shorter_value() -> None:
    data = dicom(PrivateBlock(0x55, CREATOR, {0x11: ("UT", "x" * 1000)}))
    with pytest.raises(DicomReadError):
        reader().read(data[:-10])


def test_bytes_that_are_not_dicom_hold_no_tags() -> None:
    assert reader().read(b"\x01\x02" * 40) == {}


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=NO_SAMPLES)
def test_implicit_vr_sample_decoded_with_the_dictionary_vr() -> None:
    tags = [
        PrivateTag(
            "OriginalImageFileName", 0x7053, 0x1003, "ST", "Philips PET Private Group", False
        ),
        PrivateTag("PET-CT-MultiModalityName", 0x00E1, 0x10C2, "UI", "ELSCINT1", False),
        PrivateTag("Other", 0x7053, 0x1003, "ST", "ELSCINT1", False),
    ]
    found = PrivateTagReader(tags).read((SAMPLES / "PrivateMDNTags.dcm").read_bytes())
    assert found == {
        "OriginalImageFileName": "p37s0_na_ctac.img",
        "PET-CT-MultiModalityName": "1.2.840.113704.1.111.6320.1342451261.21",
    }


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=NO_SAMPLES)
def test_sequences_before_and_after_pixel_data_exist() -> None:
    tags = [
        PrivateTag("Images", 0x6003, 0x1010, "SQ", "GEMS_Ultrasound_ImageGroup_001", True),
        PrivateTag("Movie", 0x7FE1, 0x1001, "SQ", "GEMS_Ultrasound_MovieGroup_001", True),
    ]
    found = PrivateTagReader(tags).read((SAMPLES / "PrivateTags.dcm").read_bytes())
    assert found == {"Images": EXISTS, "Movie": EXISTS}


def _reencoded(data: bytes, transfer_syntax: str, *, part10: bool = True) -> bytes:
    """The same dataset written with another transfer syntax, or without the Part 10 header."""
    from io import BytesIO

    from pydicom import dcmread

    dataset = dcmread(BytesIO(data))
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    buffer = BytesIO()
    if part10:
        dataset.save_as(buffer, enforce_file_format=True)
    else:
        del dataset.file_meta
        dataset.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("transfer_syntax", "part10"),
    [
        ("1.2.840.10008.1.2", True),  # implicit VR little endian: the Dictionary gives the VR
        ("1.2.840.10008.1.2.1.99", True),  # deflated: read through pydicom's full reader
        ("1.2.840.10008.1.2", False),  # no preamble nor file meta information
    ],
)
def test_every_encoding_gives_the_same_values(transfer_syntax: str, part10: bool) -> None:
    data = dicom(
        PrivateBlock(0x55, OTHER_CREATOR, {0x11: ("UT", "not ours")}, block=0x10),
        PrivateBlock(0x55, CREATOR, {0x11: ("UT", "é queue"), 0x14: ("US", 513)}, block=0x11),
    )
    expected = {"QueueID": "é queue", "Priority": "513"}
    assert reader(["QueueID", "Priority"]).read(data) == expected
    encoded = _reencoded(data, transfer_syntax, part10=part10)
    assert encoded != data
    assert reader(["QueueID", "Priority"]).read(encoded) == expected
