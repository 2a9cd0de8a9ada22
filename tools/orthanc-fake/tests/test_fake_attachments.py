"""User-defined attachments (`UserContentType`), as Orthanc 1.10.1 answers a plugin."""

import pytest
from fake_samples import CONFIGURATION, SERIES_ID, get_json, rich_instance

from orthanc_fake import FakeOrthanc, OrthancException
from orthanc_fake.enums import ChangeType, ErrorCode, ResourceType


@pytest.fixture
def orthanc() -> FakeOrthanc:
    return FakeOrthanc({**CONFIGURATION, "UserContentType": {"Picture": [2001, "image/jpeg"]}})


def error_of(call: object, *arguments: object) -> int:
    with pytest.raises(OrthancException) as raised:
        call(*arguments)  # type: ignore[operator]
    code: int = raised.value.args[0]
    return code


def test_an_attachment_is_written_read_listed_and_deleted(orthanc: FakeOrthanc) -> None:
    instance_id = orthanc.store(rich_instance()).instance_id
    uri = f"/series/{SERIES_ID}/attachments/Picture"
    assert get_json(orthanc, f"/series/{SERIES_ID}/attachments") == []
    assert get_json(orthanc, f"/instances/{instance_id}/attachments") == ["dicom"]
    assert orthanc.RestApiPut(uri, b"\x00bytes") == b"{}"
    assert get_json(orthanc, uri) == ["data", "md5", "size"]
    assert orthanc.RestApiGet(f"{uri}/data") == b"\x00bytes"
    assert get_json(orthanc, f"/series/{SERIES_ID}/attachments") == ["Picture"]
    orthanc.RestApiDelete(uri)
    assert error_of(orthanc.RestApiGet, f"{uri}/data") == ErrorCode.UNKNOWN_RESOURCE


def test_attachment_errors_match_orthanc(orthanc: FakeOrthanc) -> None:
    orthanc.store(rich_instance())
    uri = f"/series/{SERIES_ID}/attachments"
    assert error_of(orthanc.RestApiGet, f"{uri}/Picture/data") == ErrorCode.UNKNOWN_RESOURCE
    assert error_of(orthanc.RestApiDelete, f"{uri}/Picture") == ErrorCode.UNKNOWN_RESOURCE
    assert error_of(orthanc.RestApiPut, f"{uri}/Undeclared", b"x") == ErrorCode.INEXISTENT_ITEM
    assert error_of(orthanc.RestApiGet, f"{uri}/Undeclared/data") == ErrorCode.INEXISTENT_ITEM


def test_attachment_updates_are_logged_changes_and_go_with_their_resource(
    orthanc: FakeOrthanc,
) -> None:
    received: list[tuple[int, int, str]] = []
    orthanc.RegisterOnChangeCallback(lambda *change: received.append(change))
    orthanc.store(rich_instance())
    orthanc.deliver_pending_changes()
    received.clear()
    orthanc.RestApiPut(f"/series/{SERIES_ID}/attachments/Picture", b"x")
    orthanc.RestApiDelete(f"/series/{SERIES_ID}/attachments/Picture")
    orthanc.RestApiPut(f"/series/{SERIES_ID}/attachments/Picture", b"y")
    orthanc.deliver_pending_changes()
    assert received == [(ChangeType.UPDATED_ATTACHMENT, ResourceType.SERIES, SERIES_ID)] * 3
    assert [c["ChangeType"] for c in get_json(orthanc, "/changes?since=4")["Changes"]] == [
        "UpdatedAttachment"
    ] * 3
    orthanc.RestApiDelete(f"/series/{SERIES_ID}")
    assert error_of(orthanc.RestApiGet, f"/series/{SERIES_ID}/attachments/Picture/data") == 17
