"""Servers as containers (testcontainers): an orthancteam/orthanc image with this repository's
wheels installed, RabbitMQ and LocalStack, on one Docker network of their own.

Everything the container path decides (images, environment, Orthanc's configuration, the entry
script) is a plain function of this module, so it is unit-tested without a Docker engine. Only
the classes below talk to Docker, and testcontainers is imported when they first do (so the local
path does not need it installed).

Orthanc in the image runs Python plugin 7.x, which reads `"Python": {"Path", "AllowThreads"}`;
the local harness runs Debian's plugin 4.0, which reads only `"PythonScript"`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from .interfaces import Orthanc, RabbitMQ, SnsEmulator
from .orthanc import (
    ORTHANC_AET,
    PLUGINS,
    Entry,
    OrthancClient,
    OrthancOperations,
    check_selection,
    composer_command,
    deep_merge,
)
from .processes import HarnessError, free_port, tail, wait_until
from .rabbitmq import _CONNECTION_ERRORS, amqp_ready
from .sns import DEFAULT_REGION, SnsEmulatorBase, create_emulator

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

REPO_ROOT = Path(__file__).resolve().parents[2]

# Pinned so that a run today and a run in a year test the same servers. Plugin 7.x and Python
# 3.14 in the Orthanc image; LocalStack's last 4.x images start without an auth token.
ORTHANC_IMAGE = "orthancteam/orthanc:26.9.1"
RABBITMQ_IMAGE = "rabbitmq:4.1.4-management-alpine"
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"

IMAGE_VARIABLES = {
    "orthanc": ("HARNESS_ORTHANC_IMAGE", ORTHANC_IMAGE),
    "rabbitmq": ("HARNESS_RABBITMQ_IMAGE", RABBITMQ_IMAGE),
    "localstack": ("HARNESS_LOCALSTACK_IMAGE", LOCALSTACK_IMAGE),
}

ORTHANC_HTTP_PORT = 8042
ORTHANC_DICOM_PORT = 4242
RABBITMQ_PORT = 5672
LOCALSTACK_PORT = 4566
RABBITMQ_ALIAS = "rabbitmq"
LOCALSTACK_ALIAS = "localstack"
# RabbitMQ refuses `guest` from anything but its own loopback, and the harness connects through
# a published port and from the Orthanc container.
RABBITMQ_USER = "harness"
RABBITMQ_PASSWORD = "harness"  # a throw-away broker on a private network and a loopback port
HARNESS_IMAGE_REPOSITORY = "orthanc-python-plugins-harness"
# Distributions baked into the harness's Orthanc image, built from this checkout.
WHEEL_SOURCES = (
    "packages/dicom-events",
    "packages/series-private-tags",
    "packages/series-thumbnail",
    "tools/composer",
)


# -- decisions (pure functions, unit-tested) ----------------------------------------------------


def image_for(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The image of `service` (orthanc, rabbitmq, localstack); HARNESS_<SERVICE>_IMAGE overrides."""
    variable, default = IMAGE_VARIABLES[service]
    value = (os.environ if environ is None else environ).get(variable, "").strip()
    return value or default


def python_entry_settings(entry_path: str, *, plugin_major: int) -> dict[str, Any]:
    """How Orthanc's configuration names the Python script for a given Python plugin version.

    Plugin 4.0 reads only `PythonScript` (and silently ignores a `Python` section); 4.1+ reads
    `Python.Path`, and 4.3+ `Python.AllowThreads`, which lets the plugins' worker threads run
    while Orthanc's own threads call into Python.
    """
    if plugin_major < 4:
        raise HarnessError(f"Python plugin {plugin_major}.x is older than the plugins support")
    if plugin_major == 4:
        return {"PythonScript": entry_path}
    return {"Python": {"Path": entry_path, "AllowThreads": True, "Verbose": False}}


