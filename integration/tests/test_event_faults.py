"""orthanc-dicom-events under faults a careful operator meets: a broken state file, secrets in odd
places, the configuration example of the README."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from integration.conftest import REPO_ROOT, OrthancFactory
from integration.harness.cluster import POSTGRESQL_INDEX_PLUGIN
from integration.harness.interfaces import Orthanc, RabbitMQ, SnsEmulator
from integration.harness.postgres import PostgresServer
from integration.harness.rabbitmq import consume
from integration.tests.test_dicom_events import instance_bytes, rabbit_config, sns_config
from orthanc_fake.dicom import make_instance

pytestmark = pytest.mark.e2e

SECRET = "s3cret-never-logged-5512"


def test_a_corrupt_state_file_answers_503_then_the_publisher_recovers(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    state = tmp_path / "events-state"
    state.mkdir()
    spool_file = state / "dicom-events.sqlite"
    spool_file.write_bytes(b"not an SQLite database " * 200)
    exchange = f"faults-{uuid.uuid4().hex[:8]}"
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, {"StoredInstance": True})
    config["DicomEvents"]["Events"]["DeletedSeries"] = True
    config["DicomEvents"]["StateDirectory"] = str(state)
    orthanc = orthanc_factory(["dicom-events"], config, start=False)
    orthanc.ready_statuses = {200, 503}
    orthanc.start()
    answer = orthanc.client.get("/dicom-events/status")
    assert answer.status_code == 503, answer.text
    broker = answer.json()["Broker"]
    assert broker["State"] == "failed"
    assert broker["StartFailures"] >= 1
    assert "cannot start the publisher" in broker["LastError"]
    with consume(rabbitmq.url, exchange) as collector:
        orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
        spool_file.unlink()  # the operator moves the broken file away; no restart needed
        deadline = time.monotonic() + 20
        while orthanc.client.get("/dicom-events/status").status_code != 200:
            assert time.monotonic() < deadline, orthanc.log_tail(40)
            time.sleep(0.2)
        (message,) = collector.wait_for(1, timeout=15)
    assert message.body["type"] == "dicom.instance.stored"


@pytest.mark.parametrize(
    ("rabbit_section", "path"),
    [
        (
            {"URL": f"amqps:/orthanc:{SECRET}@broker.example", "Exchange": "x"},
            "DicomEvents.Broker.RabbitConfig.URL",
        ),
        (
            {"URL": "amqp://broker.example/", "Exchange": "x", "Password": SECRET},
            "DicomEvents.Broker.RabbitConfig.Password",
        ),
        (
            {"URL": f"amqp://orthanc:{SECRET}@broker.example/", "Exchange": "x", "Pass": SECRET},
            "DicomEvents.Broker.RabbitConfig.Pass",
        ),
    ],
)
def test_secrets_never_reach_the_log_whatever_the_url_form_or_key(
    orthanc_factory: OrthancFactory, rabbit_section: dict[str, Any], path: str
) -> None:
    config = rabbit_config("amqp://guest:guest@127.0.0.1:1/", "x", {"StoredInstance": True})
    config["DicomEvents"]["Broker"]["RabbitConfig"] = rabbit_section
    orthanc = orthanc_factory(["dicom-events"], config, start=False)
    returncode, log = orthanc.start_expecting_failure()
    assert returncode != 0
    assert path in log  # the key path of the refused value is named
    assert SECRET not in log
    assert SECRET not in orthanc.log_text()


def readme_seed_configuration() -> dict[str, Any]:
    """The "Seed configuration" block of the repository README, comments removed."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("### Seed configuration", 1)[1].split("```jsonc", 1)[1].split("```", 1)[0]
    without_comments = re.sub(r"\s//[^\n]*", "", block)  # not the // of a URL
    seed: dict[str, Any] = json.loads(without_comments)
    return seed


