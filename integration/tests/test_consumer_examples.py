"""The consumer examples of examples/consumers/ receive what the real dicom-events plugin publishes.

Each example runs as a subprocess, as an operator would run it, and must print the event of a
series stored in Orthanc and exit after --max-messages 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc, RabbitMQ, SnsEmulator
from orthanc_dicom_events.events import load_schema
from orthanc_fake.dicom import make_instance

pytestmark = pytest.mark.e2e

CONSUMERS = Path(__file__).resolve().parents[2] / "examples" / "consumers"
READY_TIMEOUT = 30.0
EVENT_TIMEOUT = 45.0


class ConsumerProcess:
    """An example consumer; `wait_ready()` returns once it says it is listening."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._stderr: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)
            if line.startswith("listening on"):
                self._ready.set()
        self._ready.set()  # ended: wait_ready() reports it

    def wait_ready(self) -> None:
        if not self._ready.wait(READY_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            pytest.fail(f"the consumer did not start listening:\n{''.join(self._stderr)}")

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines printed by the time it exits (it must exit by itself)."""
        try:
            stdout, _ = self.process.communicate(timeout=EVENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the consumer did not exit with its event:\n{''.join(self._stderr)}")
        assert self.process.returncode == 0, "".join(self._stderr)
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def consumers() -> Iterator[list[ConsumerProcess]]:
    started: list[ConsumerProcess] = []
    yield started
    for consumer in started:
        consumer.stop()


def stable_series_events(broker: dict[str, Any]) -> dict[str, Any]:
    return {
        "StableAge": 1,
        "DicomEvents": {
            "Events": {"StableSeries": True, "StableSeriesPublishTags": ["Modality"]},
            "Broker": broker,
            "ShutdownFlushSeconds": 2,
        },
    }


def store_new_series(orthanc: Orthanc) -> str:
    """Upload one instance of a new series; returns the series' Orthanc ID."""
    instance = make_instance(
        patient_id=f"CONSUMER-{uuid.uuid4().hex[:8]}",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
    )
    answer = orthanc.upload_file(instance)
    return str(answer["ParentSeries"])


def check_series_stable(events: list[dict[str, Any]], series_id: str) -> None:
    assert len(events) == 1
    event = events[0]
    jsonschema.validate(event, load_schema("dicom.series.stable"))
    assert event["type"] == "dicom.series.stable"
    assert event["subject"] == series_id
    assert event["data"]["tags"]["Modality"]


def test_rabbitmq_consumer_prints_a_stable_series(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ, consumers: list[ConsumerProcess]
) -> None:
    exchange = f"consumer-example-{uuid.uuid4().hex[:8]}"
    consumer = ConsumerProcess(
        [
            str(CONSUMERS / "rabbitmq_consumer.py"),
            *("--url", rabbitmq.url, "--exchange", exchange),
            *("--binding", "dicom.series.stable", "--max-messages", "1", "--json"),
        ]
    )
    consumers.append(consumer)
    consumer.wait_ready()
    broker = {
        "Type": "rabbitmq",
        "RabbitConfig": {"URL": rabbitmq.url_for_orthanc, "Exchange": exchange},
    }
    orthanc = orthanc_factory(["dicom-events"], stable_series_events(broker))
    series_id = store_new_series(orthanc)
    check_series_stable(consumer.events(), series_id)


def test_sqs_consumer_prints_a_stable_series_from_sns(
    orthanc_factory: OrthancFactory, sns_preferred: SnsEmulator, consumers: list[ConsumerProcess]
) -> None:
    sns = sns_preferred
    topic_arn = sns.create_topic(f"consumer-example-{uuid.uuid4().hex[:8]}")
    # What an operator's shell would hold against an emulator: any key, the endpoint as argument.
    client_env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    consumer = ConsumerProcess(
        [
            str(CONSUMERS / "sqs_consumer.py"),
            *("--topic-arn", topic_arn, "--queue-name", f"consumer-{uuid.uuid4().hex[:8]}"),
            *("--type", "dicom.series.stable", "--endpoint-url", sns.endpoint_url),
            *("--region", sns.region, "--max-messages", "1", "--json"),
        ],
        env=client_env,
    )
    consumers.append(consumer)
    consumer.wait_ready()
    broker = {
        "Type": "sqs-sns",
        "SNSConfig": {
            "TopicArn": topic_arn,
            "Region": sns.region,
            "EndpointUrl": sns.endpoint_url_for_orthanc,
        },
    }
    orthanc = orthanc_factory(["dicom-events"], stable_series_events(broker), env=sns.env)
    series_id = store_new_series(orthanc)
    check_series_stable(consumer.events(), series_id)
