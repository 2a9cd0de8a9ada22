"""pytest-docker's fixtures, set for HARNESS_PROVIDER=compose (integration/conftest.py imports
them): `docker_services` starts integration/docker-compose.yml, as `compose_variant` adapts it to
this engine, with Debian's docker-compose 1.29 unless HARNESS_COMPOSE_COMMAND names another, and
takes the project down (volumes included) at the end of the session.

Broker images: HARNESS_RABBITMQ_IMAGE / HARNESS_LOCALSTACK_IMAGE when set, else the file's pinned
images when the engine has them or can pull them, else images built here (`images`).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from integration.harness.compose import ComposeProject, compose_command
from integration.harness.compose_provider import COMPOSE_FILE, SERVICES, ComposeProvider
from integration.harness.processes import HarnessError


def _provider() -> ComposeProvider:
    provider = ComposeProvider.current
    if provider is None:
        raise HarnessError("pytest-docker's compose project is only for HARNESS_PROVIDER=compose")
    return provider


def _command() -> str:
    # Relative paths in the file keep their meaning: the adapted copy is written elsewhere.
    return shlex.join([*compose_command(), "--project-directory", str(COMPOSE_FILE.parent)])


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return _command()


@pytest.fixture(scope="session")
def docker_compose_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Starts the harness's engine first when none answers (the network mode asks it).
    return str(_provider().compose_file(tmp_path_factory.mktemp("compose")))


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"orthanc-plugins-harness-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # docker-compose 1.29 has no `up --wait`: compose_brokers waits for the health checks.
    return ["up --detach"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --remove-orphans"]


@pytest.fixture(scope="session")
def compose_brokers(request: pytest.FixtureRequest) -> ComposeProject:
    """The running project, its brokers healthy, handed to the compose provider."""
    provider = _provider()
    if request.getfixturevalue("docker_compose_command") != _command():
        # The harness was given as a plugin (-p integration.conftest), loaded before pytest-docker,
        # whose own defaults then win: the provider runs the project itself.
        print("harness: pytest-docker's fixtures are not the harness's here", file=sys.stderr)
        return provider.running_project()
    request.getfixturevalue("docker_services")
    project = ComposeProject(
        Path(request.getfixturevalue("docker_compose_file")),
        COMPOSE_FILE.parent,
        request.getfixturevalue("docker_compose_project_name"),
    )
    project.wait_healthy(SERVICES)
    provider.attach(project)
    return project
