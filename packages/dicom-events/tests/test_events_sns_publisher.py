from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orthanc_dicom_events.config import SnsConfig
from orthanc_dicom_events.envelope import OutgoingEvent, make_event
from orthanc_dicom_events.publishers import PublishError
from orthanc_dicom_events.publishers.sns import BATCH_BYTES, SnsPublisher, _chunks


def _event(number: int, size: int = 10, group: str = "study-1") -> OutgoingEvent:
    return make_event(
        event_id=f"id-{number}",
        source="orthanc://t",
        event_type="dicom.instance.stored",
        subject=f"i{number}",
        time="2026-01-01T00:00:00Z",
        # Characters the form encoding of the request must carry intact.
        data={"n": number, "pad": "x" * size, "name": "MÜLLER^Zoë 李 a+b&c=d"},
        group=group,
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def _topic_with_queue(fifo: bool) -> tuple[str, str]:
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    topic = sns.create_topic(Name="events" + suffix, Attributes=attributes)["TopicArn"]
    queue_attributes = {"FifoQueue": "true"} if fifo else {}
    queue = sqs.create_queue(QueueName="q" + suffix, Attributes=queue_attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    return topic, queue


def _drain(queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    received: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return received
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize("fifo", [False, True])
def test_batches_reach_a_subscribed_queue_in_order(aws: None, fifo: bool) -> None:
    topic, queue = _topic_with_queue(fifo)
    publisher = SnsPublisher(SnsConfig(topic_arn=topic))
    assert publisher.publish([_event(n) for n in range(25)]) == []
    assert publisher.connected
    notifications = _drain(queue)
    numbers = [json.loads(n["Message"])["data"]["n"] for n in notifications]
    if fifo:
        assert numbers == list(range(25))
    else:
        assert sorted(numbers) == list(range(25))
    assert json.loads(notifications[0]["Message"])["data"]["name"] == "MÜLLER^Zoë 李 a+b&c=d"
    attributes = notifications[0]["MessageAttributes"]
    assert attributes["type"]["Value"] == "dicom.instance.stored"


class _FlakyClient:
    """Refuses entry 3 of the first batch, then accepts everything."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def publish_batch(self, **request: Any) -> dict[str, Any]:
        entries = request["PublishBatchRequestEntries"]
        self.calls.append(entries)
        if len(self.calls) == 1:
            return {"Successful": [], "Failed": [{"Id": "3", "Code": "Throttled"}]}
        return {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}


def test_partial_failure_resends_from_the_first_refused_entry() -> None:
    client = _FlakyClient()
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t.fifo")
    SnsPublisher(config, client=client).publish([_event(n) for n in range(6)])
    resent = [json.loads(e["Message"])["data"]["n"] for e in client.calls[1]]
    assert resent == [3, 4, 5]
    assert client.calls[1][0]["MessageDeduplicationId"] == "id-3"
    assert client.calls[1][0]["MessageGroupId"] == "study-1"


def test_an_entry_refused_again_and_again_fails_the_batch() -> None:
    class Refusing:
        def publish_batch(self, **request: Any) -> dict[str, Any]:
            return {"Failed": [{"Id": "0", "Code": "InternalError"}]}

    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t")
    with pytest.raises(PublishError):
        SnsPublisher(config, client=Refusing()).publish([_event(1)])


def test_chunks_respect_count_and_size_limits() -> None:
    assert [len(c) for c in _chunks([_event(n) for n in range(23)])] == [10, 10, 3]
    big = [_event(n, size=BATCH_BYTES // 3) for n in range(4)]
    assert [len(c) for c in _chunks(big)] == [2, 2]


def test_an_entry_invalid_as_it_is_is_refused_and_the_rest_goes_on() -> None:
    class RefusesTheSecond:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def publish_batch(self, **request: Any) -> dict[str, Any]:
            entries = request["PublishBatchRequestEntries"]
            numbers = [json.loads(entry["Message"])["data"]["n"] for entry in entries]
            if 1 in numbers:
                index = numbers.index(1)
                self.sent.extend(numbers[:index])
                failed = {"Id": str(index), "Code": "InvalidParameter", "SenderFault": True}
                return {"Failed": [failed]}
            self.sent.extend(numbers)
            return {"Failed": []}

    client = RefusesTheSecond()
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t")
    refused = SnsPublisher(config, client=client).publish([_event(n) for n in range(4)])
    assert [r.event_id for r in refused] == ["id-1"]
    assert "InvalidParameter" in refused[0].reason
    assert client.sent == [0, 2, 3]


def test_an_event_over_256_kib_is_refused_without_being_sent() -> None:
    sent: list[int] = []

    class Recording:
        def publish_batch(self, **request: Any) -> dict[str, Any]:
            sent.extend(
                json.loads(e["Message"])["data"]["n"] for e in request["PublishBatchRequestEntries"]
            )
            return {"Failed": []}

    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t")
    events = [_event(0), _event(1, size=BATCH_BYTES), _event(2)]
    refused = SnsPublisher(config, client=Recording()).publish(events)
    assert [r.event_id for r in refused] == ["id-1"]
    assert "too large" in refused[0].reason
    assert sent == [0, 2]


class _SlowRecording:
    """Records each PublishBatch and how many ran at once; `refuse` fails a message group."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.running = 0
        self.most = 0
        self.refuse = refuse
        self._lock = threading.Lock()

    def publish_batch(self, **request: Any) -> dict[str, Any]:
        entries = request["PublishBatchRequestEntries"]
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self._lock:
            self.running -= 1
            self.calls.append(entries)
        if self.refuse and entries[0].get("MessageGroupId") == self.refuse:
            raise RuntimeError("throttled")
        return {"Failed": []}


def _numbers(entries: list[dict[str, Any]]) -> list[int]:
    return [json.loads(entry["Message"])["data"]["n"] for entry in entries]


def test_fifo_groups_go_in_parallel_each_in_order() -> None:
    client = _SlowRecording()
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t.fifo")
    events = [_event(n, group=f"study-{n % 3}") for n in range(90)]
    assert SnsPublisher(config, client=client).publish(events) == []
    assert client.most > 1
    for group in range(3):
        sent = [
            n
            for call in client.calls
            if call[0]["MessageGroupId"] == f"study-{group}"
            for n in _numbers(call)
        ]
        assert sent == [n for n in range(90) if n % 3 == group]
    assert all(len({e["MessageGroupId"] for e in call}) == 1 for call in client.calls)


def test_a_standard_topic_sends_every_batch_in_parallel() -> None:
    client = _SlowRecording()
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t")
    assert SnsPublisher(config, client=client).publish([_event(n) for n in range(100)]) == []
    assert client.most > 1
    assert sorted(n for call in client.calls for n in _numbers(call)) == list(range(100))


def test_one_failing_group_fails_the_page_after_the_others_went() -> None:
    client = _SlowRecording(refuse="study-1")
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t.fifo")
    events = [_event(n, group=f"study-{n % 2}") for n in range(40)]
    with pytest.raises(PublishError):
        SnsPublisher(config, client=client).publish(events)
    sent = [
        n for call in client.calls if call[0]["MessageGroupId"] == "study-0" for n in _numbers(call)
    ]
    assert sent == list(range(0, 40, 2))


def test_send_starts_the_calls_and_its_result_waits_for_them() -> None:
    client = _SlowRecording()
    config = SnsConfig(topic_arn="arn:aws:sns:us-east-1:000000000000:t")
    publisher = SnsPublisher(config, client=client)
    events = [_event(0), _event(1, size=BATCH_BYTES), *[_event(n) for n in range(2, 40)]]
    wait = publisher.send(events)
    assert len(client.calls) < 4  # still running in the background
    refused = wait()
    assert [r.event_id for r in refused] == ["id-1"]
    assert sorted(n for call in client.calls for n in _numbers(call)) == [0, *range(2, 40)]
    publisher.close()
