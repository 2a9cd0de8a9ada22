from __future__ import annotations

from typing import Any

from orthanc_dicom_events.tags import decode_text, select_instance_tags, select_main_tags

FULL: dict[str, Any] = {
    "0008,0005": {"Name": "SpecificCharacterSet", "Type": "String", "Value": "ISO_IR 100"},
    "0008,1030": {"Name": "StudyDescription", "Type": "TooLong"},
    "0010,0010": {"Name": "PatientName", "Type": "String", "Value": "Doe^John"},
    "0010,1000": {"Name": "OtherPatientIDs", "Type": "Null", "Value": None},
    "0055,0010": {"Name": "PrivateCreator", "Type": "String", "Value": "MATTERHORN_Prvt_Tags"},
    "0055,1011": {"Name": "QueueID", "Type": "String", "Value": "Q-17"},
    "0009,1001": {"Name": "Unknown Tag & Data", "Type": "String", "Value": "ignored"},
}


def test_named_private_and_group_element_tags_are_selected() -> None:
    def read_raw(tag: str) -> bytes:
        raise AssertionError("no raw read expected")

    tags = select_instance_tags(FULL, ["PatientName", "QueueID", "0010,0010"], read_raw)
    assert tags == {"PatientName": "Doe^John", "QueueID": "Q-17", "0010,0010": "Doe^John"}


def test_values_too_long_for_orthanc_json_are_read_raw_and_decoded() -> None:
    long_value = "Ë" + "x" * 299
    asked: list[str] = []

    def read_raw(tag: str) -> bytes:
        asked.append(tag)
        return (long_value + " ").encode("latin-1")

    tags = select_instance_tags(FULL, ["StudyDescription"], read_raw)
    assert tags == {"StudyDescription": long_value}
    assert asked == ["0008-1030"]


def test_absent_tag_is_absent_and_empty_tag_is_null() -> None:
    tags = select_instance_tags(FULL, ["Modality", "OtherPatientIDs"], lambda _: b"")
    assert tags == {"OtherPatientIDs": None}


def test_private_tag_with_a_foreign_creator_is_absent() -> None:
    # Orthanc names a private tag only when its creator matches the declared one.
    tags = select_instance_tags(FULL, ["QueueID"], lambda _: b"")
    assert "QueueID" in tags
    foreign = {k: v for k, v in FULL.items() if k != "0055,1011"}
    foreign["0055,1011"] = {"Name": "Unknown Tag & Data", "Type": "String", "Value": "Q"}
    assert select_instance_tags(foreign, ["QueueID"], lambda _: b"") == {}


def test_main_tags() -> None:
    main = {"Modality": "CT", "SeriesDescription": "Head"}
    assert select_main_tags(main, ["Modality", "BodyPartExamined"]) == {"Modality": "CT"}


def test_decode_text_strips_padding_and_defaults_to_ascii() -> None:
    assert decode_text(b"ABC\x00", "") == "ABC"
    assert decode_text("Ü".encode(), "ISO_IR 192") == "Ü"
