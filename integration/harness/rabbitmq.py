"""RabbitMQ for the suites: an existing broker (RABBITMQ_URL) or a private node on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions

from .processes import (
    HarnessError,
    ManagedProcess,
    free_port,
    free_port_pair,
    port_is_free,
    wait_until,
)

RABBITMQ_SERVER = Path(os.environ.get("RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server"))
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


class OutageNotSupported(HarnessError):
    """The broker is not the harness's own, so it cannot be stopped and restarted."""


def _connect(url: str, timeout: float = 2.0) -> pika.BlockingConnection:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    return pika.BlockingConnection(parameters)


def amqp_ready(url: str) -> bool:
    """True when a connection to `url` opens (and is closed again)."""
    _connect(url).close()
    return True


class ExternalRabbitMQ:
    """A broker the harness did not start (RABBITMQ_URL): used as is, never stopped."""

    can_interrupt = False

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def url_for_orthanc(self) -> str:
        return self.url

    def is_running(self) -> bool:
        return True

    def start(self) -> None:
        wait_until(
            lambda: amqp_ready(self.url),
            timeout=15,
            what=f"the RabbitMQ at RABBITMQ_URL ({_masked(self.url)})",
            retry_on=_CONNECTION_ERRORS,
            interval=0.5,
        )

    def stop(self) -> None:
        raise OutageNotSupported(
            "the broker comes from RABBITMQ_URL: outage tests need the harness's own node "
            "(unset RABBITMQ_URL)"
        )

    def close(self) -> None:
        """Nothing to stop: the broker belongs to someone else."""

    def log_tail(self, lines: int = 200) -> str:
        return "(external broker: no log)"