def test_the_readme_seed_configuration_starts_and_publishes_the_private_creator(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ
) -> None:
    config = copy.deepcopy(readme_seed_configuration())
    exchange = f"seed-{uuid.uuid4().hex[:8]}"
    config["DicomEvents"]["Broker"]["RabbitConfig"] = {
        "URL": rabbitmq.url_for_orthanc,
        "Exchange": exchange,
    }
    config["DicomEvents"]["Events"]["StoredInstanceSkipOrigin"] = []  # the test uploads by REST
    config["StableAge"] = 1
    plugins = ["dicom-events", "series-private-tags", "series-thumbnail"]
    orthanc = orthanc_factory(plugins, config)
    with consume(rabbitmq.url, exchange, "dicom.instance.stored") as collector:
        orthanc.upload_file(instance_bytes(generate_uid(), generate_uid(), private=True))
        (message,) = collector.wait_for(1, timeout=15)
    assert message.body["data"]["tags"]["PrivateCreator"] == "MATTERHORN_Prvt_Tags"


def deleted_events_config(url: str, exchange: str, index: Path) -> dict[str, Any]:
    events = {"StoredInstance": True, "DeletedSeries": True, "DeletedStudy": True}
    config = rabbit_config(url, exchange, events)
    config.update({"StorageDirectory": str(index), "IndexDirectory": str(index)})
    return config


def store_study_of_two_series(orthanc: Orthanc) -> tuple[str, set[str]]:
    study_uid = generate_uid()
    answers = [orthanc.upload_file(instance_bytes(study_uid, generate_uid())) for _ in range(2)]
    return str(answers[0]["ParentStudy"]), {str(answer["ParentSeries"]) for answer in answers}


def wait_for_deletions(collector: Any, study: str, series: set[str]) -> None:
    expected = {("dicom.study.deleted", study)} | {("dicom.series.deleted", s) for s in series}
    deadline = time.monotonic() + 30
    while True:
        seen = {(m.body["type"], m.body["subject"]) for m in collector.messages}
        if expected <= seen:
            return
        assert time.monotonic() < deadline, f"missing {expected - seen}"
        time.sleep(0.2)


def test_a_deletion_made_while_no_callback_could_see_it_is_published_at_the_next_start(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    index = tmp_path / "shared-index"
    exchange = f"reconcile-{uuid.uuid4().hex[:8]}"
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        config = deleted_events_config(rabbitmq.url_for_orthanc, exchange, index)
        orthanc = orthanc_factory(["dicom-events"], config)
        study, series = store_study_of_two_series(orthanc)
        collector.wait_for(2, timeout=15)  # published: the plugin has seen the resources
        orthanc.stop()
        # The same database through an Orthanc without the plugin: no callback sees the deletion.
        plain = orthanc_factory([], {"StorageDirectory": str(index), "IndexDirectory": str(index)})
        plain.client.delete(f"/studies/{study}").raise_for_status()
        plain.stop()
        orthanc.start()
        wait_for_deletions(collector, study, series)
    assert "deleted while no callback could tell" in orthanc.log_text()


def test_deletions_survive_a_sigkill_as_soon_as_the_delete_answers(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    exchange = f"crash-delete-{uuid.uuid4().hex[:8]}"
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        config = deleted_events_config(rabbitmq.url_for_orthanc, exchange, tmp_path / "index")
        orthanc = orthanc_factory(["dicom-events"], config)
        study, series = store_study_of_two_series(orthanc)
        collector.wait_for(2, timeout=15)
        orthanc.client.delete(f"/studies/{study}").raise_for_status()
        orthanc.kill()
        orthanc.start()
        wait_for_deletions(collector, study, series)


def wait_for_dead_letters(orthanc: Orthanc, count: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = orthanc.client.get_json("/dicom-events/dead-letters")
        if len(answer["Newest"]) >= count:
            newest: list[Any] = answer["Newest"]
            return newest
        assert time.monotonic() < deadline, (answer, orthanc.log_tail(30))
        time.sleep(0.2)


def test_unroutable_events_are_dead_letters_not_deliveries_and_the_stream_flows_on(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ
) -> None:
    exchange = f"unroutable-{uuid.uuid4().hex[:8]}"
    events = {"StoredInstance": True, "StableSeries": True}
    with consume(rabbitmq.url, exchange, "dicom.instance.stored") as collector:  # no stable queue
        orthanc = orthanc_factory(
            ["dicom-events"], rabbit_config(rabbitmq.url_for_orthanc, exchange, events)
        )
        series = orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))["ParentSeries"]
        (letter,) = wait_for_dead_letters(orthanc, 1)
        orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
        collector.wait_for(2, timeout=15)  # what follows still flows
    assert (letter["Type"], letter["Subject"]) == ("dicom.series.stable", series)
    assert "no queue bound" in letter["Reason"]
    broker = orthanc.client.get_json("/dicom-events/status")["Broker"]
    assert broker["Unroutable"] >= 1 and broker["DeadLetters"] >= 1
    assert broker["Published"] == 2  # the refused one is not counted as delivered


def test_with_unroutable_retry_the_stream_waits_for_a_queue(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ
) -> None:
    exchange = f"retry-{uuid.uuid4().hex[:8]}"
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, {"StoredInstance": True})
    config["DicomEvents"]["Broker"]["RabbitConfig"]["Unroutable"] = "retry"
    orthanc = orthanc_factory(["dicom-events"], config)
    orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
    deadline = time.monotonic() + 15
    while "Unroutable: retry" not in str(orthanc.client.get_json("/dicom-events/status")):
        assert time.monotonic() < deadline, orthanc.log_tail(30)
        time.sleep(0.2)
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:  # a queue appears
        (message,) = collector.wait_for(1, timeout=20)
    assert message.body["type"] == "dicom.instance.stored"
    assert orthanc.client.get_json("/dicom-events/status")["Broker"]["DeadLetters"] == 0


