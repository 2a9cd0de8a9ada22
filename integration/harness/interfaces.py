"""What the suites may rely on, whoever provides the servers (local processes today, containers
later). Suites reach these objects through fixtures only, never through a concrete class.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .orthanc import Entry, OrthancClient
from .sns import SqsReader


class Orthanc(Protocol):
    """A configured Orthanc; `url` is reachable from the test process."""

    url: str
    aet: str
    dicom_port: int
    client: OrthancClient
    config: dict[str, Any]
    # What `start()` waits for from each ready route (a test of a refused start may add 503).
    ready_statuses: set[int]

    def start(self) -> Orthanc: ...
    def start_expecting_failure(self, timeout: float = 20.0) -> tuple[int, str]: ...
    def stop(self, timeout: float = 20.0) -> int | None: ...
    def kill(self, sig: int = signal.SIGKILL) -> None: ...
    def restart(self) -> Orthanc: ...
    def is_running(self) -> bool: ...
    def log_text(self) -> str: ...
    def log_tail(self, lines: int = 200) -> str: ...
    def upload_file(self, dicom: Path | bytes) -> dict[str, Any]: ...
    def wait_stable(
        self, level: str, resource_id: str, timeout: float = 15.0
    ) -> dict[str, Any]: ...
    def cstore(
        self, paths: Sequence[Path], calling_aet: str = "HARNESS", timeout: float = 60.0
    ) -> None: ...


class RabbitMQ(Protocol):
    """A broker. `url` is for the test process; put `url_for_orthanc` in Orthanc's configuration.

    `stop()` then `start()` is an outage on the same port (when `can_interrupt`); `close()` ends it.
    """

    url: str
    can_interrupt: bool

    @property
    def url_for_orthanc(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def is_running(self) -> bool: ...
    def log_tail(self, lines: int = 200) -> str: ...


class SnsEmulator(Protocol):
    """An SNS + SQS endpoint. `endpoint_url` is for the test process; Orthanc gets
    `endpoint_url_for_orthanc` and the variables of `env`."""

    kind: str
    endpoint_url: str
    region: str
    can_interrupt: bool

    @property
    def endpoint_url_for_orthanc(self) -> str: ...
    @property
    def env(self) -> dict[str, str]: ...
    def client(self, service: str) -> Any: ...
    def create_topic(self, name: str, *, fifo: bool = False) -> str: ...
    def subscribe_queue(
        self, topic_arn: str, *, raw: bool = True, filter_policy: Any = None
    ) -> SqsReader: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def is_running(self) -> bool: ...
    def log_tail(self, lines: int = 200) -> str: ...


class Provider(Protocol):
    """Creates (unstarted) servers. A container provider implements the same three methods."""

    name: str

    def orthanc(
        self,
        workdir: Path,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        name: str = "harness",
    ) -> Orthanc: ...

    def rabbitmq(self, workdir: Path) -> RabbitMQ: ...

    def sns(self, kind: str, workdir: Path) -> SnsEmulator: ...

    def sns_kinds(self) -> list[str]: ...
