"""The publisher thread against the fake `orthanc` module and an in-memory broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from dicom_events_testing import MemoryPublisher, base_config, wait_for

from orthanc_dicom_events.events import load_schema
from orthanc_dicom_events.plugin import DicomEventsPlugin, create
from orthanc_dicom_events.publishers import PublishError
from orthanc_dicom_events.worker import CURSOR_PROPERTY
from orthanc_fake import FakeOrthanc, make_instance
from orthanc_fake.dicom import PrivateBlock
from orthanc_fake.enums import ChangeType, InstanceOrigin, ResourceType

ALL_EVENTS = {
    key: True
    for key in (
        "StoredInstance",
        "StableSeries",
        "StableStudy",
        "StablePatient",
        "DeletedInstance",
        "DeletedSeries",
        "DeletedStudy",
        "DeletedPatient",
    )
}

Setup = Callable[..., tuple[FakeOrthanc, DicomEventsPlugin, MemoryPublisher]]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    running: list[tuple[FakeOrthanc, DicomEventsPlugin]] = []

    def build(
        fake: FakeOrthanc | None = None,
        publisher: MemoryPublisher | None = None,
        extra: dict[str, Any] | None = None,
        capture_on_store: bool = True,
        **events: Any,
    ) -> tuple[FakeOrthanc, DicomEventsPlugin, MemoryPublisher]:
        config = base_config(**(events or ALL_EVENTS))
        config["DicomEvents"].update(
            {"StateDirectory": str(tmp_path / "state"), "ShutdownFlushSeconds": 2, **(extra or {})}
        )
        config["Dictionary"] = {"0055,1011": ["LO", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]}
        fake = fake or FakeOrthanc(config, started=False)
        fake.configuration.update(config)
        publisher = publisher or MemoryPublisher()
        plugin = create(fake, config)
        plugin.worker._publisher_factory = lambda: publisher
        fake.on_change_callback = None  # a restarted Orthanc: a fresh registration
        fake.RegisterOnChangeCallback(plugin.on_change)
        fake.on_stored_instance_callback = None
        # Without the capture, every tag is read through REST (instances stored before a start).
        if plugin.on_stored_instance is not None and capture_on_store:
            fake.RegisterOnStoredInstanceCallback(plugin.on_stored_instance)
        fake.start()
        running.append((fake, plugin))
        assert plugin.worker.ready.wait(5), fake.log_messages()
        return fake, plugin, publisher

    yield build
    for _, plugin in running:
        plugin.stop()


def _store(fake: FakeOrthanc, count: int, series: str = "1.2.3.4", **options: Any) -> list[str]:
    ids = []
    for number in range(count):
        instance = make_instance(
            series_uid=series, study_uid="1.2.3", sop_uid=f"{series}.{number + 1}"
        )
        ids.append(fake.store(instance, **options).instance_id)
    fake.deliver_pending_changes()
    return ids


def _envelopes(publisher: MemoryPublisher) -> list[dict[str, Any]]:
    return [event.envelope for event in publisher.events]


def _valid(envelope: dict[str, Any]) -> None:
    jsonschema.validate(envelope, load_schema(envelope["type"]))


def test_stored_and_stable_events_follow_the_change_log(setup: Setup) -> None:
    fake, _plugin, publisher = setup()
    ids = _store(fake, 3, remote_ip="10.0.0.7")
    fake.mark_all_stable()
    wait_for(lambda: len(publisher.events) == 6, what="6 events")
    envelopes = _envelopes(publisher)
    assert [e["type"] for e in envelopes] == [
        "dicom.instance.stored",
        "dicom.instance.stored",
        "dicom.instance.stored",
        "dicom.series.stable",
        "dicom.study.stable",
        "dicom.patient.stable",
    ]
    for envelope in envelopes:
        _valid(envelope)
        assert envelope["source"] == "orthanc://UnitOrthanc"
    stored = envelopes[:3]
    assert [e["subject"] for e in stored] == ids
    assert [e["data"]["instanceCount"] for e in stored] == [1, 2, 3]
    assert stored[0]["data"]["origin"] == "REST_API"
    assert stored[0]["data"]["remoteIp"] == "10.0.0.7"
    series = envelopes[3]["data"]
    assert series["resourceId"] == stored[0]["data"]["seriesId"]
    assert series["studyId"] == stored[0]["data"]["studyId"]
    sequences = [e["orthancsequence"] for e in envelopes]
    assert sequences == sorted(sequences)
    assert len({e["id"] for e in envelopes}) == 6
    # Saved at most once a second, so a poll round later at the latest.
    wait_for(
        lambda: fake.GetGlobalProperty(CURSOR_PROPERTY, "") == str(sequences[-1]),
        what="the cursor saved",
    )


def test_the_cursor_is_saved_at_shutdown_without_waiting(setup: Setup) -> None:
    fake, plugin, publisher = setup(StoredInstance=True)
    time.sleep(1.2)  # past the start-up save
    _store(fake, 2, series="1.2.3.5")
    wait_for(lambda: len(publisher.events) == 2, what="2 events")
    first = _envelopes(publisher)[-1]["orthancsequence"]
    wait_for(lambda: fake.GetGlobalProperty(CURSOR_PROPERTY, "") == str(first), what="saved")
    _store(fake, 2, series="1.2.3.6")  # within a second of that save: not saved yet
    wait_for(lambda: len(publisher.events) == 4, what="4 events")
    last = _envelopes(publisher)[-1]["orthancsequence"]
    plugin.stop()
    assert fake.GetGlobalProperty(CURSOR_PROPERTY, "") == str(last)


def test_duplicate_upload_is_not_an_event(setup: Setup) -> None:
    fake, _, publisher = setup(StoredInstance=True)
    _store(fake, 1)
    _store(fake, 1)
    time.sleep(0.2)
    assert len(publisher.events) == 1


def test_first_start_begins_at_the_end_of_the_log_unless_replay(
    setup: Setup, tmp_path: Path
) -> None:
    fake = FakeOrthanc(base_config(), started=True)
    _store(fake, 2)
    fake.started = False
    _, plugin, publisher = setup(fake=fake, StoredInstance=True)
    time.sleep(0.2)
    assert publisher.events == []
    plugin.stop()

    replaying = FakeOrthanc(base_config(), started=True)
    _store(replaying, 2)
    replaying.started = False
    _, _, replayed = setup(fake=replaying, extra={"ReplayFromStart": True}, StoredInstance=True)
    wait_for(lambda: len(replayed.events) == 2, what="replayed events")


def test_origin_filter_tells_rest_from_dicom(setup: Setup) -> None:
    fake, _, publisher = setup(StoredInstance=True, StoredInstanceSkipOrigin=["REST_API"])
    _store(fake, 1, series="1.1")
    _store(fake, 1, series="1.2", origin=InstanceOrigin.DICOM_PROTOCOL, remote_aet="MODALITY")
    wait_for(lambda: len(publisher.events) == 1, what="the C-STORE event")
    time.sleep(0.1)
    (only,) = _envelopes(publisher)
    assert only["data"]["origin"] == "DICOM_PROTOCOL"
    assert only["data"]["remoteAet"] == "MODALITY"
    assert only["data"]["calledAet"]


def test_configured_tags_including_a_private_one(setup: Setup) -> None:
    fake, _, publisher = setup(
        StoredInstance=True,
        StableSeries=True,
        StoredInstancePublishTags=["PatientID", "QueueID", "BodyPartExamined"],
        StableSeriesPublishTags=["SeriesInstanceUID", "Modality", "SeriesDescription"],
    )
    from orthanc_fake import PrivateBlock

    instance = make_instance(
        private_blocks=[PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("LO", "Q-9")})]
    )
    fake.store(instance)
    fake.mark_all_stable()
    wait_for(lambda: len(publisher.events) == 2, what="2 events")
    stored, series = _envelopes(publisher)
    assert stored["data"]["tags"] == {"PatientID": "PATIENT", "QueueID": "Q-9"}
    assert series["data"]["tags"]["SeriesInstanceUID"]
    assert "SeriesDescription" not in series["data"]["tags"]


def test_deleted_events_carry_the_ancestors_seen_before(setup: Setup) -> None:
    fake, _, publisher = setup()
    ids = _store(fake, 2)
    wait_for(lambda: len(publisher.events) == 2, what="stored events")
    stored = _envelopes(publisher)[0]["data"]
    fake.RestApiDelete(f"/series/{stored['seriesId']}")
    fake.deliver_pending_changes()
    wait_for(lambda: len(publisher.events) >= 6, what="deleted events")
    deleted = [e for e in _envelopes(publisher) if e["type"].endswith(".deleted")]
    for envelope in deleted:
        _valid(envelope)
    by_subject = {e["subject"]: e for e in deleted}
    instance = by_subject[ids[0]]["data"]
    assert instance["seriesId"] == stored["seriesId"]
    assert instance["patientId"] == stored["patientId"]
    assert by_subject[stored["seriesId"]]["data"]["studyId"] == stored["studyId"]
    assert {e["type"] for e in deleted} >= {"dicom.instance.deleted", "dicom.series.deleted"}


def test_broker_outage_loses_nothing_and_keeps_order(setup: Setup) -> None:
    publisher = MemoryPublisher()
    publisher.down = True
    fake, plugin, _ = setup(publisher=publisher, StoredInstance=True)
    _store(fake, 30, series="2.1")
    _store(fake, 30, series="2.2")
    wait_for(lambda: plugin.status()["Broker"]["Failed"] >= 1, what="a failed attempt")
    status = plugin.status()["Broker"]
    assert status["State"] == "disconnected"
    assert status["Backlog"] >= 60
    assert "simulated" in status["LastError"]
    plugin.worker._backoff.reset()
    publisher.down = False
    wait_for(lambda: len(publisher.events) == 60, timeout=10, what="the backlog")
    sequences = [e["orthancsequence"] for e in _envelopes(publisher)]
    assert sequences == sorted(sequences)
    wait_for(lambda: plugin.status()["Broker"]["Backlog"] == 0, what="an empty backlog")
    assert fake.metrics["orthanc_dicom_events_backlog"][0] == 0


def test_restart_resumes_from_the_persisted_cursor(setup: Setup) -> None:
    fake, plugin, publisher = setup(StoredInstance=True)
    _store(fake, 2, series="3.1")
    wait_for(lambda: len(publisher.events) == 2, what="2 events")
    plugin.stop()
    fake.started = False
    _store(fake, 3, series="3.2")  # recorded while the plugin is not running
    second = MemoryPublisher()
    setup(fake=fake, publisher=second, StoredInstance=True)
    wait_for(lambda: len(second.events) == 3, what="the changes recorded while stopped")
    time.sleep(0.1)
    assert len(second.events) == 3


def test_throttle_coalesces_a_burst_and_publishes_its_last_instance(setup: Setup) -> None:
    fake, _, publisher = setup(StoredInstance=True, StoredInstanceThrottleMs=300)
    ids = _store(fake, 10)
    wait_for(lambda: len(publisher.events) == 2, what="first and last of the burst")
    first, last = _envelopes(publisher)
    assert first["subject"] == ids[0]
    assert last["subject"] == ids[-1]
    assert last["data"]["instanceCount"] == 10
    time.sleep(0.4)
    assert len(publisher.events) == 2


def test_throttled_instance_leaves_before_the_series_stable_event(setup: Setup) -> None:
    fake, _, publisher = setup(
        StoredInstance=True, StableSeries=True, StoredInstanceThrottleMs=60_000
    )
    ids = _store(fake, 3)
    fake.mark_all_stable()
    wait_for(lambda: len(publisher.events) == 3, what="3 events")
    types = [(e["type"], e["subject"]) for e in _envelopes(publisher)]
    assert types[0] == ("dicom.instance.stored", ids[0])
    assert types[1] == ("dicom.instance.stored", ids[2])
    assert types[2][0] == "dicom.series.stable"


def test_stop_is_bounded_when_the_broker_never_answers(setup: Setup) -> None:
    publisher = MemoryPublisher()
    publisher.down = True
    fake, _plugin, _ = setup(publisher=publisher, extra={"ShutdownFlushSeconds": 1})
    _store(fake, 5)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 3.5
    assert publisher.closed


def test_status_route_and_masked_password(setup: Setup) -> None:
    fake, plugin, publisher = setup(StoredInstance=True)
    publisher.down = True
    _store(fake, 1)
    wait_for(lambda: plugin.status()["Broker"]["Failed"] >= 1, what="a failure")
    output = fake.call_route("GET", "/dicom-events/status")
    body = json.loads(output.body)  # type: ignore[attr-defined]
    assert body["Broker"]["URL"] == "amqp://user:***@127.0.0.1:5672/"
    assert body["Broker"]["Type"] == "rabbitmq"
    assert {"LastPublishedSequence", "Backlog", "Published", "Failed", "LastError"} <= set(
        body["Broker"]
    )
    assert not any("s3cret" in message for message in fake.log_messages())
    assert fake.call_route("POST", "/dicom-events/status").status == 405  # type: ignore[attr-defined]


def test_password_in_an_error_is_masked_in_the_log(setup: Setup) -> None:
    class LeakyPublisher(MemoryPublisher):
        def publish(self, events: Any) -> int:
            from orthanc_dicom_events.publishers import PublishError

            raise PublishError("cannot reach amqp://user:s3cret@127.0.0.1:5672/ (s3cret)")

    fake, plugin, _ = setup(publisher=LeakyPublisher(), StoredInstance=True)
    _store(fake, 1)
    wait_for(lambda: plugin.status()["Broker"]["Failed"] >= 1, what="a failure")
    logs = "\n".join(fake.log_messages())
    assert "cannot reach" in logs
    assert "s3cret" not in logs
    assert "s3cret" not in json.dumps(plugin.status())


def test_changes_fired_by_hand_only_wake_the_thread(setup: Setup) -> None:
    fake, _plugin, publisher = setup(StoredInstance=True)
    fake.fire_change(ChangeType.NEW_INSTANCE, ResourceType.INSTANCE, "not-in-the-log")
    time.sleep(0.1)
    assert publisher.events == []


def _record_calls(fake: FakeOrthanc, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_get, real_post = fake.RestApiGet, fake.RestApiPost

    def get(uri: str) -> bytes:
        calls.append(f"GET {uri}")
        return real_get(uri)

    def post(uri: str, body: bytes | str) -> bytes:
        calls.append(f"POST {uri}")
        return real_post(uri, body)

    monkeypatch.setattr(fake, "RestApiGet", get)
    monkeypatch.setattr(fake, "RestApiPost", post)
    return calls


def test_a_burst_is_described_in_bulk_not_per_instance(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    calls = _record_calls(fake, monkeypatch)
    fake, _plugin, publisher = setup(fake=fake, extra={"BatchWindowMs": 200})
    ids = _store(fake, 40, remote_ip="10.0.0.9")
    wait_for(lambda: len(publisher.events) == 40, what="40 events")
    per_instance = [c for c in calls if "/metadata" in c or c.startswith("GET /instances/")]
    assert per_instance == []
    # The instances, then their series and study (parents): one call per level and round; the
    # window may split the burst in two rounds. No lookup per series.
    assert 1 <= calls.count("POST /tools/bulk-content") <= 6
    assert [c for c in calls if c.startswith(("GET /series", "GET /studies"))] == []
    envelopes = _envelopes(publisher)
    assert [e["subject"] for e in envelopes] == ids
    assert {e["data"]["remoteIp"] for e in envelopes} == {"10.0.0.9"}
    assert [e["data"]["instanceCount"] for e in envelopes] == list(range(1, 41))


def test_tags_are_read_only_for_the_instances_whose_event_leaves(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    calls = _record_calls(fake, monkeypatch)
    fake, _plugin, publisher = setup(
        fake=fake,
        StoredInstance=True,
        StoredInstanceThrottleMs=300,
        StoredInstancePublishTags=["PatientID", "SOPInstanceUID"],
    )
    ids = _store(fake, 10)
    wait_for(lambda: len(publisher.events) == 2, what="first and last of the burst")
    first, last = _envelopes(publisher)
    assert (first["subject"], last["subject"]) == (ids[0], ids[-1])
    assert last["data"]["tags"]["SOPInstanceUID"] == "1.2.3.4.10"
    assert list(last["data"])[-2:] == ["tags", "instanceCount"]
    read = [c for c in calls if c.startswith("GET /instances/") and c.endswith("/tags")]
    assert read == [f"GET /instances/{ids[0]}/tags", f"GET /instances/{ids[-1]}/tags"]


CAPTURING_ORTHANC = "1.13.0"  # tags are taken on store from Orthanc 1.12.5 on


def test_without_throttle_the_tags_come_from_the_stored_instance_not_a_read(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = base_config()
    config["Dictionary"] = {"0055,1011": ["LO", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]}
    fake = FakeOrthanc(config, started=False, orthanc_version=CAPTURING_ORTHANC)
    calls = _record_calls(fake, monkeypatch)
    fake, plugin, publisher = setup(
        fake=fake,
        StoredInstance=True,
        StoredInstancePublishTags=["PatientID", "QueueID", "StudyDescription"],
    )
    assert plugin.on_stored_instance is not None
    block = PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("LO", "queue-7")})
    short = fake.store(
        make_instance(sop_uid="7.1", private_blocks=[block], StudyDescription="Chest")
    ).instance_id
    # Orthanc's JSON leaves out values over 256 characters: that one is read through REST.
    long = fake.store(make_instance(sop_uid="7.2", StudyDescription="x" * 300)).instance_id
    fake.deliver_pending_changes()
    wait_for(lambda: len(publisher.events) == 2, what="2 stored events")
    tags = {e["subject"]: e["data"]["tags"] for e in _envelopes(publisher)}
    expected = {"PatientID": "PATIENT", "QueueID": "queue-7", "StudyDescription": "Chest"}
    assert tags[short] == expected
    assert long in tags
    # (The real Orthanc's raw value read, `/content/0008-1030`, is covered end to end.)
    read = [c for c in calls if c.startswith("GET /instances/") and "/content/" not in c]
    assert read == [f"GET /instances/{long}/tags"]
    assert plugin.stored_tags is not None and plugin.stored_tags.captured == 1


def test_with_a_throttle_no_tags_or_orthanc_1_10_nothing_runs_on_the_store_path(
    setup: Setup,
) -> None:
    def newer() -> FakeOrthanc:
        return FakeOrthanc(base_config(), started=False, orthanc_version=CAPTURING_ORTHANC)

    _, throttled, _ = setup(
        fake=newer(),
        StoredInstance=True,
        StoredInstanceThrottleMs=500,
        StoredInstancePublishTags=["PatientID"],
    )
    _, untagged, _ = setup(fake=newer(), StoredInstance=True)
    _, older, _ = setup(StoredInstance=True, StoredInstancePublishTags=["PatientID"])  # 1.10.1
    _, captures, _ = setup(
        fake=newer(), StoredInstance=True, StoredInstancePublishTags=["PatientID"]
    )
    assert throttled.on_stored_instance is None
    assert untagged.on_stored_instance is None
    assert older.on_stored_instance is None and "InstanceTagsCapturedOnStore" not in older.status()
    assert captures.on_stored_instance is not None


def test_an_instance_of_a_skipped_origin_is_not_captured(setup: Setup) -> None:
    fake, plugin, publisher = setup(
        fake=FakeOrthanc(base_config(), started=False, orthanc_version=CAPTURING_ORTHANC),
        StoredInstance=True,
        StoredInstanceSkipOrigin=["REST_API"],
        StoredInstancePublishTags=["PatientID"],
    )
    _store(fake, 2, series="8.1")
    _store(fake, 1, series="8.2", origin=InstanceOrigin.DICOM_PROTOCOL, remote_aet="MODALITY")
    wait_for(lambda: len(publisher.events) == 1, what="the C-STORE event")
    assert _envelopes(publisher)[0]["data"]["tags"] == {"PatientID": "PATIENT"}
    assert plugin.stored_tags is not None
    assert plugin.stored_tags.captured == 1


def test_an_instance_stored_before_a_restart_has_its_tags_read(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False, orthanc_version=CAPTURING_ORTHANC)
    calls = _record_calls(fake, monkeypatch)
    fake, plugin, publisher = setup(
        fake=fake, StoredInstance=True, StoredInstancePublishTags=["SOPInstanceUID"]
    )
    publisher.down = True
    ids = _store(fake, 2, series="9.1")
    plugin.stop()
    fake.started = False
    _, restarted, returned = setup(
        fake=fake, StoredInstance=True, StoredInstancePublishTags=["SOPInstanceUID"]
    )
    wait_for(lambda: len(returned.events) == 2, what="the 2 events after the restart")
    assert [e["data"]["tags"]["SOPInstanceUID"] for e in _envelopes(returned)] == [
        "9.1.1",
        "9.1.2",
    ]
    assert {f"GET /instances/{i}/tags" for i in ids} <= set(calls)
    assert restarted.stored_tags is not None and len(restarted.stored_tags) == 0


def test_the_stable_events_of_a_page_read_their_resources_in_bulk(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    calls = _record_calls(fake, monkeypatch)
    fake, _plugin, publisher = setup(
        fake=fake,
        extra={"BatchWindowMs": 200},
        StableSeries=True,
        StableSeriesPublishTags=["SeriesInstanceUID"],
    )
    for series in ("5.1", "5.2", "5.3", "5.4"):
        _store(fake, 2, series=series)
    calls.clear()
    fake.mark_all_stable()
    wait_for(lambda: len(publisher.events) == 4, what="4 stable series events")
    tags = sorted(e["data"]["tags"]["SeriesInstanceUID"] for e in _envelopes(publisher))
    assert tags == ["5.1", "5.2", "5.3", "5.4"]
    assert len([c for c in calls if c.startswith("GET /series/")]) <= 1


class ReturningPublisher(MemoryPublisher):
    """Down until `back` is set; `came_back` tells it once, as the RabbitMQ probe does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.probes = 0
        self.returned_at: float | None = None

    def came_back(self) -> bool:
        self.probes += 1
        return not self.down and self.returned_at is None and self._mark()

    def _mark(self) -> bool:
        self.returned_at = time.monotonic()
        return True