def test_an_unreadable_stored_file_is_given_up_on_and_what_follows_is_published(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    exchange = f"unreadable-{uuid.uuid4().hex[:8]}"
    storage = tmp_path / "storage"
    events = {"StoredInstance": True, "StoredInstancePublishTags": ["PatientID"]}
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, events)
    config.update({"StorageDirectory": str(storage), "IndexDirectory": str(storage)})
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        orthanc = orthanc_factory(["dicom-events"], config)
        orthanc.stop()  # store while the publisher is away, then break the file behind Orthanc
        plain = orthanc_factory(
            [], {"StorageDirectory": str(storage), "IndexDirectory": str(storage)}
        )
        broken = plain.upload_file(instance_bytes(generate_uid(), generate_uid()))
        fine = plain.upload_file(instance_bytes(generate_uid(), generate_uid()))
        uuid_of_file = plain.client.get_json(f"/instances/{broken['ID']}")["FileUuid"]
        plain.stop()
        (path,) = storage.rglob(uuid_of_file)
        path.unlink()
        orthanc.start()
        (letter,) = wait_for_dead_letters(orthanc, 1, timeout=60)
        (message,) = collector.wait_for(1, timeout=15)
    assert (letter["Type"], letter["Subject"]) == ("dicom.instance.stored", broken["ID"])
    assert "could not read the stored file" in letter["Reason"]
    assert message.body["subject"] == fine["ID"]


def test_an_event_too_large_for_sns_is_a_dead_letter_not_a_stall(
    orthanc_factory: OrthancFactory, sns_preferred: SnsEmulator
) -> None:
    sns = sns_preferred
    topic = sns.create_topic(f"large-{uuid.uuid4().hex[:8]}")
    reader = sns.subscribe_queue(topic, raw=True)
    events = {
        "StoredInstance": True,
        "StoredInstancePublishTags": ["StudyDescription"],
        "TagValueMaxLength": 300_000,  # lets a huge value through: SNS refuses the event
    }
    orthanc = orthanc_factory(["dicom-events"], sns_config(sns, topic, events), env=sns.env)
    huge = make_instance(StudyDescription="x" * 280_000)
    big = orthanc.upload_file(huge)
    small = orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
    (letter,) = wait_for_dead_letters(orthanc, 1)
    (received,) = reader.receive(1, timeout=30)
    assert (letter["Subject"], "too large for SNS" in letter["Reason"]) == (big["ID"], True)
    assert received.message["subject"] == small["ID"]


