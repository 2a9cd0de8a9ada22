"""The RabbitMQ publisher's probe of a broker's return (no broker needed)."""

from __future__ import annotations

import socket

from orthanc_dicom_events.config import RabbitConfig
from orthanc_dicom_events.publishers.rabbitmq import RabbitPublisher


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_came_back_only_when_the_port_opens_after_being_closed() -> None:
    port = _free_port()
    publisher = RabbitPublisher(RabbitConfig(f"amqp://guest:guest@127.0.0.1:{port}/", "x"))
    assert publisher.came_back() is False  # nothing listens
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert publisher.came_back() is True  # it was closed, it is open now
        assert publisher.came_back() is False  # open all along since: not a return
    assert publisher.came_back() is False
