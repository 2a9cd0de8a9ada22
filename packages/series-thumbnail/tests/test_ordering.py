import random

import pytest

from orthanc_series_thumbnail.ordering import (
    Choice,
    SliceInfo,
    dicom_time_key,
    middle,
    order_by_geometry,
    order_by_instance_number,
    order_by_key,
    order_by_uid,
    slice_info,
)


def axial(index: int, z: float, number: str | None = None) -> SliceInfo:
    tags = {
        "SOPInstanceUID": f"1.2.{index}",
        "ImagePositionPatient": f"0\\0\\{z}",
        "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
    }
    if number is not None:
        tags["InstanceNumber"] = number
    return slice_info(f"i{index}", tags)


def test_geometry_orders_along_the_normal_not_by_instance_number() -> None:
    slices = [axial(i, z=10.0 * i, number=str(31 - i)) for i in range(31)]
    random.Random(4).shuffle(slices)
    ordered = order_by_geometry(slices)
    assert ordered is not None
    assert [s.instance_id for s in ordered] == [f"i{i}" for i in range(31)]
    assert middle(ordered) == Choice("i15", 0)


def test_geometry_uses_the_oblique_normal() -> None:
    # Sagittal: row along y, column along -z, so the normal is -x; z positions must not matter.
    tags = {"ImageOrientationPatient": "0\\1\\0\\0\\0\\-1"}
    slices = [
        slice_info("a", {**tags, "ImagePositionPatient": "5\\0\\-50"}),
        slice_info("b", {**tags, "ImagePositionPatient": "-5\\0\\50"}),
        slice_info("c", {**tags, "ImagePositionPatient": "0\\0\\0"}),
    ]
    ordered = order_by_geometry(slices)
    assert ordered is not None
    assert [s.instance_id for s in ordered] == ["a", "c", "b"]


@pytest.mark.parametrize(
    "tags",
    [
        {"ImagePositionPatient": "0\\0\\1"},
        {"ImageOrientationPatient": "1\\0\\0\\0\\1\\0"},
        {"ImagePositionPatient": "0\\0", "ImageOrientationPatient": "1\\0\\0\\0\\1\\0"},
        {"ImagePositionPatient": "0\\0\\x", "ImageOrientationPatient": "1\\0\\0\\0\\1\\0"},
        {"ImagePositionPatient": "0\\0\\1", "ImageOrientationPatient": "1\\0\\0\\1\\0\\0"},
    ],
)
def test_geometry_refuses_incomplete_or_degenerate_geometry(tags: dict[str, str]) -> None:
    assert order_by_geometry([slice_info("x", tags), axial(1, 5.0)]) is None


def test_instance_number_fallback_and_its_absence() -> None:
    slices = [slice_info(f"i{n}", {"InstanceNumber": str(n)}) for n in (3, 1, 2, 10)]
    ordered = order_by_instance_number(slices)
    assert ordered is not None
    assert [s.instance_id for s in ordered] == ["i1", "i2", "i3", "i10"]
    assert order_by_instance_number([*slices, slice_info("none", {})]) is None


def test_uid_order_is_numeric_per_component() -> None:
    slices = [slice_info(u, {"SOPInstanceUID": u}) for u in ("1.2.10", "1.2.9", "1.2.100")]
    assert [s.instance_id for s in order_by_uid(slices)] == ["1.2.9", "1.2.10", "1.2.100"]


def test_middle_is_n_div_2_and_middle_frame_of_multiframe() -> None:
    slices = [slice_info(f"i{i}", {}) for i in range(4)]
    assert middle(slices) == Choice("i2", 0)
    single = slice_info("mf", {"NumberOfFrames": "96"})
    assert middle([single]) == Choice("mf", 48)
    assert slice_info("bad", {"NumberOfFrames": "zero"}).frames == 1


def test_time_keys() -> None:
    assert dicom_time_key("20240101", "101010.5") == ("20240101", 36610.5)
    assert dicom_time_key("", "10:10:10") == ("", 36610.0)
    assert dicom_time_key("", "10") == ("", 36000.0)
    assert dicom_time_key("", "") is None
    assert dicom_time_key("", "1x") is None
    times = {"a": "120000", "b": "090000", "c": "100000"}
    slices = [slice_info(k, {}) for k in times]
    ordered = order_by_key(slices, lambda s: dicom_time_key("", times[s.instance_id]))
    assert ordered is not None
    assert [s.instance_id for s in ordered] == ["b", "c", "a"]
    assert order_by_key(slices, lambda s: None) is None
