"""AWS SNS: PublishBatch of up to 10, a `type` attribute for filter policies, FIFO topics.

A page of events becomes many PublishBatch calls, each a round trip: they run in parallel
(`PARALLEL_CALLS` at most). On a FIFO topic the calls of one message group (a study) run one
after the other, in order, so SNS keeps the group's order; different groups go in parallel. A
standard topic promises no order, so every call may run in parallel. `send` starts the calls
and returns at once, so the worker builds the next page while they run (pipelined pages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..config import SnsConfig
from ..envelope import OutgoingEvent
from . import PublishError, Refusal
from .form_body import encode_before_signing

BATCH_ENTRIES = 10
BATCH_BYTES = (
    256 * 1024
)  # the limit of one message and of a whole PublishBatch, attributes included
_PARTIAL_RETRIES = 3
PARALLEL_CALLS = 8


class SnsPublisher:
    """Publishes with the standard AWS credential chain (no key in Orthanc's configuration)."""

    def __init__(
        self, config: SnsConfig, client: Any = None, parallel_calls: int = PARALLEL_CALLS
    ) -> None:
        self._config = config
        self._client = client
        self._ok = False
        self._parallel_calls = parallel_calls
        self._pool: ThreadPoolExecutor | None = None

    @property
    def connected(self) -> bool:
        return self._ok

    def publish(self, events: Sequence[OutgoingEvent]) -> list[Refusal]:
        refused: list[Refusal] = []
        fitting = self._fitting(events, refused)
        lanes = self._lanes(fitting)
        if len(lanes) <= 1 or self._parallel_calls <= 1:
            for lane in lanes:
                refused.extend(self._publish_lane(lane))
            return _in_order(refused, events)
        return self._start(lanes, refused, events)()

    def send(self, events: Sequence[OutgoingEvent]) -> Callable[[], list[Refusal]]:
        """`publish` in two halves: the calls start now, in the background; the returned call
        waits for them (the worker builds the next page meanwhile)."""
        refused: list[Refusal] = []
        fitting = self._fitting(events, refused)
        return self._start(self._lanes(fitting), refused, events)

    def _start(
        self,
        lanes: list[list[list[OutgoingEvent]]],
        refused: list[Refusal],
        events: Sequence[OutgoingEvent],
    ) -> Callable[[], list[Refusal]]:
        if self._pool is None:
            try:
                self._sns()  # one client, made once: boto3 clients are thread-safe, not making one
            except Exception as error:  # no region, no botocore: retried like a failed call
                raise PublishError(f"{type(error).__name__}: {error}") from error
            self._pool = ThreadPoolExecutor(self._parallel_calls, thread_name_prefix="sns")
        futures: list[Future[list[Refusal]]] = [
            self._pool.submit(self._publish_lane, lane) for lane in lanes
        ]

        def wait() -> list[Refusal]:
            errors: list[PublishError] = []
            for future in futures:  # every call is awaited, even after one failed
                try:
                    refused.extend(future.result())
                except PublishError as error:
                    errors.append(error)
            if errors:
                raise errors[0]  # the page is retried as a whole: at least once
            return _in_order(refused, events)

        return wait

    @staticmethod
    def _fitting(events: Sequence[OutgoingEvent], refused: list[Refusal]) -> list[OutgoingEvent]:
        """The events SNS can take; the others are refused (appended to `refused`)."""
        fitting: list[OutgoingEvent] = []
        for event in events:
            size = message_size(event)
            if size > BATCH_BYTES:
                refused.append(
                    Refusal(event.id, f"too large for SNS: {size} > {BATCH_BYTES} bytes")
                )
            else:
                fitting.append(event)
        return fitting

    def _lanes(self, events: list[OutgoingEvent]) -> list[list[list[OutgoingEvent]]]:
        """Chunks to send one after the other, per lane; lanes may run in parallel."""
        if not self._config.fifo:
            return [[chunk] for chunk in _chunks(events)]
        groups: dict[str, list[OutgoingEvent]] = {}
        for event in events:
            groups.setdefault(event.group, []).append(event)
        return [_chunks(group) for group in groups.values()]

    def _publish_lane(self, lane: list[list[OutgoingEvent]]) -> list[Refusal]:
        refused: list[Refusal] = []
        for chunk in lane:
            refused.extend(self._publish_chunk(chunk))
        return refused

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        self._ok = False
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

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
                    # One pooled connection per parallel call (botocore keeps 10 by default): a
                    # call never waits for, or opens and drops, a connection of its own.
                    max_pool_connections=max(10, self._parallel_calls),
                    # Entries are built here, always well formed; SNS checks them again anyway.
                    parameter_validation=False,
                ),
            )
            self._client.meta.events.register("before-sign.sns", encode_before_signing)
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


def _in_order(refused: list[Refusal], events: Sequence[OutgoingEvent]) -> list[Refusal]:
    """Refusals in the order of their events."""
    position = {event.id: index for index, event in enumerate(events)}
    return sorted(refused, key=lambda refusal: position.get(refusal.event_id, -1))