def test_restoring_an_older_index_starts_a_new_id_epoch(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    index, state = tmp_path / "index", tmp_path / "state"
    exchange = f"epoch-{uuid.uuid4().hex[:8]}"
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, {"StoredInstance": True})
    config.update({"StorageDirectory": str(index), "IndexDirectory": str(index)})
    config["DicomEvents"]["StateDirectory"] = str(state)
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        orthanc = orthanc_factory(["dicom-events"], config)
        orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
        collector.wait_for(1, timeout=15)
        orthanc.stop()
        backup = (index / "index").read_bytes()  # Orthanc's SQLite index, while it is stopped
        orthanc.start()
        for _ in range(3):
            orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
        collector.wait_for(4, timeout=15)
        orthanc.stop()
        (index / "index").write_bytes(backup)  # the operator restores yesterday's index
        orthanc.start()
        for _ in range(3):
            orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
        messages = collector.wait_for(7, timeout=20)
    ids = [message.body["id"] for message in messages]
    assert len(set(ids)) == len(ids), "an event id was reused for another event"
    assert "new event ids use identity" in orthanc.log_text()


@pytest.mark.parametrize("round_", range(3))
def test_a_deletion_comes_between_the_store_before_it_and_the_re_store_after_it(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, round_: int
) -> None:
    exchange = f"order-{uuid.uuid4().hex[:8]}"
    events = {"StoredInstance": True, "DeletedInstance": True}
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, events)
    config["OverwriteInstances"] = True
    dicom = instance_bytes(generate_uid(), generate_uid())
    with consume(rabbitmq.url, exchange, "dicom.instance.#") as collector:
        orthanc = orthanc_factory(["dicom-events"], config)
        instance = orthanc.upload_file(dicom)["ID"]
        collector.wait_for(1, timeout=15)
        orthanc.client.delete(f"/instances/{instance}").raise_for_status()
        orthanc.upload_file(dicom)  # sent again within milliseconds
        messages = collector.wait_for_distinct(3, timeout=15)
    assert [(m.body["type"], m.body["subject"]) for m in messages] == [
        ("dicom.instance.stored", instance),
        ("dicom.instance.deleted", instance),
        ("dicom.instance.stored", instance),
    ]


def test_a_failing_first_read_at_start_up_never_replays_the_log(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, postgres: PostgresServer
) -> None:
    """Orthanc's index refuses the publisher's first reads at start-up (the change log's table
    locked by another session, a lock timeout on the database): the start is retried, and once
    the reads work the publisher goes on from its stored cursor, not from change 0."""
    exchange = f"first-read-{uuid.uuid4().hex[:8]}"
    config = rabbit_config(rabbitmq.url_for_orthanc, exchange, {"StoredInstance": True})
    with postgres.database("first_read") as database:
        config.update(
            {"Plugins": [POSTGRESQL_INDEX_PLUGIN], "PostgreSQL": database.orthanc_section()}
        )
        with consume(rabbitmq.url, exchange, "dicom.#") as collector:
            orthanc = orthanc_factory(["dicom-events"], config)
            for _ in range(3):
                orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
            published = collector.wait_for(3, timeout=15)
            orthanc.stop()
            collector.clear()

            blocker = database.connect()
            try:
                blocker.run(f"ALTER DATABASE \"{database.name}\" SET lock_timeout = '200ms'")
                blocker.run("BEGIN")
                blocker.run("LOCK TABLE changes IN ACCESS EXCLUSIVE MODE")
                orthanc.ready_statuses = {200, 503}
                orthanc.start()
                broker = wait_for_start_failure(orthanc)
                assert broker["State"] == "failed", broker
                assert "GET /changes" in broker["LastError"], broker  # the first read failed
                blocker.run("COMMIT")
            finally:
                blocker.run(f'ALTER DATABASE "{database.name}" RESET lock_timeout')
                blocker.close()
            deadline = time.monotonic() + 30
            while orthanc.client.get("/dicom-events/status").status_code != 200:
                assert time.monotonic() < deadline, orthanc.log_tail(40)
                time.sleep(0.2)
            fresh = orthanc.upload_file(instance_bytes(generate_uid(), generate_uid()))
            collector.wait_for(1, timeout=15)
            received = collector.wait_quiet(2)
            orthanc.stop()
    assert [m.body["subject"] for m in received] == [fresh["ID"]]
    last_before = max(m.body["orthancsequence"] for m in published)
    assert received[0].body["orthancsequence"] > last_before


def wait_for_start_failure(orthanc: Orthanc, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        broker = orthanc.client.get("/dicom-events/status").json()["Broker"]
        if broker["StartFailures"] >= 1:
            return dict(broker)
        assert time.monotonic() < deadline, orthanc.log_tail(40)
        time.sleep(0.1)
