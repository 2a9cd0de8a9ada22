"""Deletion, with the DELETED order measured on Orthanc 1.10.1."""

import pytest

from orthanc_fake import FakeOrthanc, OrthancException, make_instance
from orthanc_fake.enums import ChangeType, ResourceType


@pytest.fixture
def received(orthanc: FakeOrthanc) -> list[tuple[int, int, str]]:
    changes: list[tuple[int, int, str]] = []
    orthanc.RegisterOnChangeCallback(lambda *change: changes.append(change))
    return changes


def deleted_after(
    orthanc: FakeOrthanc, received: list[tuple[int, int, str]], uri: str
) -> list[tuple[int, str]]:
    orthanc.deliver_pending_changes()
    received.clear()
    orthanc.RestApiDelete(uri)
    orthanc.deliver_pending_changes()
    assert all(change_type == ChangeType.DELETED for change_type, _, _ in received)
    return [(level, resource_id) for _, level, resource_id in received]


def test_deleting_the_only_series_deletes_instances_then_ancestors_then_it(
    orthanc: FakeOrthanc, received: list[tuple[int, int, str]]
) -> None:
    first = orthanc.store(make_instance(sop_uid="1.1"))
    second = orthanc.store(make_instance(sop_uid="1.2"))
    assert deleted_after(orthanc, received, f"/series/{first.series_id}") == [
        (ResourceType.INSTANCE, first.instance_id),
        (ResourceType.INSTANCE, second.instance_id),
        (ResourceType.PATIENT, first.patient_id),
        (ResourceType.STUDY, first.study_id),
        (ResourceType.SERIES, first.series_id),
    ]
    assert orthanc.RestApiGet("/patients") == b"[]"


def test_deleting_a_series_keeps_its_study_when_it_has_another(
    orthanc: FakeOrthanc, received: list[tuple[int, int, str]]
) -> None:
    kept = orthanc.store(make_instance(series_uid="1.9", sop_uid="1.1"))
    doomed = orthanc.store(make_instance(series_uid="1.8", sop_uid="1.2"))
    answer = orthanc.RestApiGet(f"/studies/{kept.study_id}")
    assert doomed.series_id.encode() in answer
    assert deleted_after(orthanc, received, f"/series/{doomed.series_id}") == [
        (ResourceType.INSTANCE, doomed.instance_id),
        (ResourceType.SERIES, doomed.series_id),
    ]
    assert doomed.series_id.encode() not in orthanc.RestApiGet(f"/studies/{kept.study_id}")


def test_delete_answers_the_remaining_ancestor(orthanc: FakeOrthanc) -> None:
    first = orthanc.store(make_instance(sop_uid="1.1"))
    orthanc.store(make_instance(sop_uid="1.2"))
    rest = orthanc.rest_api
    assert rest.call("DELETE", f"/instances/{first.instance_id}") == (
        b'{\n   "RemainingAncestor": {\n      "ID": "%s",\n      "Path": "/series/%s",\n'
        b'      "Type": "Series"\n   }\n}' % (first.series_id.encode(), first.series_id.encode())
    )


def test_deleted_resources_leave_the_change_log_but_not_the_sequence(orthanc: FakeOrthanc) -> None:
    kept = orthanc.store(make_instance(patient_id="KEPT"))
    doomed = orthanc.store(make_instance(patient_id="DOOMED"))
    orthanc.RestApiDelete(f"/patients/{doomed.patient_id}")
    changes = orthanc.rest_api.call("GET", "/changes?since=4")
    assert changes is not None and b'"Last": 8' in changes and b'"Changes": []' in changes
    log = orthanc.rest_api.call("GET", "/changes")
    assert (
        log is not None
        and kept.instance_id.encode() in log
        and doomed.instance_id.encode() not in log
    )


def test_deleting_an_unknown_resource_is_unknown_resource(orthanc: FakeOrthanc) -> None:
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiDelete("/series/nope")
    assert raised.value.args == (17, "Unknown resource")
