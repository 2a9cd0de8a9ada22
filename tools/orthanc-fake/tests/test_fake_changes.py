"""Change log and on-change delivery, as measured on Orthanc 1.10.1."""

from fake_samples import INSTANCE_ID, PATIENT_ID, SERIES_ID, STUDY_ID, get_json, rich_instance

from orthanc_fake import FakeOrthanc, make_instance
from orthanc_fake.enums import ChangeType, InstanceOrigin, ResourceType


def record_changes(orthanc: FakeOrthanc) -> list[tuple[int, int, str]]:
    received: list[tuple[int, int, str]] = []
    orthanc.RegisterOnChangeCallback(lambda *change: received.append(change))
    return received


def test_store_queues_changes_until_delivered(orthanc: FakeOrthanc) -> None:
    received = record_changes(orthanc)
    orthanc.store(rich_instance())
    assert received == []
    assert orthanc.deliver_pending_changes() == 7
    assert received == [
        (ChangeType.NEW_INSTANCE, ResourceType.INSTANCE, INSTANCE_ID),
        (ChangeType.NEW_SERIES, ResourceType.SERIES, SERIES_ID),
        (ChangeType.NEW_STUDY, ResourceType.STUDY, STUDY_ID),
        (ChangeType.NEW_PATIENT, ResourceType.PATIENT, PATIENT_ID),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.SERIES, SERIES_ID),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.STUDY, STUDY_ID),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.PATIENT, PATIENT_ID),
    ]


def test_second_instance_of_a_series_only_adds_an_instance(orthanc: FakeOrthanc) -> None:
    received = record_changes(orthanc)
    orthanc.store(make_instance(sop_uid="1.1"))
    orthanc.deliver_pending_changes()
    received.clear()
    second = orthanc.store(make_instance(sop_uid="1.2"))
    orthanc.deliver_pending_changes()
    assert [change[:2] for change in received] == [
        (ChangeType.NEW_INSTANCE, ResourceType.INSTANCE),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.SERIES),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.STUDY),
        (ChangeType.NEW_CHILD_INSTANCE, ResourceType.PATIENT),
    ]
    assert received[0][2] == second.instance_id
    assert get_json(orthanc, "/changes")["Last"] == 5


def test_duplicate_is_already_stored_without_changes(orthanc: FakeOrthanc) -> None:
    stored: list[str] = []
    orthanc.RegisterOnStoredInstanceCallback(lambda dicom, instance_id: stored.append(instance_id))
    first = orthanc.store(rich_instance())
    orthanc.deliver_pending_changes()
    again = orthanc.store(rich_instance())
    assert again.status == "AlreadyStored"
    assert again.instance_id == first.instance_id
    assert orthanc.pending_changes == []
    # The on-stored callback runs for duplicates too, as in Orthanc.
    assert stored == [first.instance_id, first.instance_id]


def test_changes_paging_reports_done_and_last(orthanc: FakeOrthanc) -> None:
    for number in range(3):
        orthanc.store(make_instance(patient_id=f"P{number}"))
    first_page = get_json(orthanc, "/changes?since=2&limit=3")
    assert [c["Seq"] for c in first_page["Changes"]] == [3, 4, 5]
    assert (first_page["Done"], first_page["Last"]) == (False, 5)
    rest = get_json(orthanc, "/changes?since=5&limit=100")
    assert (len(rest["Changes"]), rest["Done"], rest["Last"]) == (7, True, 12)
    empty = get_json(orthanc, "/changes?since=12")
    assert (empty["Changes"], empty["Done"], empty["Last"]) == ([], True, 12)
    last = get_json(orthanc, "/changes?last")
    assert [c["Seq"] for c in last["Changes"]] == [12]


