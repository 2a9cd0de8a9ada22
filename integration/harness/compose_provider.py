"""HARNESS_PROVIDER=compose: the brokers of integration/docker-compose.yml, started by
pytest-docker's `docker_services` (fixtures in `integration.compose_fixtures`), and Orthanc as a
container of the docker provider. Outside such a pytest session (`python -m integration.stack`, a
nested pytest given the harness as a plugin) the provider runs the same project itself. An SNS
emulator other than LocalStack (`--sns moto`) is the local provider's process.

The test process reaches the brokers on 127.0.0.1 at the ports chosen here (the file's
HARNESS_RABBITMQ_PORT and HARNESS_LOCALSTACK_PORT); Orthanc reaches them there too on the host's
network, by service name on a private one (its containers join the project's network). An outage
is `compose stop` then `compose start` of the service: RabbitMQ keeps its durable queues, LocalStack
its nothing, as with the local processes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .compose import ComposeProject, HostPorts, write_variant
from .containers import (
    LOCALSTACK_ALIAS,
    LOCALSTACK_PORT,
    OWNER_LABEL,
    RABBITMQ_ALIAS,
    RABBITMQ_PASSWORD,
    RABBITMQ_PORT,
    RABBITMQ_USER,
    ContainerProvider,
    wait_for_localstack,
)
from .interfaces import RabbitMQ, SnsEmulator
from .processes import HarnessError, free_port, free_port_pair, tail, wait_until
from .rabbitmq import _CONNECTION_ERRORS, amqp_ready
from .sns import SnsEmulatorBase

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "integration" / "docker-compose.yml"
SERVICES = ("rabbitmq", "localstack")


class ComposeProvider(ContainerProvider):
    name = "compose"
    # Started before the first server is asked for (see integration/conftest.py).
    session_fixtures = ("compose_brokers",)
    # The provider of this test process, for pytest-docker's fixtures (which cannot ask for the
    # `provider` fixture: that one asks for them).
    current: ComposeProvider | None = None

    def __init__(self) -> None:
        super().__init__()
        ComposeProvider.current = self
        rabbitmq = free_port_pair()  # the node's port, and the next one for its distribution
        self.host_ports = {
            "rabbitmq": HostPorts(
                {RABBITMQ_PORT: rabbitmq}, {"dist": rabbitmq + 1, "epmd": free_port()}
            ),
            "localstack": HostPorts({LOCALSTACK_PORT: free_port()}),
        }
        self.project: ComposeProject | None = None
        self._own_project: ComposeProject | None = None
        # A plain folder, removed by close(): a TemporaryDirectory may be cleaned up at exit
        # before close() runs `down` with the file in it.
        self._own_folder: Path | None = None

    @property
    def port_variables(self) -> dict[str, str]:
        """The compose file's variables for the ports published on 127.0.0.1."""
        return {
            "HARNESS_RABBITMQ_PORT": str(self.host_ports["rabbitmq"].published[RABBITMQ_PORT]),
            "HARNESS_LOCALSTACK_PORT": str(
                self.host_ports["localstack"].published[LOCALSTACK_PORT]
            ),
        }

    def attach(self, project: ComposeProject) -> None:
        """The project pytest-docker started (from compose_fixtures)."""
        self.project = project

    def running_project(self) -> ComposeProject:
        """pytest-docker's project, else one of the provider's own (started on first use; the
        stack asks for both brokers at once)."""
        with self._lock:
            if self.project is None:
                self.project = self.start_own_project()
            return self.project

    def compose_file(self, folder: Path) -> Path:
        """integration/docker-compose.yml adapted to this engine (see compose.compose_variant),
        written in `folder`; the port variables are set in this process's environment."""
        from .images import broker_images

        network = self.network_mode()
        os.environ.update(self.port_variables)
        return write_variant(
            COMPOSE_FILE,
            folder / "docker-compose.yml",
            network=network,
            images=broker_images(),
            host_ports=self.host_ports,
            # A test process killed before its `down`: the next run removes the containers.
            labels={OWNER_LABEL: str(os.getpid())},
        )

    def start_own_project(self) -> ComposeProject:
        self._own_folder = Path(tempfile.mkdtemp(prefix="orthanc-plugins-compose-"))
        project = ComposeProject(
            self.compose_file(self._own_folder),
            COMPOSE_FILE.parent,
            f"orthanc-plugins-harness-{os.getpid()}",
        )
        print(f"harness: starting compose project {project.name}", file=sys.stderr, flush=True)
        self._own_project = project
        project.up()
        project.wait_healthy(SERVICES)
        return project

    def close(self) -> None:
        project, self._own_project = self._own_project, None
        if project is not None:
            try:
                project.down()
            except HarnessError as error:
                print(f"harness: {error}", file=sys.stderr, flush=True)
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)
            self._own_folder = None
        super().close()

    def rabbitmq(self, workdir: Path) -> RabbitMQ:
        return ComposeRabbitMQ(self)

    def sns(self, kind: str, workdir: Path) -> SnsEmulator:
        if kind != "localstack":
            return self._local_provider().sns(kind, workdir)
        return ComposeLocalStack(self)

    def sns_kinds(self) -> list[str]:
        return ["localstack"]

    def new_container(self, image: str, alias: str | None) -> DockerContainer:
        if self.network_mode() == "host":
            return super().new_container(image, alias)
        from testcontainers.core.container import DockerContainer

        # Orthanc joins the project's network, where the brokers answer by service name.
        network = f"{self.running_project().name}_default"
        return DockerContainer(image).with_kwargs(
            network=network, labels={OWNER_LABEL: str(os.getpid())}
        )


