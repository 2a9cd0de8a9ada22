"""AWS SNS: PublishBatch of up to 10, a `type` attribute for filter policies, FIFO topics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import SnsConfig
from ..envelope import OutgoingEvent
from . import PublishError, Refusal

BATCH_ENTRIES = 10
BATCH_BYTES = (
    256 * 1024
)  # the limit of one message and of a whole PublishBatch, attributes included
_PARTIAL_RETRIES = 3


class SnsPublisher:
    """Publishes with the standard AWS credential chain (no key in Orthanc's configuration)."""

    def __init__(self, config: SnsConfig, client: Any = None) -> None:
        self._config = config
        self._client = client
        self._ok = False

    @property
    def connected(self) -> bool:
        return self._ok

    def publish(self, events: Sequence[OutgoingEvent]) -> list[Refusal]:
        refused: list[Refusal] = []
        fitting: list[OutgoingEvent] = []
        for event in events:
            size = message_size(event)
            if size > BATCH_BYTES:
                refused.append(
                    Refusal(event.id, f"too large for SNS: {size} > {BATCH_BYTES} bytes")
                )
            else:
                fitting.append(event)
        for chunk in _chunks(fitting):
            refused.extend(self._publish_chunk(chunk))
        return refused

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        self._ok = False

    def _publish_chunk(self, chunk: list[OutgoingEvent]) -> list[Refusal]:
        remaining = chunk
        refused: list[Refusal] = []
        for _ in range(_PARTIAL_RETRIES):
            failed = self._send(remaining)
            if failed is None:
                return refused
            failed_index, sender_fault, reason = failed
            if sender_fault:  # this entry is invalid as it is: no retry will change that
                refused.append(Refusal(remaining[failed_index].id, f"refused by SNS: {reason}"))
                failed_index += 1
            # Resend from the first failure on, even entries that succeeded after it: that keeps
            # order within a group (FIFO topics drop the duplicates by their deduplication id).
            remaining = remaining[failed_index:]
            if not remaining:
                return refused
        raise PublishError(f"SNS kept refusing {len(remaining)} of a batch of {len(chunk)}")

    def _send(self, events: list[OutgoingEvent]) -> tuple[int, bool, str] | None:
        """(index, sender's fault, reason) of the first refused entry; None when all passed."""
        entries = [self._entry(index, event) for index, event in enumerate(events)]
        try:
            answer = self._sns().publish_batch(
                TopicArn=self._config.topic_arn, PublishBatchRequestEntries=entries
            )
        except Exception as error:  # botocore raises many kinds; all mean retry
            self._ok = False
            raise PublishError(f"{type(error).__name__}: {error}") from error
        self._ok = True
        failed = sorted(answer.get("Failed", []), key=lambda entry: int(entry["Id"]))
        if not failed:
            return None
        first = failed[0]
        reason = f"{first.get('Code', '')}: {first.get('Message', '')}".strip(": ")
        return int(first["Id"]), bool(first.get("SenderFault")), reason

    def _entry(self, index: int, event: OutgoingEvent) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": str(index),
            "Message": event.body.decode(),
            "MessageAttributes": {"type": {"DataType": "String", "StringValue": event.type}},
        }
        if self._config.fifo:
            entry["MessageGroupId"] = event.group
            entry["MessageDeduplicationId"] = event.id
        return entry

    def _sns(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "sns",
                region_name=self._config.effective_region,
                endpoint_url=self._config.endpoint_url,
                config=Config(
                    connect_timeout=3,
                    read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return self._client


def message_size(event: OutgoingEvent) -> int:
    """What SNS counts against its limit: the message and its `type` attribute."""
    return len(event.body) + len("type") + len("String") + len(event.type.encode())


def _chunks(events: Sequence[OutgoingEvent]) -> list[list[OutgoingEvent]]:
    """Groups of at most 10 entries and 256 KiB of messages, in order."""
    chunks: list[list[OutgoingEvent]] = []
    current: list[OutgoingEvent] = []
    size = 0
    for event in events:
        length = message_size(event)
        if current and (len(current) == BATCH_ENTRIES or size + length > BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(event)
        size += length
    if current:
        chunks.append(current)
    return chunks
