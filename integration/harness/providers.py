"""Where the servers come from; the suites do not change with it.

HARNESS_PROVIDER selects it:
- `auto` (or unset): `docker` when a Docker engine answers, else `local`;
- `local`: Orthanc, RabbitMQ and the SNS emulator as processes of this machine;
- `docker`: Orthanc as containers (testcontainers), the brokers too or, on an engine without a
  default bridge, the local processes (see `containers`);
- `compose`: the brokers of integration/docker-compose.yml started by pytest-docker, Orthanc as
  containers (see `compose_provider`);
- `external`: RabbitMQ and SNS already running (RABBITMQ_URL and AWS_ENDPOINT_URL, e.g. from
  `docker compose -f integration/docker-compose.yml up`), Orthanc as a local process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .interfaces import Orthanc, Provider, RabbitMQ, SnsEmulator
from .orthanc import Entry, OrthancServer
from .processes import HarnessError
from .rabbitmq import ExternalRabbitMQ, PrivateRabbitMQNode
from .sns import available_kinds, create_emulator


class LocalProcessProvider:
    """Orthanc, RabbitMQ and the SNS emulator as processes of this machine, on loopback ports."""

    name = "local"

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
    ) -> Orthanc:
        return OrthancServer(
            workdir,
            plugins=plugins,
            config=config,
            entry=entry,
            script=script,
            ready_routes=ready_routes,
            env=env,
            name=name,
        )

    def rabbitmq(self, workdir: Path) -> RabbitMQ:
        """RABBITMQ_URL's broker when set, else a private node."""
        url = os.environ.get("RABBITMQ_URL")
        if url:
            return ExternalRabbitMQ(url)
        return PrivateRabbitMQNode(workdir)

    def sns(self, kind: str, workdir: Path) -> SnsEmulator:
        return create_emulator(kind, workdir)

    def sns_kinds(self) -> list[str]:
        return available_kinds()


class ExternalServicesProvider(LocalProcessProvider):
    """Brokers someone else runs (RABBITMQ_URL, AWS_ENDPOINT_URL); Orthanc as a local process."""

    name = "external"

    def rabbitmq(self, workdir: Path) -> RabbitMQ:
        url = os.environ.get("RABBITMQ_URL")
        if not url:
            raise HarnessError(f"HARNESS_PROVIDER=external needs RABBITMQ_URL ({_COMPOSE_HINT})")
        return ExternalRabbitMQ(url)

    def sns_kinds(self) -> list[str]:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            raise HarnessError(
                f"HARNESS_PROVIDER=external needs AWS_ENDPOINT_URL ({_COMPOSE_HINT})"
            )
        return ["external"]


_COMPOSE_HINT = "docker compose -f integration/docker-compose.yml up --wait starts both"


def _container_provider() -> Provider:
    # Imported on demand: the container path needs testcontainers, the others do not.
    from .containers import ContainerProvider

    return ContainerProvider()


def _compose_provider() -> Provider:
    from .compose_provider import ComposeProvider

    return ComposeProvider()


PROVIDERS: dict[str, Callable[[], Provider]] = {
    "local": LocalProcessProvider,
    "docker": _container_provider,
    "external": ExternalServicesProvider,
    "compose": _compose_provider,
}


def choose_provider_name(
    environ: Mapping[str, str] | None = None,
    engine_answers: Callable[[], bool] | None = None,
) -> str:
    """The provider HARNESS_PROVIDER asks for; `auto` asks `engine_answers` (a Docker ping)."""
    source = os.environ if environ is None else environ
    name = source.get("HARNESS_PROVIDER", "").strip().lower() or "auto"
    if name == "auto":
        if engine_answers is None:
            from .containers import docker_engine_answers

            engine_answers = docker_engine_answers
        return "docker" if engine_answers() else "local"
    if name not in PROVIDERS:
        raise HarnessError(
            f"HARNESS_PROVIDER={name!r}: expected auto or one of {', '.join(PROVIDERS)}"
        )
    return name


def select_provider() -> Provider:
    """The provider named by HARNESS_PROVIDER (see the module's docstring)."""
    return PROVIDERS[choose_provider_name()]()
