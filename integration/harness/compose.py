"""The repository's compose files, run by the compose at hand on the engine at hand.

`compose_variant` turns a compose file into one that runs here and writes nothing back:
- Debian's docker-compose 1.29 knows no top-level `name` (the project name is given with -p);
- images that cannot be pulled are replaced by ones built here (`images`), and a built service
  gets its build arguments (examples/Dockerfile's base image, say);
- on an engine without a default bridge (the harness's own, see `docker_engine`) every service
  runs on the host's network: no published ports (1.29 refuses them there), each server told to
  listen on 127.0.0.1 at the port it would have been published on, and `<service>:<port>` in
  environment values and health checks rewritten to that loopback address.

`ComposeProject` drives one project with that file: up, health, stop/start of one service, down.
The command is HARNESS_COMPOSE_COMMAND, else `docker-compose`, else `docker compose`.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import HarnessError, wait_until

COMPOSE_COMMAND_VARIABLE = "HARNESS_COMPOSE_COMMAND"


@dataclass(frozen=True)
class HostPorts:
    """Where one service listens on the host's network: its published container ports mapped to
    host ports, and the other ports it opens (RabbitMQ's distribution and epmd ports)."""

    published: Mapping[int, int]
    extra: Mapping[str, int] = field(default_factory=dict)


def _rabbitmq_listening(ports: HostPorts) -> dict[str, str]:
    settings = {
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(ports.published[5672]),
        "RABBITMQ_DIST_PORT": str(ports.extra["dist"]),
        "ERL_EPMD_PORT": str(ports.extra["epmd"]),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    if 15672 in ports.published:
        # Read by integration/images/rabbitmq only: the official image keeps 15672.
        settings["RABBITMQ_MANAGEMENT_PORT"] = str(ports.published[15672])
    return settings


def _localstack_listening(ports: HostPorts) -> dict[str, str]:
    address = f"127.0.0.1:{ports.published[4566]}"
    return {"GATEWAY_LISTEN": address, "LOCALSTACK_HOST": address}


def _orthanc_listening(ports: HostPorts) -> dict[str, str]:
    # Orthanc binds every address: it refuses remote clients instead, as the harness's does.
    return {
        "ORTHANC__HTTP_PORT": str(ports.published[8042]),
        "ORTHANC__DICOM_PORT": str(ports.published[4242]),
        "ORTHANC__REMOTE_ACCESS_ALLOWED": "false",
    }


# How each server of the repository's compose files is told where to listen on the host.
HOST_LISTENING: dict[str, Callable[[HostPorts], dict[str, str]]] = {
    "rabbitmq": _rabbitmq_listening,
    "localstack": _localstack_listening,
    "orthanc": _orthanc_listening,
}


def _rewrite(value: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_rewrite(item, replacements) for item in value]
    return value


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    """A service's environment as a mapping (compose also accepts a list of NAME=value)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(
            item.split("=", 1) if "=" in item else (item, "") for item in environment
        )
    return dict(environment)


def compose_variant(
    document: Mapping[str, Any],
    *,
    network: str,
    images: Mapping[str, str] | None = None,
    build_args: Mapping[str, Mapping[str, str]] | None = None,
    host_ports: Mapping[str, HostPorts] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The compose document adapted as the module's docstring says. `network` is `private` or
    `host`; `images` and `build_args` are per service; `host_ports` (host network) says where
    each service listens; `labels` go on every service's container."""
    variant: dict[str, Any] = copy.deepcopy(dict(document))
    variant.pop("name", None)
    services: dict[str, dict[str, Any]] = variant["services"]
    for service in services.values():
        if labels:
            service["labels"] = {**service.get("labels", {}), **labels}
    for name, image in (images or {}).items():
        services[name]["image"] = image
    for name, arguments in (build_args or {}).items():
        build = services[name].get("build", ".")
        build = {"context": build} if isinstance(build, str) else dict(build)
        build["args"] = {**build.get("args", {}), **arguments}
        if network == "host":
            # RUN steps reach PyPI through the host's network: there is no bridge for them.
            build["network"] = "host"
        services[name]["build"] = build
    if network != "host":
        return variant
    plans = host_ports or {}
    missing = sorted(set(services) - set(plans))
    if missing:
        raise HarnessError(f"no host ports planned for {missing}")
    for name, service in services.items():
        service.pop("ports", None)
        service.pop("networks", None)
        service["network_mode"] = "host"
        if name not in HOST_LISTENING:
            raise HarnessError(f"no way known to make {name!r} listen on the host's loopback")
        service["environment"] = {**_environment(service), **HOST_LISTENING[name](plans[name])}
    for name, service in services.items():
        # Other services by name and port, and the service itself on localhost.
        replacements = {
            f"{other}:{container}": f"127.0.0.1:{host}"
            for other, plan in plans.items()
            for container, host in plan.published.items()
        }
        replacements.update(
            {
                f"localhost:{container}": f"localhost:{host}"
                for container, host in plans[name].published.items()
            }
        )
        service["environment"] = {
            key: _rewrite(value, replacements) for key, value in service["environment"].items()
        }
        if "healthcheck" in service and "test" in service["healthcheck"]:
            service["healthcheck"]["test"] = _rewrite(service["healthcheck"]["test"], replacements)
    return variant


def write_variant(source: Path, output: Path, **options: Any) -> Path:
    """compose_variant of the file `source`, written to `output` (run it with
    `--project-directory` set to `source`'s folder, so relative paths keep their meaning)."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        f"# Generated from {source} for this engine; do not edit.\n"
        + yaml.safe_dump(compose_variant(document, **options), sort_keys=False),
        encoding="utf-8",
    )
    return output


def compose_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """HARNESS_COMPOSE_COMMAND, else Debian's `docker-compose` (1.29), else `docker compose`."""
    source = os.environ if environ is None else environ
    chosen = source.get(COMPOSE_COMMAND_VARIABLE, "").strip()
    if chosen:
        return shlex.split(chosen)
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


class ComposeProject:
    """One compose project: `compose_file` run from `project_directory` as `name`."""

    def __init__(
        self,
        compose_file: Path,
        project_directory: Path,
        name: str,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.compose_file = compose_file
        self.project_directory = project_directory
        self.name = name
        self.environment = {**os.environ, **(environment or {})}

    @property
    def base_command(self) -> list[str]:
        return [
            *compose_command(),
            "--project-directory",
            str(self.project_directory),
            "--file",
            str(self.compose_file),
            "--project-name",
            self.name,
        ]

    def run(self, *args: str, timeout: float = 600) -> str:
        argv = [*self.base_command, *args]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.environment,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise HarnessError(f"{shlex.join(argv)} still ran after {timeout:.0f} s") from error
        output = result.stdout + result.stderr
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-60:])
            raise HarnessError(f"{shlex.join(argv)} failed ({result.returncode}):\n{tail}")
        return output

    def container_id(self, service: str) -> str:
        found = self.run("ps", "--quiet", service, timeout=60).split()
        if not found:
            raise HarnessError(f"compose project {self.name} has no container for {service}")
        return found[-1]

    def health(self, service: str) -> str:
        """`healthy`, `starting`, `unhealthy`, or the container's state when it has no check."""
        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State}}", self.container_id(service)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if inspected.returncode != 0:
            return "gone"
        state: dict[str, Any] = json.loads(inspected.stdout)
        if state.get("Health"):
            return str(state["Health"]["Status"])
        return str(state.get("Status", "unknown"))

    def wait_healthy(self, services: Sequence[str], timeout: float = 180) -> None:
        """Wait for every service's health check (1.29 has no `up --wait`)."""
        deadline = time.monotonic() + timeout
        for service in services:
            wait_until(
                self._healthy_check(service),
                timeout=max(deadline - time.monotonic(), 1.0),
                what=f"{service} of compose project {self.name} to be healthy",
                interval=0.5,
                details=self._logs_of(service),
            )

    def _healthy_check(self, service: str) -> Callable[[], bool]:
        def healthy() -> bool:
            status = self.health(service)
            if status in ("unhealthy", "exited", "dead", "gone"):
                raise HarnessError(f"{service} is {status}:\n{self.logs(service, lines=60)}")
            return status in ("healthy", "running")

        return healthy

    def _logs_of(self, service: str) -> Callable[[], str]:
        return lambda: self.logs(service, lines=60)

    def logs(self, service: str | None = None, lines: int = 200) -> str:
        args = ["logs", "--no-color", "--tail", str(lines)]
        try:
            return self.run(*args, *([service] if service else []), timeout=60)
        except HarnessError as error:
            return str(error)

    def up(self, *services: str, build: bool = False) -> None:
        self.run("up", "--detach", *(["--build"] if build else []), *services, timeout=1800)

    def stop(self, *services: str) -> None:
        self.run("stop", *services)

    def start(self, *services: str) -> None:
        self.run("start", *services)

    def down(self) -> None:
        self.run("down", "--volumes", "--remove-orphans")
