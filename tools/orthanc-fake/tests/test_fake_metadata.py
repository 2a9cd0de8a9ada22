"""Metadata through the REST API, with the errors Orthanc 1.10.1 raises to plugins."""

import pytest
from fake_samples import SERIES_ID, get_json, rich_instance
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from orthanc_fake import FakeOrthanc, OrthancException, make_instance
from orthanc_fake.enums import ChangeType, ErrorCode, ResourceType


def error_of(call: object, *arguments: object) -> int:
    with pytest.raises(OrthancException) as raised:
        call(*arguments)  # type: ignore[operator]
    code: int = raised.value.args[0]
    return code


def test_user_metadata_by_name_or_number(orthanc: FakeOrthanc) -> None:
    orthanc.store(rich_instance())
    assert orthanc.RestApiPut(f"/series/{SERIES_ID}/metadata/Foo", "by name") == b""
    orthanc.RestApiPut(f"/series/{SERIES_ID}/metadata/2001", b"by number")
    assert orthanc.RestApiGet(f"/series/{SERIES_ID}/metadata/2000") == b"by name"
    assert get_json(orthanc, f"/series/{SERIES_ID}/metadata") == [
        "RemoteAET",
        "LastUpdate",
        "Foo",
        "2001",
    ]
    orthanc.RestApiDelete(f"/series/{SERIES_ID}/metadata/Foo")
    assert "Foo" not in get_json(orthanc, f"/series/{SERIES_ID}/metadata")


def test_metadata_errors_match_orthanc(orthanc: FakeOrthanc) -> None:
    orthanc.store(rich_instance())
    uri = f"/series/{SERIES_ID}/metadata"
    assert error_of(orthanc.RestApiPut, f"{uri}/NotDeclared", "x") == ErrorCode.INEXISTENT_ITEM
    assert error_of(orthanc.RestApiPut, f"{uri}/1000", "x") == ErrorCode.UNKNOWN_RESOURCE
    assert error_of(orthanc.RestApiGet, f"{uri}/2005") == ErrorCode.UNKNOWN_RESOURCE
    assert error_of(orthanc.RestApiDelete, f"{uri}/Foo") == ErrorCode.UNKNOWN_RESOURCE
    assert (
        error_of(orthanc.RestApiPut, "/series/nope/metadata/Foo", "x") == ErrorCode.UNKNOWN_RESOURCE
    )


def test_metadata_updates_are_logged_changes(orthanc: FakeOrthanc) -> None:
    received: list[tuple[int, int, str]] = []
    orthanc.RegisterOnChangeCallback(lambda *change: received.append(change))
    orthanc.store(rich_instance())
    orthanc.deliver_pending_changes()
    received.clear()
    orthanc.RestApiPut(f"/series/{SERIES_ID}/metadata/Foo", "x")
    orthanc.RestApiDelete(f"/series/{SERIES_ID}/metadata/Foo")
    orthanc.deliver_pending_changes()
    assert received == [(ChangeType.UPDATED_METADATA, ResourceType.SERIES, SERIES_ID)] * 2
    assert [c["ChangeType"] for c in get_json(orthanc, "/changes?since=4")["Changes"]] == [
        "UpdatedMetadata"
    ] * 2


# ---- PixelDataOffset (Orthanc >= 1.9.1 records it on ingest; rules measured on 1.10.1)

PIXEL_DATA_TAG = {"little": b"\xe0\x7f\x10\x00", "big": b"\x7f\xe0\x00\x10"}


def pixel_data_offset(orthanc: FakeOrthanc, data: bytes) -> int | None:
    instance_id = orthanc.store(data).instance_id
    metadata = get_json(orthanc, f"/instances/{instance_id}/metadata?expand")
    offset = metadata.get("PixelDataOffset")
    return None if offset is None else int(offset)


def test_pixel_data_offset_of_the_recorded_instance(orthanc: FakeOrthanc) -> None:
    # The value the real Orthanc 1.10.1 gave (data/rich-instances-metadata.json).
    assert pixel_data_offset(orthanc, rich_instance()) == 1166


@pytest.mark.parametrize(
    ("transfer_syntax", "endian", "header"),
    [
        (ExplicitVRLittleEndian, "little", 12),  # tag, VR "OB", 2 reserved bytes, length
        (ImplicitVRLittleEndian, "little", 8),  # tag, length
        (ExplicitVRBigEndian, "big", 12),
    ],
)
def test_pixel_data_offset_is_where_the_pixel_data_element_starts(
    orthanc: FakeOrthanc, transfer_syntax: str, endian: str, header: int
) -> None:
    data = make_instance(pixels=(8, 8), transfer_syntax=transfer_syntax)
    offset = pixel_data_offset(orthanc, data)
    assert offset is not None
    assert data[offset : offset + 4] == PIXEL_DATA_TAG[endian]
    assert offset + header + 8 * 8 == len(data)  # the last element, 64 bytes of pixels


def test_pixel_data_offset_of_encapsulated_pixel_data(orthanc: FakeOrthanc) -> None:
    # JPEG 2000 that Orthanc cannot decode still gets an offset (measured).
    data = make_instance(
        pixels=(8, 8), transfer_syntax=JPEG2000Lossless, PixelData=encapsulate([b"\xff\x4f" * 8])
    )
    offset = pixel_data_offset(orthanc, data)
    assert offset is not None and data[offset : offset + 4] == PIXEL_DATA_TAG["little"]


def test_pixel_data_offset_counts_only_top_level_pixel_data(orthanc: FakeOrthanc) -> None:
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 2, 2, 8
    icon.add_new(0x7FE00010, "OB", b"\x01\x02\x03\x04")
    icon_only = make_instance(sop_uid="1.2.3.1", IconImageSequence=[icon])
    assert pixel_data_offset(orthanc, icon_only) is None
    both = make_instance(sop_uid="1.2.3.2", pixels=(8, 8), IconImageSequence=[icon])
    offset = pixel_data_offset(orthanc, both)
    assert offset is not None and offset + 12 + 8 * 8 == len(both)


def test_no_pixel_data_offset_without_pixel_data_or_when_deflated(orthanc: FakeOrthanc) -> None:
    no_pixels = orthanc.store(make_instance(sop_uid="1.2.3.3")).instance_id
    assert "PixelDataOffset" not in get_json(orthanc, f"/instances/{no_pixels}/metadata")
    assert (
        error_of(orthanc.RestApiGet, f"/instances/{no_pixels}/metadata/PixelDataOffset")
        == ErrorCode.UNKNOWN_RESOURCE
    )
    # Orthanc 1.10.1's stream reader does not inflate: no offset for deflated files (measured).
    deflated = make_instance(
        sop_uid="1.2.3.4", pixels=(8, 8), transfer_syntax=DeflatedExplicitVRLittleEndian
    )
    assert pixel_data_offset(orthanc, deflated) is None


def test_on_stored_callback_sees_the_pixel_data_offset(orthanc: FakeOrthanc) -> None:
    seen: list[str | None] = []
    orthanc.RegisterOnStoredInstanceCallback(
        lambda dicom, instance_id: seen.append(dicom.GetInstanceMetadata("PixelDataOffset"))
    )
    orthanc.store(rich_instance())
    assert seen == ["1166"]
