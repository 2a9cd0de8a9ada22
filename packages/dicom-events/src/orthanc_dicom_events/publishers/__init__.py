"""Brokers the events go to; each publisher is owned by the publisher thread alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..envelope import OutgoingEvent


class PublishError(RuntimeError):
    """The broker did not confirm every event of the batch (the batch is retried)."""


class Publisher(Protocol):
    def publish(self, events: Sequence[OutgoingEvent]) -> int:
        """Send and wait for the broker's confirmation of every event, in order.

        Returns how many were accepted but routed nowhere. Raises PublishError otherwise.
        """
        ...

    def keep_alive(self) -> None:
        """Service the connection while idle (heartbeats)."""
        ...

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...