def test_mark_stable_logs_and_delivers_in_order(orthanc: FakeOrthanc) -> None:
    received = record_changes(orthanc)
    result = orthanc.store(rich_instance())
    orthanc.mark_stable(ResourceType.SERIES, result.series_id)
    assert received[-1] == (ChangeType.STABLE_SERIES, ResourceType.SERIES, SERIES_ID)
    assert len(received) == 8
    assert get_json(orthanc, f"/series/{SERIES_ID}")["IsStable"] is True
    assert get_json(orthanc, "/changes")["Changes"][-1]["ChangeType"] == "StableSeries"


def test_mark_all_stable_goes_series_study_patient(orthanc: FakeOrthanc) -> None:
    received = record_changes(orthanc)
    orthanc.store(rich_instance())
    orthanc.deliver_pending_changes()
    received.clear()
    orthanc.mark_all_stable()
    assert received == [
        (ChangeType.STABLE_SERIES, ResourceType.SERIES, SERIES_ID),
        (ChangeType.STABLE_STUDY, ResourceType.STUDY, STUDY_ID),
        (ChangeType.STABLE_PATIENT, ResourceType.PATIENT, PATIENT_ID),
    ]
    orthanc.store(make_instance("P1", "1.2.3", "1.2.3.4", "1.2.3.4.6"))
    assert get_json(orthanc, f"/series/{SERIES_ID}")["IsStable"] is False


def test_fire_change_calls_the_callback_without_logging(orthanc: FakeOrthanc) -> None:
    received = record_changes(orthanc)
    orthanc.fire_change(ChangeType.STABLE_SERIES, ResourceType.SERIES, "some-id")
    assert received == [(ChangeType.STABLE_SERIES, ResourceType.SERIES, "some-id")]
    assert get_json(orthanc, "/changes")["Changes"] == []


def test_start_and_stop_deliver_lifecycle_changes() -> None:
    orthanc = FakeOrthanc(started=False)
    received = record_changes(orthanc)
    orthanc.start()
    orthanc.stop()
    assert received == [
        (ChangeType.ORTHANC_STARTED, ResourceType.NONE, ""),
        (ChangeType.ORTHANC_STOPPED, ResourceType.NONE, ""),
    ]


def test_callback_errors_are_recorded_and_logged(orthanc: FakeOrthanc) -> None:
    def failing(change_type: int, level: int, resource_id: str) -> None:
        raise ValueError("broken plugin")

    orthanc.RegisterOnChangeCallback(failing)
    orthanc.fire_change(ChangeType.STABLE_SERIES, ResourceType.SERIES, "x")
    assert [str(error) for error in orthanc.callback_errors] == ["broken plugin"]
    assert "broken plugin" in orthanc.log_messages("error")[0]


def test_dicom_origin_sets_the_network_metadata(orthanc: FakeOrthanc) -> None:
    seen: dict[str, object] = {}

    def on_stored(dicom: object, instance_id: str) -> None:
        seen["origin"] = dicom.GetInstanceOrigin()  # type: ignore[attr-defined]
        seen["aet"] = dicom.GetInstanceRemoteAet()  # type: ignore[attr-defined]
        seen["called"] = dicom.GetInstanceMetadata("CalledAET")  # type: ignore[attr-defined]
        seen["http"] = dicom.GetInstanceMetadata("HttpUsername")  # type: ignore[attr-defined]

    orthanc.RegisterOnStoredInstanceCallback(on_stored)
    result = orthanc.store(
        rich_instance(), InstanceOrigin.DICOM_PROTOCOL, remote_aet="MODALITY", remote_ip="10.0.0.9"
    )
    assert seen == {
        "origin": InstanceOrigin.DICOM_PROTOCOL,
        "aet": "MODALITY",
        "called": "ORTHANC",
        "http": None,
    }
    metadata = get_json(orthanc, f"/instances/{result.instance_id}/metadata?expand")
    assert (metadata["Origin"], metadata["RemoteAET"], metadata["RemoteIP"]) == (
        "DicomProtocol",
        "MODALITY",
        "10.0.0.9",
    )
    assert metadata["IndexInSeries"] == "0007"