def test_the_backoff_ends_as_soon_as_the_broker_is_back(setup: Setup) -> None:
    publisher = ReturningPublisher()
    fake, _plugin, _ = setup(publisher=publisher, StoredInstance=True)
    _store(fake, 1)
    wait_for(lambda: publisher.calls >= 4, what="a few failed tries", timeout=15)  # backoff grows
    wait_for(lambda: publisher.probes > 0, what="the probe polled during the backoff")
    publisher.down = False
    back = time.monotonic()
    wait_for(lambda: len(publisher.events) == 1, what="the event, once the broker is back")
    assert time.monotonic() - back < 1.0  # not the seconds left of the backoff


class PipelinedPublisher(MemoryPublisher):
    """Publishes in two halves, as the RabbitMQ publisher does; logs both halves."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def send(self, events: Any) -> Callable[[], Any]:
        self.log.append(f"send {len(events)}")

        def confirmations() -> Any:
            self.log.append("confirmed")
            return self.publish(events)

        return confirmations


def test_a_backlog_is_published_in_pipelined_pages(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    log: list[str] = []
    real_get = fake.RestApiGet

    def get(uri: str) -> bytes:
        if uri.startswith("/changes?since"):
            log.append("read page")
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    publisher = PipelinedPublisher(log)
    publisher.down = True  # a backlog gathers
    fake, plugin, _ = setup(fake=fake, publisher=publisher, StoredInstance=True)
    plugin.worker._page_size = 10
    ids = _store(fake, 45)
    wait_for(lambda: publisher.calls >= 1, what="a failed try")
    publisher.down = False
    wait_for(lambda: len(publisher.events) == 45, what="the backlog", timeout=20)
    assert [e["subject"] for e in _envelopes(publisher)] == ids  # in order, each once
    # While a page's confirmations were awaited, the next page was read.
    pipelined = [
        i for i in range(len(log) - 2) if log[i : i + 3] == ["send 10", "read page", "confirmed"]
    ]
    assert len(pipelined) >= 3
    # The cursor moves past the last page once its confirmations are in, a moment after the
    # publisher recorded its events.
    wait_for(lambda: plugin.status()["Broker"]["Backlog"] == 0, what="an empty backlog")


def test_a_page_built_ahead_is_built_again_when_a_deletion_came_meanwhile(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    reads: list[str] = []
    real_get = fake.RestApiGet

    def get(uri: str) -> bytes:
        if uri.startswith("/changes?since"):
            reads.append(uri)
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    log: list[str] = []
    publisher = PipelinedPublisher(log)
    publisher.down = True
    fake, plugin, _ = setup(
        fake=fake, publisher=publisher, StoredInstance=True, DeletedInstance=True
    )
    plugin.worker._page_size = 10
    ids = _store(fake, 25)
    wait_for(lambda: publisher.calls >= 1, what="a failed try")
    real_send = publisher.send
    deleted: list[str] = []

    def send(events: Any) -> Callable[[], Any]:
        confirmations = real_send(events)

        def confirmed() -> Any:
            if not deleted:  # noticed while this page is confirmed, the next one built
                deleted.append(ids[-1])
                fake.RestApiDelete(f"/instances/{ids[-1]}")
                fake.deliver_pending_changes()
            return confirmations()

        return confirmed

    monkeypatch.setattr(publisher, "send", send)
    publisher.down = False
    # The deleted instance is gone before its stored event was built: only its deletion goes.
    wait_for(lambda: len(publisher.events) == 25, what="24 stored events and the deletion")
    assert len(reads) > len(set(reads))  # a page read again: the one built ahead
    envelopes = _envelopes(publisher)
    assert [e["subject"] for e in envelopes if e["type"] == "dicom.instance.stored"] == ids[:-1]
    assert envelopes[-1]["type"] == "dicom.instance.deleted"


def test_without_bulk_content_each_instance_is_read_alone(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orthanc before 1.9.4 answers "unknown resource" for /tools/bulk-content."""
    fake = FakeOrthanc(base_config(), started=False)
    real_post = fake.RestApiPost

    def post(uri: str, body: bytes | str) -> bytes:
        if uri == "/tools/bulk-content":
            raise fake.OrthancException(17, "Unknown resource")
        return real_post(uri, body)

    monkeypatch.setattr(fake, "RestApiPost", post)
    fake, _plugin, publisher = setup(fake=fake)
    ids = _store(fake, 3, remote_ip="10.0.0.8")
    wait_for(lambda: len(publisher.events) == 3, what="3 events")
    envelopes = _envelopes(publisher)
    assert [e["subject"] for e in envelopes] == ids
    assert [e["data"]["origin"] for e in envelopes] == ["REST_API"] * 3
    assert [e["data"]["remoteIp"] for e in envelopes] == ["10.0.0.8"] * 3


