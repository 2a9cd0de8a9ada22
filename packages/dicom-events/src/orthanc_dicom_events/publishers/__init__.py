"""Brokers the events go to; each publisher is owned by the publisher thread alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..envelope import OutgoingEvent


class PublishError(RuntimeError):
    """The broker did not confirm every event of the batch (the batch is retried)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event the broker will never take as it is (too large, routed nowhere, invalid)."""

    event_id: str
    reason: str


class Publisher(Protocol):
    def publish(self, events: Sequence[OutgoingEvent]) -> list[Refusal]:
        """Send and wait for the broker's confirmation of every event, in order.

        Returns the events refused for good (the others were confirmed); raises PublishError
        when the batch must be tried again.
        """
        ...

    def keep_alive(self) -> None:
        """Service the connection while idle (heartbeats)."""
        ...

    # Optional: `came_back() -> bool`, polled during a backoff after a failed publish; True ends
    # the wait at once (the broker returned). Publishers without it wait out the backoff.
    # Optional: `send(events) -> Callable[[], list[Refusal]]`, `publish` in two halves: the
    # events leave at once, the returned call waits for the broker's answer (pipelined pages).

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...
