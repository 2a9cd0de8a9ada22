"""RabbitMQ: one connection owned by the publisher thread, confirms, persistent messages."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

from ..config import RabbitConfig, mask_url_password
from ..envelope import CONTENT_TYPE, OutgoingEvent
from . import PublishError

_CONNECT_TIMEOUT_SECONDS = 3.0
_HEARTBEAT_SECONDS = 30
_PERSISTENT = 2


class RabbitPublisher:
    """Publishes to a durable topic exchange; routing key = event type; message id = event id."""

    def __init__(self, config: RabbitConfig) -> None:
        import pika

        self._pika = pika
        self._config = config
        self._connection: Any = None
        self._channel: Any = None

    @property
    def connected(self) -> bool:
        return self._connection is not None and bool(self._connection.is_open)

    def publish(self, events: Sequence[OutgoingEvent]) -> int:
        exceptions = self._pika.exceptions
        unroutable = 0
        try:
            channel = self._open_channel()
            for event in events:
                properties = self._pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=_PERSISTENT,
                    message_id=event.id,
                    type=event.type,
                )
                try:
                    # With confirms on, this returns once the broker has the message.
                    channel.basic_publish(
                        self._config.exchange,
                        event.type,
                        event.body,
                        properties,
                        mandatory=True,
                    )
                except exceptions.UnroutableError:
                    unroutable += 1  # confirmed, but no queue is bound for this event type
        except (exceptions.AMQPError, OSError) as error:
            self.close()
            detail = str(error) or repr(error.args) if error.args else type(error).__doc__
            raise PublishError(f"{type(error).__name__}: {detail}") from error
        return unroutable

    def keep_alive(self) -> None:
        if not self.connected:
            return
        try:
            self._connection.process_data_events(0)
        except (self._pika.exceptions.AMQPError, OSError):
            self.close()

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # already broken: nothing more to do
                connection.close()

    def _open_channel(self) -> Any:
        if self.connected and self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        pika = self._pika
        parameters = pika.URLParameters(self._config.url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = _CONNECT_TIMEOUT_SECONDS
        parameters.stack_timeout = _CONNECT_TIMEOUT_SECONDS * 2
        parameters.blocked_connection_timeout = _CONNECT_TIMEOUT_SECONDS * 3
        parameters.heartbeat = _HEARTBEAT_SECONDS
        parameters.client_properties = {"connection_name": "orthanc-dicom-events"}
        if self._config.url.startswith("amqps://"):
            parameters.ssl_options = pika.SSLOptions(self._ssl_context(), parameters.host)
        self._connection = pika.BlockingConnection(parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(self._config.exchange, exchange_type="topic", durable=True)
        self._channel = channel
        return channel

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._config.ca_file)
        if self._config.cert_file:
            context.load_cert_chain(self._config.cert_file, self._config.key_file)
        return context

    def __repr__(self) -> str:
        return f"RabbitPublisher({mask_url_password(self._config.url)})"