class PrivateRabbitMQNode:
    """A RabbitMQ node of its own: files in `workdir`, loopback ports, stopped by PID.

    Its epmd is started by the harness too, as a process of its own: an epmd the node started
    would be a daemon (detached from everything), which nothing stops if the harness is killed.
    `stop()` then `start()` restarts it on the same port with the same data, so durable
    exchanges and queues survive an outage as they would on a real broker. `close()` is the end.
    """

    can_interrupt = True

    def __init__(self, workdir: Path, *, startup_timeout: float = 60.0) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.port = free_port_pair()
        self.epmd_port = free_port()
        self.node_name = f"harness-{os.getpid()}-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._process = ManagedProcess(
            "rabbitmq",
            [str(RABBITMQ_SERVER)],
            log_path=workdir / "rabbitmq-server.log",
            env=self._environment(),
            cwd=workdir,
        )
        self._epmd = ManagedProcess(
            "epmd",
            [_epmd_command(), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            log_path=workdir / "epmd.log",
            cwd=workdir,
        )

    @property
    def url_for_orthanc(self) -> str:
        return self.url

    def is_running(self) -> bool:
        return self._process.is_running()

    def _environment(self) -> dict[str, str]:
        home = self.workdir
        files = {
            "RABBITMQ_CONFIG_FILE": home / "rabbitmq.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": home / "enabled_plugins",
            "RABBITMQ_CONF_ENV_FILE": home / "rabbitmq-env.conf",
        }
        return {
            **os.environ,
            "HOME": str(home),  # the Erlang cookie lives there
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + 1),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            **{key: str(path) for key, path in files.items()},
        }

    def start(self) -> None:
        if not RABBITMQ_SERVER.exists():
            raise HarnessError(f"{RABBITMQ_SERVER} not found: install rabbitmq-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("rabbitmq.conf", "rabbitmq-env.conf"):
            (self.workdir / name).touch()
        (self.workdir / "enabled_plugins").write_text("[].\n")
        self._start_epmd()
        self._process.start()

        def ready() -> bool:
            if not self._process.is_running():
                raise HarnessError(
                    f"rabbitmq-server exited with status {self._process.returncode}:\n"
                    + self._process.log_tail(60)
                )
            return amqp_ready(self.url)

        try:
            wait_until(
                ready,
                timeout=self.startup_timeout,
                what=f"the private RabbitMQ node on port {self.port}",
                retry_on=_CONNECTION_ERRORS,
                interval=0.25,
                details=lambda: self._process.log_tail(60),
            )
        except BaseException:
            self.close()
            raise

    def stop(self) -> None:
        """Stop the node (an outage); `start()` brings it back on the same port."""
        self._process.stop()
        self._stop_epmd()

    def close(self) -> None:
        self._process.stop()
        self._stop_epmd()

    def log_tail(self, lines: int = 200) -> str:
        return self._process.log_tail(lines)

    def _start_epmd(self) -> None:
        if self._epmd.is_running():
            return
        self._epmd.start()

        def listening() -> bool:
            if not self._epmd.is_running():
                raise HarnessError(
                    f"epmd exited with status {self._epmd.returncode}:\n" + self._epmd.log_tail(20)
                )
            return not port_is_free(self.epmd_port)

        try:
            wait_until(listening, timeout=10, what=f"epmd on port {self.epmd_port}", interval=0.05)
        except BaseException:
            self._epmd.stop()
            raise

    def _stop_epmd(self) -> None:
        self._epmd.stop()
        # An epmd the node started itself (had ours died) is a daemon: only `epmd -kill` ends it.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [_epmd_command(), "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def _epmd_command() -> str:
    return shutil.which("epmd") or "/usr/bin/epmd"


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


@dataclass(frozen=True)
class ReceivedMessage:
    """One message taken from the harness's queue."""

    body: Any  # the parsed JSON, or the raw bytes when the body is not JSON
    raw: bytes
    exchange: str
    routing_key: str
    message_id: str | None
    content_type: str | None
    delivery_mode: int | None
    redelivered: bool
    headers: dict[str, Any] = field(default_factory=dict)


def _first_of_each_id(messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
    seen: set[Any] = set()
    first = []
    for message in messages:
        key = message.body.get("id") if isinstance(message.body, dict) else id(message)
        if key not in seen:
            seen.add(key)
            first.append(message)
    return first


class EventCollector:
    """Collects what a broker routes from `exchange` with `binding_key`, on a thread of its own.

    With `queue` unset, the queue is exclusive and auto-deleted. A named `queue` is durable and
    survives a broker outage; the collector reconnects after one and deletes that queue on close().
    """

    def __init__(self, url: str, exchange: str, binding_key: str, *, queue: str | None = None):
        self.url = url
        self.exchange = exchange
        self.binding_key = binding_key
        self.queue_name = queue
        self._messages: list[ReceivedMessage] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._bound = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"consume-{exchange}-{binding_key}", daemon=True
        )

    def start(self, timeout: float = 15.0) -> EventCollector:
        """Return once the queue is bound, so nothing published afterwards is missed."""
        self._thread.start()
        if not self._bound.wait(timeout):
            self.close()
            raise TimeoutError(
                f"could not bind a queue to exchange {self.exchange!r} within {timeout} s"
                + (f": {self._failure}" if self._failure else "")
            )
        if self._failure is not None:
            raise HarnessError(f"consumer failed: {self._failure}") from self._failure
        return self

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """All messages received so far, once there are at least `count` of them."""
        return self._wait(count, timeout, list, "message(s)")

    def wait_for_distinct(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """The first copy of each event id received, in order, once there are `count` ids.

        Delivery is at least once: a page published again after a failed confirm repeats events
        under their ids, and consumers deduplicate on the id, as this does.
        """
        return self._wait(count, timeout, _first_of_each_id, "distinct event(s)")

    def _wait(
        self,
        count: int,
        timeout: float,
        view: Callable[[list[ReceivedMessage]], list[ReceivedMessage]],
        what: str,
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(seen := view(self._messages)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(m.routing_key, m.body) for m in self._messages]
                    raise TimeoutError(
                        f"expected {count} {what} from exchange {self.exchange!r} "
                        f"(binding {self.binding_key!r}) within {timeout} s, got "
                        f"{len(seen)}: {summary!r}"
                    )
                self._changed.wait(remaining)
            return seen

    def wait_quiet(self, seconds: float) -> list[ReceivedMessage]:
        """Wait `seconds` and return every message received by then (to assert that none came)."""
        time.sleep(seconds)
        return self.messages

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.queue_name is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                connection = _connect(self.url)
                try:
                    connection.channel().queue_delete(self.queue_name)
                finally:
                    connection.close()

    def __enter__(self) -> EventCollector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume_until_stopped_or_lost()
            except _CONNECTION_ERRORS as error:
                if not self._bound.is_set() and self.queue_name is None:
                    # Without a durable queue a first failure cannot be recovered from.
                    self._failure = error
                    self._bound.set()
                    return
                self._stopping.wait(0.5)

    def _consume_until_stopped_or_lost(self) -> None:
        connection = _connect(self.url)
        try:
            channel = self._declare(connection)
            channel.basic_consume(queue=self._queue, on_message_callback=self._on_message)
            self._bound.set()
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.1)
        finally:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                if connection.is_open:
                    connection.close()

    def _declare(self, connection: pika.BlockingConnection) -> Any:
        channel = connection.channel()
        try:
            channel.exchange_declare(self.exchange, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            # A missing exchange closes the channel: declare it as the plugins expect it.
            channel = connection.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        if self.queue_name is None:
            result = channel.queue_declare("", exclusive=True, auto_delete=True)
            self._queue: str = result.method.queue
        else:
            channel.queue_declare(self.queue_name, durable=True)
            self._queue = self.queue_name
        channel.queue_bind(self._queue, self.exchange, routing_key=self.binding_key)
        return channel

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        message = ReceivedMessage(
            body=parsed,
            raw=body,
            exchange=method.exchange,
            routing_key=method.routing_key,
            message_id=properties.message_id,
            content_type=properties.content_type,
            delivery_mode=properties.delivery_mode,
            redelivered=bool(method.redelivered),
            headers=dict(properties.headers or {}),
        )
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()
        channel.basic_ack(method.delivery_tag)


def consume(
    url: str, exchange: str, binding_key: str = "#", *, queue: str | None = None
) -> EventCollector:
    """Start collecting what `exchange` routes with `binding_key`; close() the result when done."""
    return EventCollector(url, exchange, binding_key, queue=queue).start()


def declare_queue(url: str, exchange: str, binding_key: str, queue: str) -> None:
    """Declare the durable `queue` bound to `exchange`, so what the exchange routes waits there
    for a later `consume(..., queue=queue)`, outages of the broker included."""
    connection = _connect(url)
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key=binding_key)
    finally:
        connection.close()


def declare_exchange(url: str, exchange: str) -> None:
    """Declare `exchange` as a durable topic exchange (what the plugins publish to)."""
    connection = _connect(url)
    try:
        connection.channel().exchange_declare(exchange, exchange_type="topic", durable=True)
    finally:
        connection.close()