def container_orthanc_config(
    overrides: Mapping[str, Any], *, workdir: Path, entry_path: str | None, name: str
) -> dict[str, Any]:
    """Orthanc's configuration inside the orthancteam image (Python plugin 7.x).

    Orthanc listens on its usual ports inside the container; `HttpPort` / `DicomPort` given by a
    test are host ports and stay out of the file. Storage is under `workdir`, which is mounted
    at the same path so that a stopped container restarts with its data.
    """
    storage = str(workdir / "storage")
    defaults: dict[str, Any] = {
        "Name": name,
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "HttpPort": ORTHANC_HTTP_PORT,
        "DicomPort": ORTHANC_DICOM_PORT,
        "DicomAet": ORTHANC_AET,
        # Requests arrive through Docker's port mapping, i.e. from another address.
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "StableAge": 2,
        "SaveJobs": False,
        "SyncStorageArea": False,
    }
    user = {key: value for key, value in overrides.items() if key not in ("HttpPort", "DicomPort")}
    config = deep_merge(defaults, user)
    if entry_path is not None and "PythonScript" not in user:
        config = deep_merge(config, python_entry_settings(entry_path, plugin_major=7))
    return config


def orthanc_container_env(
    config: Mapping[str, Any], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the Orthanc container: the whole configuration in ORTHANC_JSON (the
    image merges it over its defaults) and the Python plugin switched on."""
    env = {
        "ORTHANC_JSON": json.dumps(config, sort_keys=True),
        "PYTHON_PLUGIN_ENABLED": "true",
        "VERBOSE_STARTUP": "false",
    }
    env.update(extra or {})
    return env


def rabbitmq_container_env() -> dict[str, str]:
    return {"RABBITMQ_DEFAULT_USER": RABBITMQ_USER, "RABBITMQ_DEFAULT_PASS": RABBITMQ_PASSWORD}


def localstack_container_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """SNS and SQS only, loaded at start; LOCALSTACK_AUTH_TOKEN is passed on when set (newer
    images refuse to start without it; the pinned 4.x image does not need it)."""
    source = os.environ if environ is None else environ
    env = {
        "SERVICES": "sns,sqs",
        "EAGER_SERVICE_LOADING": "1",
        "SQS_ENDPOINT_STRATEGY": "path",
        "LOCALSTACK_HOST": f"{LOCALSTACK_ALIAS}:{LOCALSTACK_PORT}",
        "PERSISTENCE": "0",
    }
    token = source.get("LOCALSTACK_AUTH_TOKEN", "").strip()
    if token:
        env["LOCALSTACK_AUTH_TOKEN"] = token
    return env


def harness_dockerfile(base_image: str) -> str:
    """The harness's Orthanc image: the pinned orthancteam image plus the wheels in `wheels/`."""
    return (
        f"FROM {base_image}\n"
        "COPY wheels/ /tmp/harness-wheels/\n"
        # The image's Python is the system one (PEP 668), which the Python plugin embeds.
        "RUN python3 -m pip install --no-cache-dir --break-system-packages "
        "/tmp/harness-wheels/*.whl \\\n"
        " && rm -rf /tmp/harness-wheels\n"
    )


def harness_image_tag(dockerfile: str, wheels: Iterable[Path]) -> str:
    """A tag naming the image's content, so an unchanged checkout reuses the built image."""
    digest = hashlib.sha256(dockerfile.encode())
    for wheel in sorted(wheels, key=lambda path: path.name):
        digest.update(wheel.name.encode())
        digest.update(wheel.read_bytes())
    return f"{HARNESS_IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def standalone_shim(plugin: str) -> str:
    """A script that runs a plugin's own `orthanc_entry.py` from the image's site-packages.

    Its location inside the image is only known there; run_path executes the file itself, with
    its own `__file__`, exactly as if `Python.Path` named it.
    """
    package = PLUGINS[plugin].package
    return (
        f'"""Runs {package}/orthanc_entry.py as installed in this image."""\n'
        "import os\n"
        "import runpy\n\n"
        f"import {package}\n\n"
        f"runpy.run_path(os.path.join(os.path.dirname({package}.__file__), "
        '"orthanc_entry.py"), run_name="orthanc_entry")\n'
    )


def docker_engine_answers(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers a ping (DOCKER_HOST or the default socket)."""
    try:
        # Imported here: only the container path needs the Docker SDK.
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach an engine means "no engine"
        return False


# -- Docker plumbing ----------------------------------------------------------------------------


def _bind_loopback(container: DockerContainer, container_port: int, host_port: int) -> None:
    # docker-py accepts (address, port); testcontainers' helper would bind every interface.
    ports: dict[str, Any] = container.ports
    ports[f"{container_port}/tcp"] = ("127.0.0.1", host_port)


def _container_logs(container: DockerContainer | None) -> str:
    if container is None or container._container is None:
        return ""
    with contextlib.suppress(Exception):
        logs: bytes = container.get_wrapped_container().logs(stdout=True, stderr=True)
        return logs.decode("utf-8", errors="replace")
    return ""


def _is_running(container: DockerContainer | None) -> bool:
    if container is None or container._container is None:
        return False
    wrapped = container.get_wrapped_container()
    with contextlib.suppress(Exception):
        wrapped.reload()
        return bool(wrapped.status == "running")
    return False


class _ContainerService:
    """One container that stop() pauses (an outage) and start() resumes on the same host port."""

    def __init__(self, provider: ContainerProvider) -> None:
        self._provider = provider
        self._container: DockerContainer | None = None

    def _create(self) -> DockerContainer:
        raise NotImplementedError

    def _start_container(self) -> None:
        if self._container is None:
            self._container = self._create()
            self._container.start()
            self._provider.track(self._container)
        else:
            self._container.get_wrapped_container().start()

    def is_running(self) -> bool:
        return _is_running(self._container)

    def stop(self) -> None:
        if self._container is not None and self.is_running():
            self._container.get_wrapped_container().stop(timeout=15)

    def close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
            self._container = None

    def log_tail(self, lines: int = 200) -> str:
        return tail(_container_logs(self._container), lines)


class RabbitMQContainer(_ContainerService):
    can_interrupt = True

    def __init__(self, provider: ContainerProvider) -> None:
        super().__init__(provider)
        self.port = free_port()
        credentials = f"{RABBITMQ_USER}:{RABBITMQ_PASSWORD}"
        self.url = f"amqp://{credentials}@127.0.0.1:{self.port}/%2F"
        self._url_for_orthanc = f"amqp://{credentials}@{RABBITMQ_ALIAS}:{RABBITMQ_PORT}/%2F"

    @property
    def url_for_orthanc(self) -> str:
        return self._url_for_orthanc

    def _create(self) -> DockerContainer:
        container = self._provider.new_container(image_for("rabbitmq"), RABBITMQ_ALIAS)
        container.with_envs(**rabbitmq_container_env())
        _bind_loopback(container, RABBITMQ_PORT, self.port)
        return container

    def start(self) -> None:
        self._start_container()
        wait_until(
            lambda: amqp_ready(self.url),
            timeout=90,
            what=f"RabbitMQ container on port {self.port}",
            retry_on=_CONNECTION_ERRORS,
            interval=0.5,
            details=lambda: self.log_tail(60),
        )


class LocalStackContainer(SnsEmulatorBase):
    """LocalStack (SNS and SQS) as a container; the test process reaches it on a loopback port,
    Orthanc by its network alias."""

    kind = "localstack"
    can_interrupt = True

    def __init__(self, provider: ContainerProvider) -> None:
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", DEFAULT_REGION)
        self._service = _LocalStackService(provider, self.port)

    @property
    def endpoint_url_for_orthanc(self) -> str:
        return f"http://{LOCALSTACK_ALIAS}:{LOCALSTACK_PORT}"

    @property
    def env(self) -> dict[str, str]:
        """For Orthanc, which runs on the containers' network."""
        return {**super().env, "AWS_ENDPOINT_URL": self.endpoint_url_for_orthanc}

    def start(self) -> None:
        self._service.start_container()

        def healthy() -> bool:
            answer = requests.get(self.endpoint_url + "/_localstack/health", timeout=2)
            services = answer.json().get("services", {}) if answer.ok else {}
            return all(services.get(name) in ("available", "running") for name in ("sns", "sqs"))

        wait_until(
            healthy,
            timeout=120,
            what=f"LocalStack container on port {self.port}",
            retry_on=(requests.RequestException, ValueError),
            interval=0.5,
            details=lambda: self.log_tail(60),
        )

    def is_running(self) -> bool:
        return self._service.is_running()

    def stop(self) -> None:
        self._service.stop()

    def close(self) -> None:
        self._service.close()

    def log_tail(self, lines: int = 200) -> str:
        return self._service.log_tail(lines)


class _LocalStackService(_ContainerService):
    def __init__(self, provider: ContainerProvider, port: int) -> None:
        super().__init__(provider)
        self.port = port

    def _create(self) -> DockerContainer:
        container = self._provider.new_container(image_for("localstack"), LOCALSTACK_ALIAS)
        container.with_envs(**localstack_container_env())
        _bind_loopback(container, LOCALSTACK_PORT, self.port)
        return container

    def start_container(self) -> None:
        self._start_container()


class OrthancContainer(OrthancOperations):
    """An Orthanc of the harness's image, configured like `orthanc.OrthancServer` (same
    arguments), reachable on loopback ports, its workdir mounted at the same path."""

    def __init__(
        self,
        provider: ContainerProvider,
        workdir: Path,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        name: str = "harness",
        startup_timeout: float = 90.0,
    ) -> None:
        check_selection(plugins, entry, script)
        self._provider = provider
        self.workdir = workdir.resolve()
        self.plugins = list(plugins)
        self.entry = entry
        self.script = script.resolve() if script is not None else None
        self.name = name
        self.startup_timeout = startup_timeout
        self.ready_routes = [PLUGINS[p].status_route for p in self.plugins] + list(ready_routes)
        self.ready_statuses = {200}
        overrides = dict(config or {})
        self.http_port = int(overrides.get("HttpPort") or free_port())
        self.dicom_port = int(overrides.get("DicomPort") or free_port())
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.client = OrthancClient(self.url)
        self._overrides = overrides
        self.config = container_orthanc_config(
            overrides, workdir=self.workdir, entry_path=None, name=name
        )
        self.aet: str = self.config["DicomAet"]
        self._extra_env = dict(env or {})
        self._container: DockerContainer | None = None

    # -- entry and container -------------------------------------------------------------------

    def _entry_script(self) -> Path | None:
        if self.script is not None:
            return self.script
        if not self.plugins:
            return None
        if self.entry == "standalone":
            shim = self.workdir / "standalone" / f"{PLUGINS[self.plugins[0]].package}_entry.py"
            shim.parent.mkdir(parents=True, exist_ok=True)
            shim.write_text(standalone_shim(self.plugins[0]))
            return shim
        output = self.workdir / "composed" / "__init__.py"
        output.parent.mkdir(parents=True, exist_ok=True)
        # No --site-packages: the plugins are installed in the image's own Python.
        argv = [*composer_command(), *self.plugins, "--output", str(output)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise HarnessError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
        return output

    def _create(self) -> DockerContainer:
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        script = self._entry_script()
        self.config = container_orthanc_config(
            self._overrides,
            workdir=self.workdir,
            entry_path=str(script) if script is not None else None,
            name=self.name,
        )
        container = self._provider.new_container(self._provider.orthanc_image(), None)
        container.with_envs(**orthanc_container_env(self.config, self._extra_env))
        container.with_volume_mapping(str(self.workdir), str(self.workdir), "rw")
        if script is not None and not script.is_relative_to(self.workdir):
            container.with_volume_mapping(str(script.parent), str(script.parent), "ro")
        _bind_loopback(container, ORTHANC_HTTP_PORT, self.http_port)
        _bind_loopback(container, ORTHANC_DICOM_PORT, self.dicom_port)
        return container

    def _run_container(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._container is None:
            self._container = self._create()
            self._container.start()
            self._provider.track(self._container)
        else:
            self._container.get_wrapped_container().start()

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> OrthancContainer:
        self._run_container()

        def answered(path: str) -> Callable[[], bool]:
            def check() -> bool:
                if not self.is_running():
                    raise HarnessError(
                        f"the Orthanc container exited before {path} answered:\n"
                        + self.log_tail(80)
                    )
                return self.client.get(path, timeout=2).status_code in self.ready_statuses

            return check

        try:
            for path in ["/system", *self.ready_routes]:
                wait_until(
                    answered(path),
                    timeout=self.startup_timeout,
                    what=f"GET {self.url}{path} to answer 200",
                    retry_on=(requests.RequestException,),
                    interval=0.2,
                    details=lambda: "Orthanc log (tail):\n" + self.log_tail(80),
                )
        except BaseException:
            self.stop()
            raise
        return self

    def start_expecting_failure(self, timeout: float = 60.0) -> tuple[int, str]:
        self._run_container()
        assert self._container is not None
        wrapped = self._container.get_wrapped_container()
        try:
            status = wrapped.wait(timeout=timeout)
        except Exception:
            self.stop()
            raise HarnessError(
                f"Orthanc was expected to exit but still ran after {timeout} s:\n"
                + self.log_tail(80)
            ) from None
        return int(status.get("StatusCode", -1)), self.log_text()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self._container is None:
            return None
        wrapped = self._container.get_wrapped_container()
        if self.is_running():
            wrapped.stop(timeout=int(timeout))
        with contextlib.suppress(Exception):
            return int(wrapped.wait(timeout=30).get("StatusCode", -1))
        return None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._container is None or not self.is_running():
            raise HarnessError("the Orthanc container is not running")
        wrapped = self._container.get_wrapped_container()
        wrapped.kill(signal=int(sig))
        if sig in (signal.SIGKILL, signal.SIGTERM):
            wrapped.wait(timeout=30)

    def restart(self) -> OrthancContainer:
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        return _is_running(self._container)

    def log_text(self) -> str:
        return _container_logs(self._container)


class ContainerProvider:
    """Creates the servers as containers on one private Docker network (made on first use).

    Containers and the network carry testcontainers' session labels, so its reaper removes them
    when the test process ends, whatever happens; close() does it earlier.
    """

    name = "docker"

    def __init__(self) -> None:
        self._network: Network | None = None
        self._orthanc_image: str | None = None
        self._containers: list[DockerContainer] = []
        self._lock = threading.Lock()
        atexit.register(self.close)

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
        return OrthancContainer(
            self,
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
        return RabbitMQContainer(self)

    def sns(self, kind: str, workdir: Path) -> SnsEmulator:
        if kind == "external":
            return create_emulator("external", workdir)
        if kind != "localstack":
            raise HarnessError(f"the docker provider runs LocalStack only, not {kind!r}")
        return LocalStackContainer(self)

    def sns_kinds(self) -> list[str]:
        return ["external"] if os.environ.get("AWS_ENDPOINT_URL") else ["localstack"]

    # -- shared by the servers -----------------------------------------------------------------

    def network(self) -> Network:
        with self._lock:
            if self._network is None:
                from testcontainers.core.network import Network

                self._network = Network().create()
            return self._network

    def new_container(self, image: str, alias: str | None) -> DockerContainer:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(image).with_network(self.network())
        if alias is not None:
            container.with_network_aliases(alias)
        return container

    def track(self, container: DockerContainer) -> None:
        with self._lock:
            self._containers.append(container)

    def orthanc_image(self) -> str:
        """The harness's Orthanc image, built once per run from this checkout's wheels."""
        with self._lock:
            if self._orthanc_image is None:
                self._orthanc_image = build_orthanc_image(image_for("orthanc"))
            return self._orthanc_image

    def close(self) -> None:
        with self._lock:
            containers, self._containers = self._containers, []
            network, self._network = self._network, None
        for container in containers:
            with contextlib.suppress(Exception):
                container.stop()
        if network is not None:
            with contextlib.suppress(Exception):
                network.remove()


def build_wheels(outdir: Path) -> list[Path]:
    """Wheels of this checkout's distributions (hatchling from the dev venv, no network)."""
    for source in WHEEL_SOURCES:
        argv = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir"]
        argv += [str(outdir), str(REPO_ROOT / source)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            raise HarnessError(f"building {source} failed:\n{result.stdout}{result.stderr}")
    return sorted(outdir.glob("*.whl"))


def build_orthanc_image(base_image: str) -> str:
    """Build (or reuse) the harness's Orthanc image and return its tag."""
    from testcontainers.core.image import DockerImage

    with tempfile.TemporaryDirectory(prefix="harness-image-") as context_dir:
        context = Path(context_dir)
        wheels = build_wheels(context / "wheels")
        dockerfile = harness_dockerfile(base_image)
        (context / "Dockerfile").write_text(dockerfile)
        tag = harness_image_tag(dockerfile, wheels)
        DockerImage(path=context, tag=tag, clean_up=False).build()
    return tag
