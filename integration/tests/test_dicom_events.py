"""orthanc-dicom-events on a real Orthanc, a real RabbitMQ and SNS emulators."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.gate import TcpGate
from integration.harness.interfaces import Orthanc, RabbitMQ, SnsEmulator
from integration.harness.processes import free_port
from integration.harness.rabbitmq import EventCollector, consume
from orthanc_dicom_events.events import load_schema
from orthanc_fake.dicom import PrivateBlock, make_instance

pytestmark = pytest.mark.e2e

ALL_EVENTS: dict[str, Any] = {
    "StoredInstance": True,
    "StableSeries": True,
    "StableStudy": True,
    "StablePatient": True,
    "DeletedInstance": True,
    "DeletedSeries": True,
    "DeletedStudy": True,
    "DeletedPatient": True,
    "StoredInstancePublishTags": ["PatientID", "QueueID", "StudyDescription"],
    "StableSeriesPublishTags": ["Modality", "SeriesInstanceUID"],
    "StableStudyPublishTags": ["StudyInstanceUID", "PatientID"],
    "StablePatientPublishTags": ["PatientID"],
}
PRIVATE_DICTIONARY = {"0055,1011": ["LO", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]}
LONG_DESCRIPTION = "Long description " + "x" * 300  # Orthanc's JSON nulls values over 256
PASSWORD = "pw-never-in-logs-7731"
EXPECTED_TYPES = {
    "dicom.instance.stored": 2,
    "dicom.series.stable": 1,
    "dicom.study.stable": 1,
    "dicom.patient.stable": 1,
    "dicom.instance.deleted": 2,
    "dicom.series.deleted": 1,
    "dicom.study.deleted": 1,
    "dicom.patient.deleted": 1,
}


def rabbit_config(url: str, exchange: str, events: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "StableAge": 1,
        "Dictionary": PRIVATE_DICTIONARY,
        "DicomEvents": {
            "Events": events if events is not None else ALL_EVENTS,
            "Broker": {"Type": "rabbitmq", "RabbitConfig": {"URL": url, "Exchange": exchange}},
            "ShutdownFlushSeconds": 3,
        },
    }


def sns_config(sns: SnsEmulator, topic_arn: str, events: dict[str, Any]) -> dict[str, Any]:
    return {
        "StableAge": 1,
        "Dictionary": PRIVATE_DICTIONARY,
        "DicomEvents": {
            "Events": events,
            "Broker": {
                "Type": "sqs-sns",
                "SNSConfig": {
                    "TopicArn": topic_arn,
                    "Region": sns.region,
                    "EndpointUrl": sns.endpoint_url_for_orthanc,
                },
            },
            "ShutdownFlushSeconds": 3,
        },
    }


def instance_bytes(
    study: str, series: str, *, patient: str = "EVENTS", private: bool = False, long: bool = False
) -> bytes:
    extra: dict[str, Any] = {}
    if long:
        extra["StudyDescription"] = LONG_DESCRIPTION
    blocks = [PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("LO", "QUEUE-42")})]
    instance = make_instance(
        patient_id=patient,
        study_uid=study,
        series_uid=series,
        private_blocks=blocks if private else (),
        **extra,
    )
    return instance if isinstance(instance, bytes) else bytes(instance)


def assert_valid(envelope: dict[str, Any]) -> None:
    jsonschema.validate(envelope, load_schema(envelope["type"]))


def exercise_every_event(orthanc: Orthanc) -> tuple[str, list[str]]:
    """Store two instances of one new patient, wait until stable, delete the patient."""
    study, series = generate_uid(), generate_uid()
    patient = f"EV-{uuid.uuid4().hex[:8]}"
    first = orthanc.upload_file(
        instance_bytes(study, series, patient=patient, private=True, long=True)
    )
    second = orthanc.upload_file(instance_bytes(study, series, patient=patient))
    orthanc.wait_stable("patients", first["ParentPatient"], timeout=20)
    time.sleep(0.5)
    orthanc.client.delete(f"/patients/{first['ParentPatient']}").raise_for_status()
    return first["ParentPatient"], [first["ID"], second["ID"]]


def check_every_event(envelopes: list[dict[str, Any]], instance_ids: list[str]) -> None:
    counts: dict[str, int] = {}
    for envelope in envelopes:
        assert_valid(envelope)
        counts[envelope["type"]] = counts.get(envelope["type"], 0) + 1
    assert counts == EXPECTED_TYPES
    stored = [e for e in envelopes if e["type"] == "dicom.instance.stored"]
    assert [e["subject"] for e in stored] == instance_ids
    tags = stored[0]["data"]["tags"]
    assert tags["QueueID"] == "QUEUE-42"
    assert tags["StudyDescription"] == LONG_DESCRIPTION
    assert "QueueID" not in stored[1]["data"]["tags"]
    assert [e["data"]["instanceCount"] for e in stored] == [1, 2]
    assert stored[0]["data"]["origin"] == "REST_API"
    deleted_instance = next(e for e in envelopes if e["type"] == "dicom.instance.deleted")
    assert deleted_instance["data"]["seriesId"] == stored[0]["data"]["seriesId"]
    assert deleted_instance["data"]["patientId"] == stored[0]["data"]["patientId"]


@pytest.fixture
def exchange() -> str:
    return f"dicom-events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def collector(rabbitmq: RabbitMQ, exchange: str) -> Iterator[EventCollector]:
    with consume(rabbitmq.url, exchange, "dicom.#") as events:
        yield events


def test_every_event_type_reaches_rabbitmq(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, exchange: str, collector: EventCollector
) -> None:
    orthanc = orthanc_factory(
        plugins=["dicom-events"], config=rabbit_config(rabbitmq.url_for_orthanc, exchange)
    )
    _, instance_ids = exercise_every_event(orthanc)
    messages = collector.wait_for(sum(EXPECTED_TYPES.values()), timeout=20)
    time.sleep(0.5)
    messages = collector.messages
    check_every_event([m.body for m in messages], instance_ids)
    for message in messages:
        assert message.routing_key == message.body["type"]
        assert message.message_id == message.body["id"]
        assert message.content_type == "application/cloudevents+json"
        assert message.delivery_mode == 2
    status = orthanc.client.get_json("/dicom-events/status")
    assert status["Broker"]["State"] == "connected"
    assert status["Broker"]["Backlog"] == 0
    assert status["Broker"]["Published"] == len(messages)
    # Unthrottled, from Orthanc 1.12.5 on: the second instance's tags were taken as Orthanc stored
    # it; the first's were read afterwards (a value over 256 characters, which Orthanc's JSON
    # leaves out). On older versions every one is read afterwards.
    version = tuple(int(p) for p in orthanc.client.get_json("/system")["Version"].split(".")[:3])
    if version >= (1, 12, 5):
        assert status["InstanceTagsCapturedOnStore"] == 1
    else:
        assert "InstanceTagsCapturedOnStore" not in status
    metrics = orthanc.client.get("/tools/metrics-prometheus").text
    assert "orthanc_dicom_events_published_total" in metrics


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_every_event_type_reaches_sns(
    orthanc_factory: OrthancFactory, sns: SnsEmulator, fifo: bool
) -> None:
    topic = sns.create_topic(f"events-{uuid.uuid4().hex[:8]}", fifo=fifo)
    reader = sns.subscribe_queue(topic, raw=True)
    orthanc = orthanc_factory(
        plugins=["dicom-events"], config=sns_config(sns, topic, ALL_EVENTS), env=sns.env
    )
    _, instance_ids = exercise_every_event(orthanc)
    received = reader.receive(sum(EXPECTED_TYPES.values()), timeout=30)
    received += reader.receive_for(1)
    envelopes = [m.message for m in received]
    if not fifo:  # standard topics do not keep order
        order = {"stored": 0, "stable": 1, "deleted": 2}
        envelopes.sort(key=lambda e: (order[e["type"].split(".")[2]], e.get("orthancsequence", 0)))
    check_every_event(envelopes, instance_ids)
    for message in received:
        assert message.attributes["type"] == message.message["type"]
    if fifo:
        groups = {m.sqs_attributes.get("MessageGroupId") for m in received}
        study_ids = {e["data"].get("studyId") for e in envelopes} - {None}
        assert study_ids <= groups


def test_throttle_publishes_first_and_last_of_a_burst(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, exchange: str, collector: EventCollector
) -> None:
    events = {"StoredInstance": True, "StoredInstanceThrottleMs": 1500}
    orthanc = orthanc_factory(
        plugins=["dicom-events"], config=rabbit_config(rabbitmq.url_for_orthanc, exchange, events)
    )
    study, series = generate_uid(), generate_uid()
    ids = []
    started = time.monotonic()
    for _ in range(15):  # well within 1.5 s
        ids.append(orthanc.upload_file(instance_bytes(study, series))["ID"])
    burst_end = time.monotonic()
    assert burst_end - started < 1.4, "the burst took too long to test the throttle"
    first, last = collector.wait_for(2, timeout=10)
    received_last = time.monotonic()
    assert first.body["subject"] == ids[0]
    assert last.body["subject"] == ids[-1]
    assert last.body["data"]["instanceCount"] == 15
    # The last instance leaves about one interval after the first publish, not later.
    assert received_last - started < 1.5 + 1.0
    assert len(collector.wait_quiet(2.0)) == 2


def test_skip_origin_tells_rest_from_cstore(
    orthanc_factory: OrthancFactory,
    rabbitmq: RabbitMQ,
    exchange: str,
    collector: EventCollector,
    tmp_path: Path,
) -> None:
    events = {"StoredInstance": True, "StoredInstanceSkipOrigin": ["REST_API"]}
    orthanc = orthanc_factory(
        plugins=["dicom-events"], config=rabbit_config(rabbitmq.url_for_orthanc, exchange, events)
    )
    study = generate_uid()
    orthanc.upload_file(instance_bytes(study, generate_uid()))
    dicom = tmp_path / "cstore.dcm"
    dicom.write_bytes(instance_bytes(study, generate_uid()))
    orthanc.cstore([dicom], calling_aet="MODALITY1")
    (message,) = collector.wait_for(1, timeout=10)
    assert message.body["data"]["origin"] == "DICOM_PROTOCOL"
    assert message.body["data"]["remoteAet"] == "MODALITY1"
    assert message.body["data"]["calledAet"] == orthanc.aet
    assert len(collector.wait_quiet(1.5)) == 1

    only_dicom = {"StoredInstance": True, "StoredInstanceSkipOrigin": ["DICOM_PROTOCOL"]}
    other = orthanc_factory(
        plugins=["dicom-events"],
        config=rabbit_config(rabbitmq.url_for_orthanc, exchange, only_dicom),
    )
    collector.clear()
    other.cstore([dicom], calling_aet="MODALITY1")
    rest = other.upload_file(instance_bytes(study, generate_uid()))
    (message,) = collector.wait_for(1, timeout=10)
    assert message.body["subject"] == rest["ID"]
    assert message.body["data"]["origin"] == "REST_API"
    assert len(collector.wait_quiet(1.5)) == 1


def test_stop_is_quick_with_the_broker_unreachable_and_the_password_never_logged(
    orthanc_factory: OrthancFactory,
) -> None:
    url = f"amqp://events:{PASSWORD}@127.0.0.1:{free_port()}/"
    orthanc = orthanc_factory(plugins=["dicom-events"], config=rabbit_config(url, "x"))
    study, series = generate_uid(), generate_uid()
    for _ in range(5):
        orthanc.upload_file(instance_bytes(study, series))
    time.sleep(2)
    status = orthanc.client.get_json("/dicom-events/status")["Broker"]
    assert status["State"] == "disconnected"
    assert status["Backlog"] >= 5
    assert PASSWORD not in str(status)
    started = time.monotonic()
    orthanc.stop()
    assert time.monotonic() - started < 10
    log = orthanc.log_text()
    assert "dicom-events" in log
    assert PASSWORD not in log


@pytest.mark.parametrize(
    ("section", "path", "value"),
    [
        ({"Broker": {"Type": "kafka"}}, "DicomEvents.Broker.Type", "kafka"),
        (
            {"Broker": {"Type": "rabbitmq", "RabbitConfig": {"Exchange": "x"}}},
            "DicomEvents.Broker.RabbitConfig.URL",
            "None",
        ),
        (
            {"Broker": {"Type": "rabbitmq", "RabbitConfig": {"URL": "amqp://h/"}}},
            "DicomEvents.Broker.RabbitConfig.Exchange",
            "None",
        ),
        (
            {"Broker": {"Type": "rabbitmq", "RabbitConfig": {"URL": "http://h/", "Exchange": "x"}}},
            "DicomEvents.Broker.RabbitConfig.URL",
            "http://h/",
        ),
        (
            {"Broker": {"Type": "sqs-sns", "SNSConfig": {}}},
            "DicomEvents.Broker.SNSConfig.TopicArn",
            "None",
        ),
        (
            {"Broker": {"Type": "sqs-sns", "SNSConfig": {"TopicArn": "arn:aws:sqs:x"}}},
            "DicomEvents.Broker.SNSConfig.TopicArn",
            "arn:aws:sqs:x",
        ),
        (
            {"Events": {"StoredInstanceThrottleMs": -5}},
            "DicomEvents.Events.StoredInstanceThrottleMs",
            "-5",
        ),
        (
            {"Events": {"StoredInstanceSkipOrigin": ["FAX"]}},
            "DicomEvents.Events.StoredInstanceSkipOrigin[0]",
            "FAX",
        ),
        (
            {"Events": {"StoredInstancePublishTags": ["NoSuchTag"]}},
            "DicomEvents.Events.StoredInstancePublishTags[0]",
            "NoSuchTag",
        ),
        ({"Events": {"StableSeries": "yes"}}, "DicomEvents.Events.StableSeries", "yes"),
    ],
)
def test_bad_configuration_refuses_to_start(
    orthanc_factory: OrthancFactory, section: dict[str, Any], path: str, value: str
) -> None:
    base = rabbit_config("amqp://guest:guest@127.0.0.1:1/", "x", {"StoredInstance": True})
    base["DicomEvents"].update(section)
    orthanc = orthanc_factory(plugins=["dicom-events"], config=base, start=False)
    returncode, log = orthanc.start_expecting_failure()
    assert returncode != 0
    assert path in log
    assert value in log


# -- delivery through outages and crashes --------------------------------------------------------


def store_in_three_series(orthanc: Orthanc, count: int) -> list[str]:
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    ids: list[str] = []
    lock = threading.Lock()

    def upload(index: int) -> None:
        answer = orthanc.upload_file(instance_bytes(study, series[index % 3]))
        with lock:
            ids.append(answer["ID"])

    def upload_share(first: int) -> None:
        for index in range(first, count, 4):
            upload(index)

    threads = [threading.Thread(target=upload_share, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def assert_per_series_order(envelopes: list[dict[str, Any]]) -> None:
    last: dict[str, int] = {}
    for envelope in envelopes:
        series = envelope["data"]["seriesId"]
        sequence = envelope["orthancsequence"]
        # Redeliveries (at-least-once) may repeat an event, never go back past a newer one
        # except as part of a repeated run that starts over from the persisted cursor.
        assert sequence >= last.get(series, 0) or envelope.get("redelivered"), envelope["id"]
        last[series] = max(sequence, last.get(series, 0))


@pytest.mark.slow
def test_rabbitmq_outage_of_30_seconds_loses_nothing(
    orthanc_factory: OrthancFactory, interruptible_rabbitmq: RabbitMQ, exchange: str
) -> None:
    broker = interruptible_rabbitmq
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    events = {"StoredInstance": True}
    with consume(broker.url, exchange, "dicom.#", queue=queue) as collector:
        orthanc = orthanc_factory(
            plugins=["dicom-events"], config=rabbit_config(broker.url_for_orthanc, exchange, events)
        )
        broker.stop()
        stopped = time.monotonic()
        ids = store_in_three_series(orthanc, 300)
        backlog = orthanc.client.get_json("/dicom-events/status")["Broker"]["Backlog"]
        assert backlog >= 300
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        broker.start()
        messages = collector.wait_for(300, timeout=60)
        received = {m.body["subject"] for m in messages}
        assert received == set(ids)
        assert_per_series_order([m.body for m in messages])


@pytest.mark.slow
def test_sns_outage_loses_nothing(orthanc_factory: OrthancFactory, sns: SnsEmulator) -> None:
    # SNS drops what is published while no subscription exists: the outage is a cut between
    # Orthanc and the emulator, which keeps its topic and the test's subscription meanwhile.
    name = f"outage-{uuid.uuid4().hex[:8]}"
    topic = sns.create_topic(name, fifo=True)
    reader = sns.subscribe_queue(topic, raw=True)
    with TcpGate(
        urlsplit(sns.endpoint_url).port or 80, urlsplit(sns.endpoint_url).hostname or ""
    ) as gate:
        config = sns_config(sns, topic, {"StoredInstance": True})
        config["DicomEvents"]["Broker"]["SNSConfig"]["EndpointUrl"] = gate.url(
            sns.endpoint_url_for_orthanc
        )
        orthanc = orthanc_factory(plugins=["dicom-events"], config=config, env=sns.env)
        gate.cut()
        ids = store_in_three_series(orthanc, 300)
        time.sleep(5)
        assert reader.receive_for(1) == []  # nothing got through the cut
        gate.reopen()
        received = reader.receive(300, timeout=120)
        received += reader.receive_for(2)
    envelopes = [m.message for m in received]
    assert {e["subject"] for e in envelopes} == set(ids)
    assert_per_series_order(envelopes)


@pytest.mark.slow
def test_sigkill_mid_burst_loses_no_event(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, exchange: str
) -> None:
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    events = {"StoredInstance": True}
    with consume(rabbitmq.url, exchange, "dicom.#", queue=queue) as collector:
        orthanc = orthanc_factory(
            plugins=["dicom-events"],
            config=rabbit_config(rabbitmq.url_for_orthanc, exchange, events),
        )
        study, series = generate_uid(), generate_uid()
        stop_uploading = threading.Event()

        def upload_until_killed() -> None:
            while not stop_uploading.is_set():
                try:
                    orthanc.upload_file(instance_bytes(study, series))
                except Exception:
                    return

        uploader = threading.Thread(target=upload_until_killed)
        uploader.start()
        time.sleep(1.5)
        orthanc.kill()
        stop_uploading.set()
        uploader.join()
        orthanc.start()
        stored = set(orthanc.client.get_json(f"/series/{orthanc_series_id(orthanc)}")["Instances"])
        assert len(stored) > 10

        def all_arrived() -> bool:
            return stored <= {m.body["subject"] for m in collector.messages}

        deadline = time.monotonic() + 30
        while not all_arrived() and time.monotonic() < deadline:
            time.sleep(0.2)
        missing = stored - {m.body["subject"] for m in collector.messages}
        assert not missing, f"{len(missing)} of {len(stored)} stored instances had no event"


def orthanc_series_id(orthanc: Orthanc) -> str:
    (series,) = orthanc.client.get_json("/series")
    return str(series)
