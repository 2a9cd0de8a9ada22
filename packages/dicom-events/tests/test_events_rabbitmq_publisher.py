"""The RabbitMQ publisher without a broker: its probe of a broker's return, its confirmations."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from pika import spec

from orthanc_dicom_events.config import RabbitConfig
from orthanc_dicom_events.publishers import PublishError
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


def test_a_nack_among_acks_for_many_messages_fails_the_whole_page() -> None:
    publisher = RabbitPublisher(RabbitConfig("amqp://guest:guest@127.0.0.1:1/", "x"))
    publisher._unconfirmed.update(range(1, 7))  # a page of six messages sent
    for method in (
        spec.Basic.Ack(delivery_tag=2, multiple=True),
        spec.Basic.Nack(delivery_tag=3, multiple=False),
        spec.Basic.Ack(delivery_tag=6, multiple=True),
    ):
        publisher._on_confirmation(SimpleNamespace(method=method))
    assert not publisher._unconfirmed  # every message answered, one of them refused
    with pytest.raises(PublishError, match="refused 1 message"):
        publisher._confirmations()  # the worker keeps its cursor and sends the page again