def test_the_batch_window_holds_a_lone_change_at_most_that_long(setup: Setup) -> None:
    fake, plugin, publisher = setup(extra={"BatchWindowMs": 300})
    plugin.worker._poll_seconds = 60.0  # no periodic round may come before the wake-up
    time.sleep(1.2)  # the last 1-second poll is over: the worker now waits for a wake-up
    started = time.monotonic()
    _store(fake, 1)
    wait_for(lambda: len(publisher.events) == 1, what="1 event")
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0


def test_a_failing_first_read_resumes_from_the_stored_cursor_not_from_zero(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin, publisher = setup(StoredInstance=True)
    _store(fake, 2, series="4.1")
    wait_for(lambda: len(publisher.events) == 2, what="2 events")
    plugin.stop()
    fake.started = False
    _store(fake, 1, series="4.2")  # recorded while the plugin is not running
    failures = {"left": 2}
    real_get = fake.RestApiGet

    def flaky_get(uri: str) -> bytes:
        if uri == "/changes?last" and failures["left"]:
            failures["left"] -= 1
            raise fake.OrthancException(11, "Database is locked")  # a transient error
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", flaky_get)
    second = MemoryPublisher()
    setup(fake=fake, publisher=second, StoredInstance=True)
    wait_for(lambda: len(second.events) == 1, what="the change recorded while stopped")
    time.sleep(0.2)
    assert len(second.events) == 1  # never the 2 published before the restart again
    assert failures["left"] == 0


def test_a_corrupt_state_file_is_retried_and_reported_until_it_opens(
    setup: Setup, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    spool_file = state / "dicom-events.sqlite"
    spool_file.write_bytes(b"this is not an SQLite database" * 100)
    config = base_config(StoredInstance=True, DeletedSeries=True)
    config["DicomEvents"].update({"StateDirectory": str(state), "ShutdownFlushSeconds": 2})
    fake = FakeOrthanc(config, started=False)
    plugin = create(fake, config)
    plugin.worker._publisher_factory = MemoryPublisher
    fake.RegisterOnChangeCallback(plugin.on_change)
    fake.start()
    try:
        wait_for(
            lambda: plugin.status_counters.snapshot().start_failures >= 1, what="a failed start"
        )
        answer = fake.call_route("GET", "/dicom-events/status")
        assert answer.status == 503
        assert answer.json()["Broker"]["State"] == "failed"
        assert "cannot start the publisher" in answer.json()["Broker"]["LastError"]
        spool_file.unlink()  # the operator moves the broken file away
        assert plugin.worker.ready.wait(15)
        assert fake.call_route("GET", "/dicom-events/status").status == 200
    finally:
        plugin.stop()


def test_private_creator_is_published_as_one_value_or_a_list(setup: Setup) -> None:
    from orthanc_fake import PrivateBlock

    fake, _, publisher = setup(
        StoredInstance=True, StoredInstancePublishTags=["PrivateCreator", "PatientName"]
    )
    one = make_instance(
        sop_uid="5.1.1",
        private_blocks=[PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("LO", "Q")})],
    )
    two = make_instance(
        sop_uid="5.1.2",
        private_blocks=[
            PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("LO", "Q")}),
            PrivateBlock(0x0029, "SIEMENS CSA HEADER", {0x08: ("CS", "IMAGE NUM 4")}),
        ],
    )
    none = make_instance(sop_uid="5.1.3")
    for instance in (one, two, none):
        fake.store(instance)
    fake.deliver_pending_changes()
    wait_for(lambda: len(publisher.events) == 3, what="3 events")
    tags = [envelope["data"]["tags"] for envelope in _envelopes(publisher)]
    assert tags[0]["PrivateCreator"] == "MATTERHORN_Prvt_Tags"
    assert tags[1]["PrivateCreator"] == ["SIEMENS CSA HEADER", "MATTERHORN_Prvt_Tags"]
    assert "PrivateCreator" not in tags[2]


