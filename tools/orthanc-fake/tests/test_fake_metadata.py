"""Metadata through the REST API, with the errors Orthanc 1.10.1 raises to plugins."""

import pytest
from fake_samples import SERIES_ID, get_json, rich_instance

from orthanc_fake import FakeOrthanc, OrthancException
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