class _ComposeService:
    service = ""

    def __init__(self, provider: ComposeProvider) -> None:
        self._provider = provider

    def is_running(self) -> bool:
        return self._provider.running_project().health(self.service) in ("healthy", "running")

    def stop(self) -> None:
        """An outage: the container stops, keeping its files."""
        self._provider.running_project().stop(self.service)

    def _start_service(self) -> None:
        project = self._provider.running_project()
        if not self.is_running():
            project.start(self.service)
        project.wait_healthy([self.service])

    def close(self) -> None:
        """Nothing: pytest-docker takes the project down at the end of the session."""

    def log_tail(self, lines: int = 200) -> str:
        return tail(self._provider.running_project().logs(self.service, lines), lines)


class ComposeRabbitMQ(_ComposeService):
    service = "rabbitmq"
    can_interrupt = True

    def __init__(self, provider: ComposeProvider) -> None:
        super().__init__(provider)
        credentials = f"{RABBITMQ_USER}:{RABBITMQ_PASSWORD}"
        port = provider.host_ports["rabbitmq"].published[RABBITMQ_PORT]
        self.url = f"amqp://{credentials}@127.0.0.1:{port}/%2F"
        if provider.network_mode() == "host":
            self._url_for_orthanc = self.url
        else:
            self._url_for_orthanc = f"amqp://{credentials}@{RABBITMQ_ALIAS}:{RABBITMQ_PORT}/%2F"

    @property
    def url_for_orthanc(self) -> str:
        return self._url_for_orthanc

    def start(self) -> None:
        self._start_service()
        wait_until(
            lambda: amqp_ready(self.url),
            timeout=60,
            what=f"RabbitMQ of the compose project on {self.url.rsplit('@', 1)[1]}",
            retry_on=_CONNECTION_ERRORS,
            interval=0.5,
            details=lambda: self.log_tail(60),
        )


class ComposeLocalStack(SnsEmulatorBase):
    kind = "localstack"
    can_interrupt = True

    def __init__(self, provider: ComposeProvider) -> None:
        port = provider.host_ports["localstack"].published[LOCALSTACK_PORT]
        super().__init__(f"http://127.0.0.1:{port}")
        self._service = _ComposeLocalStackService(provider)
        self._for_orthanc = (
            self.endpoint_url
            if provider.network_mode() == "host"
            else f"http://{LOCALSTACK_ALIAS}:{LOCALSTACK_PORT}"
        )

    @property
    def endpoint_url_for_orthanc(self) -> str:
        return self._for_orthanc

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "AWS_ENDPOINT_URL": self._for_orthanc}

    def start(self) -> None:
        self._service.start()
        wait_for_localstack(
            self.endpoint_url,
            f"LocalStack of the compose project at {self.endpoint_url}",
            self.log_tail,
        )

    def is_running(self) -> bool:
        return self._service.is_running()

    def stop(self) -> None:
        self._service.stop()

    def close(self) -> None:
        self._service.close()

    def log_tail(self, lines: int = 200) -> str:
        return self._service.log_tail(lines)


class _ComposeLocalStackService(_ComposeService):
    service = "localstack"

    def start(self) -> None:
        self._start_service()
