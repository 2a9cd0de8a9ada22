"""RabbitMQ: one connection owned by the publisher thread, persistent messages, publisher confirms.

The channel is in confirm mode. A batch goes out without waiting between messages; the thread then
runs the connection's I/O loop until the broker has acknowledged every message (acks for many
messages at once arrive as one frame), so a page costs about one round trip, not one per message.
`send` splits this in two: the batch is written at once, and the returned call waits for the
confirmations, so the worker reads and builds the next page while the broker stores this one.
A negative acknowledgement, a closed channel or connection, or no answer in time fails the whole
batch, which is then retried: delivery is at least once. `mandatory` is set, and a message the
broker could route to no queue comes back (before its ack): it is a refusal (the worker keeps it
as a dead letter), or, with `Unroutable: "retry"`, fails the batch until a queue is bound.

pika's SelectConnection is used rather than its BlockingConnection, whose channel waits for each
confirm in turn. A page's frames are marshalled here (`amqp_frames`) and handed to the connection
as one buffer: pika's per-message path costs a system call per frame. Nothing else touches the
connection: the publisher thread drives the I/O loop only while it publishes, connects, or
services heartbeats when idle.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ..config import RabbitConfig, mask_url_password
from ..envelope import CONTENT_TYPE, OutgoingEvent
from . import PublishError, Refusal
from .amqp_frames import PERSISTENT, PublishFrames

_CONNECT_TIMEOUT_SECONDS = 3.0
_CONFIRM_TIMEOUT_SECONDS = 30.0  # a broker that takes longer is treated as gone; batch retried
_HEARTBEAT_SECONDS = 30
_PROBE_TIMEOUT_SECONDS = 0.2


class RabbitPublisher:
    """Publishes to a durable topic exchange; routing key = event type; message id = event id."""

    def __init__(self, config: RabbitConfig) -> None:
        import pika

        self._pika = pika
        self._config = config
        self._connection: Any = None
        self._channel: Any = None
        self._ready = False  # channel open, exchange declared, confirm mode on
        self._failure: str | None = None
        self._next_tag = 0
        self._unconfirmed: set[int] = set()
        self._nacked = 0
        self._returned: list[Refusal] = []  # messages routed nowhere, this batch
        self._stop_when: Callable[[], bool] | None = None
        self._seen_unreachable = False
        self._frames: PublishFrames | None = None  # None: publish through pika's channel

    def came_back(self) -> bool:
        """During a backoff: True once the broker's port accepts connections again after it
        did not (a TCP connect, closed at once), so the worker retries then instead of waiting
        out its backoff. A broker whose port stays open (a refused login, say) never counts as
        back: the backoff paces those retries."""
        parameters = self._pika.URLParameters(self._config.url)
        try:
            with socket.create_connection(
                (parameters.host, parameters.port), timeout=_PROBE_TIMEOUT_SECONDS
            ):
                pass
        except OSError:
            self._seen_unreachable = True
            return False
        back, self._seen_unreachable = self._seen_unreachable, False
        return back

    @property
    def connected(self) -> bool:
        return self._ready and self._connection is not None and bool(self._connection.is_open)

    def publish(self, events: Sequence[OutgoingEvent]) -> list[Refusal]:
        return self.send(events)()

    def send(self, events: Sequence[OutgoingEvent]) -> Callable[[], list[Refusal]]:
        """Write the batch to the broker now and return the call that waits for its
        confirmations (with `publish`'s result and errors). Between the two the caller may do
        other work - read the next page - while the broker stores and confirms; nothing else
        may use the publisher meanwhile."""
        try:
            self._open()
            self._returned, self._nacked = [], 0
            emit = getattr(self._connection, "_adapter_emit_data", None)
            if self._frames is not None and emit is not None:
                emit(self._frames.page(events))
            else:
                self._publish_each(events)
            first = self._next_tag + 1
            self._next_tag += len(events)
            self._unconfirmed.update(range(first, self._next_tag + 1))
            # Out of pika's buffer into the socket, or nothing leaves until the wait below.
            self._run_until(
                lambda: self._failure is not None or self._buffered() == 0,
                _CONFIRM_TIMEOUT_SECONDS,
            )
        except (self._pika.exceptions.AMQPError, OSError) as error:
            self._fail(_describe(error))
        return self._confirmations

    def _publish_each(self, events: Sequence[OutgoingEvent]) -> None:
        for event in events:
            properties = self._pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=PERSISTENT,
                message_id=event.id,
                type=event.type,
            )
            self._channel.basic_publish(
                self._config.exchange, event.type, event.body, properties, mandatory=True
            )

    def _confirmations(self) -> list[Refusal]:
        confirmed = False
        try:
            confirmed = self._run_until(
                lambda: not self._unconfirmed or self._failure is not None,
                _CONFIRM_TIMEOUT_SECONDS,
            )
        except (self._pika.exceptions.AMQPError, OSError) as error:
            self._fail(_describe(error))
        if self._failure is not None:
            self._fail(self._failure)
        if not confirmed:
            self._fail(f"no confirmation within {_CONFIRM_TIMEOUT_SECONDS:.0f} s")
        if self._nacked:
            self._fail(f"the broker refused {self._nacked} message(s)")  # channel stays usable
        if self._returned and self._config.unroutable == "retry":
            raise PublishError(f"{self._returned[0].reason} (Unroutable: retry)")
        return self._returned

    def _buffered(self) -> int:
        """Bytes pika still holds for the socket (0 when it cannot tell: the wait flushes)."""
        size = getattr(self._connection, "_get_write_buffer_size", None)
        try:
            return int(size()) if size is not None else 0
        except Exception:  # a connection in the middle of closing
            return 0

    def keep_alive(self) -> None:
        if self.connected:
            self._run_until(lambda: False, 0)  # read and answer heartbeats
            if self._failure is not None:
                self.close()

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._ready = False
        self._frames = None
        self._unconfirmed.clear()
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # already broken: nothing more to do
                connection.close()
                self._drive(
                    connection, lambda: bool(connection.is_closed), _CONNECT_TIMEOUT_SECONDS
                )

    # -- connection set-up, as a chain of callbacks ---------------------------------------------

    def _open(self) -> None:
        if self.connected and self._channel is not None and self._channel.is_open:
            return
        self.close()
        self._failure = None
        self._next_tag = 0
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
        self._connection = pika.SelectConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_error,
            on_close_callback=self._on_connection_closed,
        )
        opened = self._run_until(
            lambda: self._ready or self._failure is not None, _CONNECT_TIMEOUT_SECONDS * 3
        )
        if self._failure is not None:
            self._fail(self._failure)
        if not opened:
            self._fail(f"no connection within {_CONNECT_TIMEOUT_SECONDS * 3:.0f} s")

    def _on_connection_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_error(self, _connection: Any, error: BaseException) -> None:
        host = f"{self._connection.params.host}:{self._connection.params.port}"
        self._failed(f"cannot connect to {host}: {_describe(error)}")

    def _on_connection_closed(self, _connection: Any, reason: BaseException) -> None:
        self._failed(f"connection closed: {_describe(reason)}")

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_returned)
        arguments = {}
        if self._config.alternate_exchange:
            arguments["alternate-exchange"] = self._config.alternate_exchange
        channel.exchange_declare(
            self._config.exchange,
            exchange_type="topic",
            durable=True,
            arguments=arguments or None,
            callback=lambda _frame: channel.confirm_delivery(
                ack_nack_callback=self._on_confirmation, callback=self._on_confirm_mode
            ),
        )

    def _on_confirm_mode(self, _frame: Any) -> None:
        body_max = getattr(self._connection, "_body_max_length", None)
        channel = self._channel
        if isinstance(body_max, int) and body_max > 0 and channel is not None:
            number = int(channel.channel_number)
            self._frames = PublishFrames(number, self._config.exchange, body_max)
        else:
            self._frames = None  # a pika without these internals: its own path
        self._ready = True
        self._check_stop()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._failed(f"channel closed: {_describe(reason)}")

    # -- during a batch -------------------------------------------------------------------------

    def _on_confirmation(self, frame: Any) -> None:
        method = frame.method
        tag, multiple = int(method.delivery_tag), bool(method.multiple)
        done = {t for t in self._unconfirmed if t <= tag} if multiple else {tag}
        self._unconfirmed -= done
        if isinstance(method, self._pika.spec.Basic.Nack):
            self._nacked += len(done)
        self._check_stop()

    def _on_returned(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        event_id = str(getattr(properties, "message_id", "") or "")
        routing_key = getattr(method, "routing_key", "")
        reason = f"unroutable: no queue bound to {self._config.exchange!r} for {routing_key!r}"
        self._returned.append(Refusal(event_id, reason))

    # -- driving the I/O loop from the publisher thread -----------------------------------------

    def _failed(self, message: str) -> None:
        self._failure = self._failure or message
        self._ready = False
        self._check_stop()

    def _fail(self, message: str) -> None:
        self.close()
        raise PublishError(message)

    def _check_stop(self) -> None:
        if self._stop_when is not None and self._stop_when() and self._connection is not None:
            self._connection.ioloop.stop()

    def _run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Run the I/O loop until `done()` or `timeout` seconds; returns `done()`."""
        connection = self._connection
        if connection is None:
            return done()
        return self._drive(connection, done, timeout)

    def _drive(self, connection: Any, done: Callable[[], bool], timeout: float) -> bool:
        if done():
            return True
        loop = connection.ioloop
        self._stop_when = done
        deadline = loop.call_later(timeout, loop.stop)
        try:
            loop.start()
        finally:
            self._stop_when = None
            loop.remove_timeout(deadline)
        return done()

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._config.ca_file)
        if self._config.cert_file:
            context.load_cert_chain(self._config.cert_file, self._config.key_file)
        return context

    def __repr__(self) -> str:
        return f"RabbitPublisher({mask_url_password(self._config.url)})"


def _describe(error: BaseException) -> str:
    """pika's errors often have an empty message: their causes and arguments say what happened."""
    causes = getattr(error, "exceptions", None)  # a failed connection workflow lists its attempts
    if causes:
        return _describe(causes[-1])
    cause = getattr(error, "exception", None)  # an error wrapped by a bring-up phase
    if isinstance(cause, BaseException):
        return f"{type(error).__name__}: {_describe(cause)}"
    parts = [_describe(a) if isinstance(a, BaseException) else repr(a) for a in error.args]
    detail = str(error) or ", ".join(parts)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