def test_a_page_read_again_after_a_failure_carries_the_same_payload(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin, publisher = setup(
        StoredInstance=True, StoredInstancePublishTags=["PatientID"], capture_on_store=False
    )
    plugin.worker._backoff = type(plugin.worker._backoff)(first=0.01, cap=0.01)
    real_get = fake.RestApiGet
    failures = {"left": 1}
    ids: list[str] = []

    def get(uri: str) -> bytes:
        # The third instance's tags fail once: the page is built again from the cursor.
        if len(ids) == 3 and uri == f"/instances/{ids[2]}/tags" and failures["left"]:
            failures["left"] -= 1
            raise fake.OrthancException(11, "Database is locked")
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    for number in range(3):
        instance = make_instance(series_uid="6.1", study_uid="6", sop_uid=f"6.1.{number + 1}")
        ids.append(fake.store(instance).instance_id)
    fake.deliver_pending_changes()
    wait_for(lambda: len(publisher.events) == 3, what="3 events")
    assert failures["left"] == 0
    counts = [envelope["data"]["instanceCount"] for envelope in _envelopes(publisher)]
    assert counts == [1, 2, 3]


def test_a_refused_event_becomes_a_dead_letter_and_the_stream_flows_on(
    setup: Setup, tmp_path: Path
) -> None:
    from orthanc_dicom_events.spool import read_dead_letters

    fake, plugin, publisher = setup(StoredInstance=True, StableSeries=True)
    publisher.refuse["dicom.series.stable"] = "unroutable: no queue bound (simulated)"
    _store(fake, 2, series="7.1")
    fake.mark_all_stable()
    _store(fake, 1, series="7.2")
    wait_for(lambda: len(publisher.events) == 3, what="the stored events")
    wait_for(lambda: plugin.status()["Broker"]["DeadLetters"] == 1, what="one dead letter")
    broker = plugin.status()["Broker"]
    assert broker["LastDeadLetter"]["Type"] == "dicom.series.stable"
    assert "no queue bound" in broker["LastDeadLetter"]["Reason"]
    (letter,) = read_dead_letters(str(tmp_path / "state"), 10)
    assert letter["Type"] == "dicom.series.stable"
    assert fake.metrics["orthanc_dicom_events_dead_letters_total"][0] == 1


def test_an_unreadable_file_is_given_up_after_a_few_tries_not_forever(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin, publisher = setup(
        StoredInstance=True, StoredInstancePublishTags=["PatientID"], capture_on_store=False
    )
    plugin.worker._backoff = type(plugin.worker._backoff)(first=0.01, cap=0.01)
    real_get = fake.RestApiGet
    broken: set[str] = set()

    def get(uri: str) -> bytes:
        if any(uri == f"/instances/{instance}/tags" for instance in broken):
            raise fake.OrthancException(13, "Inexistent file")
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    first = make_instance(series_uid="8.1", study_uid="8", sop_uid="8.1.1")
    broken.add(fake.store(first).instance_id)
    _store(fake, 2, series="8.2")
    wait_for(lambda: len(publisher.events) == 2, timeout=10, what="the readable instances")
    wait_for(lambda: plugin.status()["Broker"]["DeadLetters"] == 1, what="one dead letter")
    broker = plugin.status()["Broker"]
    assert "could not read the stored file" in broker["LastDeadLetter"]["Reason"]


def test_long_tag_values_are_cut_with_a_marker(setup: Setup) -> None:
    fake, _, publisher = setup(
        StoredInstance=True, StoredInstancePublishTags=["StudyDescription"], TagValueMaxLength=64
    )
    fake.store(make_instance(StudyDescription="x" * 60 + "y" * 40))
    fake.deliver_pending_changes()
    wait_for(lambda: len(publisher.events) == 1, what="1 event")
    (envelope,) = _envelopes(publisher)
    value = envelope["data"]["tags"]["StudyDescription"]
    assert len(value) == 64 and value.endswith("...[truncated]") and value.startswith("x" * 50)


def _seq(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


class NackingPublisher(MemoryPublisher):
    """A pipelined broker that stores a page's events but refuses one in its middle, once:
    the events around it arrive (as from RabbitMQ), the page's confirmation fails."""

    def __init__(self, cursor: Callable[[], str]) -> None:
        super().__init__()
        self.refuse_id = ""
        self.cursor = cursor
        self.sent_pages: list[list[str]] = []
        self.cursor_at_send: list[int] = []

    def send(self, events: Any) -> Callable[[], Any]:
        self._sent(events)
        return lambda: self._confirm(events)

    def publish(self, events: Any) -> Any:
        self._sent(events)
        return self._confirm(events)

    def _sent(self, events: Any) -> None:
        self.sent_pages.append([event.id for event in events])
        self.cursor_at_send.append(int(self.cursor() or 0))

    def _confirm(self, events: Any) -> Any:
        if not self.down and self.refuse_id in {event.id for event in events}:
            refused, self.refuse_id = self.refuse_id, ""
            with self._lock:
                self.events.extend(event for event in events if event.id != refused)
            raise PublishError("the broker refused 1 message(s)")
        return super().publish(events)


def test_a_nack_in_the_middle_of_a_page_republishes_the_page_and_holds_the_cursor(
    setup: Setup,
) -> None:
    fake = FakeOrthanc(base_config(), started=False)
    publisher = NackingPublisher(lambda: fake.GetGlobalProperty(CURSOR_PROPERTY, ""))
    publisher.down = True  # a backlog gathers
    fake, plugin, _ = setup(fake=fake, publisher=publisher, StoredInstance=True)
    plugin.worker._page_size = 10
    ids = _store(fake, 35)
    wait_for(lambda: publisher.calls >= 1, what="a failed try")
    sequences = [
        int(change["Seq"])
        for change in json.loads(fake.RestApiGet("/changes?since=0&limit=1000"))["Changes"]
        if change["ChangeType"] == "NewInstance"
    ]
    identity = plugin.worker.identity
    refused = f"{identity}-{sequences[14]}"  # in the middle of the second or third page
    publisher.refuse_id = refused
    publisher.sent_pages.clear()
    publisher.cursor_at_send.clear()
    publisher.down = False
    wait_for(lambda: len({e.id for e in publisher.events}) == 35, what="the backlog", timeout=20)

    pages = publisher.sent_pages
    failed = next(i for i, page in enumerate(pages) if refused in page)
    assert 0 < pages[failed].index(refused) < len(pages[failed]) - 1  # in the middle
    # Sent again whole, in the same order, right after the last confirmed page.
    assert pages[failed + 1] == pages[failed]
    assert (
        sequences.index(_seq(pages[failed][0])) == sequences.index(_seq(pages[failed - 1][-1])) + 1
    )
    # The cursor never passed the failed page's first change before the page was confirmed.
    assert all(c < _seq(pages[failed][0]) for c in publisher.cursor_at_send[: failed + 2])
    first_copies = list(dict.fromkeys(e.id for e in publisher.events))
    assert sorted(first_copies, key=_seq) == [f"{identity}-{seq}" for seq in sequences]
    # The events stored around the refused one came first (RabbitMQ took them); the page sent
    # again repeats them in order, so the last copy of every event comes in log order.
    subjects = [json.loads(e.body)["subject"] for e in publisher.events]
    assert list(reversed(dict.fromkeys(reversed(subjects)))) == ids
    wait_for(
        lambda: int(fake.GetGlobalProperty(CURSOR_PROPERTY, "") or 0) >= sequences[-1],
        what="the cursor at the end",
        timeout=5,
    )
