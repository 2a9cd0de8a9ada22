"""Servers as containers (testcontainers): Orthanc from the image examples/Dockerfile builds with
this checkout's wheels, on the pinned orthancteam/orthanc image or on a flavour's Debian image.

Two ways to network them, chosen by the engine (HARNESS_DOCKER_NETWORK overrides):
- `private`: an engine with its default bridge (a CI runner, Docker Desktop). Orthanc, RabbitMQ
  and LocalStack containers share a Docker network of their own, ports published on 127.0.0.1;
- `host`: an engine without one, such as the harness's own (`docker_engine`, `--bridge=none`, no
  firewall rules). Orthanc containers run on the host's network on free ports and refuse remote
  clients, like the local Orthanc; RabbitMQ and the SNS emulators are the local provider's
  processes (the same servers the local suites use, interruptible the same way).

When no engine answers, the provider starts the harness's own (root, Debian's docker.io) and stops
it when the test process ends. Testcontainers' reaper (Ryuk) needs an image from a registry: it is
off unless TESTCONTAINERS_RYUK_DISABLED=false, and the provider removes its containers itself,
by testcontainers' session label at exit and by its own PID label for a test process that died.

Everything the container path decides (images, environment, Orthanc's configuration) is a plain
function of this module, so it is unit-tested without a Docker engine. testcontainers is imported
when a container is first made (the local path does not need it).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import requests

from . import flavours
from .docker_engine import process_alive
from .interfaces import Orthanc, Provider, RabbitMQ, SnsEmulator
from .orthanc import (
    DCMTK_NO_DELAY,
    ORTHANC_AET,
    PLUGINS,
    Entry,
    OrthancClient,
    OrthancOperations,
    check_selection,
    deep_merge,
)
from .processes import HarnessError, free_port, tail, wait_until
from .rabbitmq import _CONNECTION_ERRORS, amqp_ready
from .sns import DEFAULT_REGION, SnsEmulatorBase, create_emulator

if TYPE_CHECKING:
    from docker import DockerClient
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    from .docker_engine import DockerEngine

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
# orthancteam or debian (examples/Dockerfile's ORTHANC_IMAGE_KIND) for HARNESS_ORTHANC_IMAGE.
ORTHANC_IMAGE_KIND_VARIABLE = "HARNESS_ORTHANC_IMAGE_KIND"
NETWORK_VARIABLE = "HARNESS_DOCKER_NETWORK"
NETWORK_MODES = ("private", "host")
# The Python plugin of the pinned orthancteam image (flavour images carry theirs in a label).
ORTHANC_IMAGE_PLUGIN_VERSION = (7, 1)
PLUGIN_VERSION_LABEL = "orthanc.python-plugin.version"
# The image's venv as examples/Dockerfile makes it, whatever the base.
IMAGE_SITE_PACKAGES = PurePosixPath("/opt/orthanc-plugins/site-packages")
IMAGE_COMPOSER = PurePosixPath("/opt/orthanc-plugins/bin/orthanc-plugins-compose")

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
# On every container the provider makes: which test process owns it (see remove_leftovers).
OWNER_LABEL = "org.orthanc-python-plugins.harness-pid"


# -- decisions (pure functions, unit-tested) ----------------------------------------------------


def wait_for_localstack(endpoint_url: str, what: str, log_tail: Callable[[int], str]) -> None:
    """Until LocalStack at `endpoint_url` reports SNS and SQS ready (a cold start takes ~30 s)."""

    def healthy() -> bool:
        answer = requests.get(endpoint_url + "/_localstack/health", timeout=2)
        services = answer.json().get("services", {}) if answer.ok else {}
        return all(services.get(name) in ("available", "running") for name in ("sns", "sqs"))

    wait_until(
        healthy,
        timeout=120,
        what=what,
        retry_on=(requests.RequestException, ValueError),
        interval=0.5,
        details=lambda: log_tail(60),
    )


def image_for(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The image of `service` (orthanc, rabbitmq, localstack); HARNESS_<SERVICE>_IMAGE overrides."""
    variable, default = IMAGE_VARIABLES[service]
    value = (os.environ if environ is None else environ).get(variable, "").strip()
    return value or default


def choose_orthanc_base(
    environ: Mapping[str, str], pinned_available: Callable[[], bool]
) -> tuple[str, str]:
    """The base of the Orthanc image: ("image", NAME) or ("flavour", FLAVOUR).

    HARNESS_ORTHANC_IMAGE when set; else the flavour HARNESS_FLAVOUR names when it is one built
    here (debian-13, debian-sid); else the pinned orthancteam image when the engine has it or can
    pull it (`pinned_available`); else debian-sid, built here.
    """
    chosen = environ.get(IMAGE_VARIABLES["orthanc"][0], "").strip()
    if chosen:
        return ("image", chosen)
    flavour = flavours.selected_flavour(environ)
    if flavours.runs_chrooted(flavour):
        return ("flavour", flavour)
    if pinned_available():
        return ("image", ORTHANC_IMAGE)
    return ("flavour", "debian-sid")


def image_kind(environ: Mapping[str, str]) -> str:
    """examples/Dockerfile's ORTHANC_IMAGE_KIND for HARNESS_ORTHANC_IMAGE (orthancteam unless
    HARNESS_ORTHANC_IMAGE_KIND says debian)."""
    kind = environ.get(ORTHANC_IMAGE_KIND_VARIABLE, "").strip().lower() or "orthancteam"
    if kind not in ("orthancteam", "debian"):
        raise HarnessError(
            f"{ORTHANC_IMAGE_KIND_VARIABLE}={kind!r}: expected orthancteam or debian"
        )
    return kind


def network_mode(environ: Mapping[str, str], engine_has_bridge: Callable[[], bool]) -> str:
    """`private` (a Docker network of the harness's own) or `host` (the host's network, for an
    engine without a default bridge); HARNESS_DOCKER_NETWORK overrides."""
    chosen = environ.get(NETWORK_VARIABLE, "").strip().lower()
    if chosen:
        if chosen not in NETWORK_MODES:
            raise HarnessError(f"{NETWORK_VARIABLE}={chosen!r}: expected private or host")
        return chosen
    return "private" if engine_has_bridge() else "host"


def python_entry_settings(entry_path: str, *, plugin_version: tuple[int, int]) -> dict[str, Any]:
    """How Orthanc's configuration names the Python script for a given Python plugin version:
    `PythonScript` on 4.0, `Python.Path` (with `AllowThreads`) from 4.1 (see flavours)."""
    if plugin_version < (4, 0):
        raise HarnessError(
            f"Python plugin {plugin_version[0]}.{plugin_version[1]} is older than the plugins "
            "support"
        )
    return flavours.PythonPluginApi(plugin_version).script_settings(entry_path)


def container_orthanc_config(
    overrides: Mapping[str, Any],
    *,
    workdir: Path,
    entry_path: str | None,
    name: str,
    network: str = "private",
    ports: tuple[int, int] = (ORTHANC_HTTP_PORT, ORTHANC_DICOM_PORT),
    plugin_version: tuple[int, int] = ORTHANC_IMAGE_PLUGIN_VERSION,
) -> dict[str, Any]:
    """Orthanc's configuration in a container of the harness's image.

    On a private network Orthanc listens on its usual ports inside the container and accepts the
    requests Docker's port mapping brings from another address; `HttpPort` / `DicomPort` given by
    a test are host ports and stay out of the file. On the host's network it listens on `ports`
    (the host ports) and, like the local Orthanc, refuses remote clients. Storage is under
    `workdir`, mounted at the same path so that a stopped container restarts with its data.
    """
    storage = str(workdir / "storage")
    http_port, dicom_port = ports if network == "host" else (ORTHANC_HTTP_PORT, ORTHANC_DICOM_PORT)
    defaults: dict[str, Any] = {
        "Name": name,
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": network != "host",
        "AuthenticationEnabled": False,
        "StableAge": 2,
        "SaveJobs": False,
        "SyncStorageArea": False,
    }
    user = {key: value for key, value in overrides.items() if key not in ("HttpPort", "DicomPort")}
    config = deep_merge(defaults, user)
    if entry_path is not None and "PythonScript" not in user:
        config = deep_merge(
            config, python_entry_settings(entry_path, plugin_version=plugin_version)
        )
    return config


def orthanc_container_env(
    config: Mapping[str, Any],
    extra: Mapping[str, str] | None = None,
    *,
    entry_path: str | None = None,
) -> dict[str, str]:
    """The environment of the Orthanc container: the whole configuration in ORTHANC_JSON (the
    image merges it over its defaults), and the Python plugin on with `entry_path` or off.

    The image's own ORTHANC__PYTHON__PATH (its entry for all the plugins) is replaced, not left
    to compete with ORTHANC_JSON: the orthancteam image applies both in the environment's order.
    """
    env = {
        "ORTHANC_JSON": json.dumps(config, sort_keys=True),
        "PYTHON_PLUGIN_ENABLED": "true" if entry_path is not None else "false",
        "VERBOSE_STARTUP": "false",
        **DCMTK_NO_DELAY,
    }
    if entry_path is not None:
        env["ORTHANC__PYTHON__PATH"] = entry_path
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


def shared_folder(workdir: Path) -> Path:
    """What an Orthanc container sees of the host, at the same path: the folder holding its
    workdir, i.e. the test's temp folder, where tests put the state or index folders they name in
    the configuration and where a second Orthanc finds the first one's storage."""
    parent = workdir.parent
    return parent if parent != Path(parent.anchor) else workdir


def standalone_entry_in_image(plugin: str) -> PurePosixPath:
    """A plugin's own `orthanc_entry.py` as installed in the image's venv."""
    return IMAGE_SITE_PACKAGES / PLUGINS[plugin].package / "orthanc_entry.py"


def plugin_version_of(labels: Mapping[str, str] | None) -> tuple[int, int]:
    """The Python plugin version an image's labels name (the pinned image's when none does)."""
    version = (labels or {}).get(PLUGIN_VERSION_LABEL, "")
    return flavours.major_minor(version) if version else ORTHANC_IMAGE_PLUGIN_VERSION


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
        wait_for_localstack(
            self.endpoint_url, f"LocalStack container on port {self.port}", self.log_tail
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

    def _entry_script(self) -> PurePosixPath | Path | None:
        if self.script is not None:
            return self.script
        if not self.plugins:
            return None
        if self.entry == "standalone":
            # Inside the image: the file itself, as Python.Path would name it in a deployment.
            return standalone_entry_in_image(self.plugins[0])
        output = self.workdir / "composed" / "__init__.py"
        self._provider.compose(self.plugins, output)
        return output

    def _create(self) -> DockerContainer:
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        network = self._provider.network_mode()
        image = self._provider.orthanc_image()
        script = self._entry_script()
        self.config = container_orthanc_config(
            self._overrides,
            workdir=self.workdir,
            entry_path=str(script) if script is not None else None,
            name=self.name,
            network=network,
            ports=(self.http_port, self.dicom_port),
            plugin_version=self._provider.orthanc_plugin_version(),
        )
        container = self._provider.new_container(image, None)
        entry_path = str(script) if script is not None else None
        container.with_envs(
            **orthanc_container_env(self.config, self._extra_env, entry_path=entry_path)
        )
        shared = shared_folder(self.workdir)
        container.with_volume_mapping(str(shared), str(shared), "rw")
        if isinstance(script, Path) and not script.is_relative_to(shared):
            container.with_volume_mapping(str(script.parent), str(script.parent), "ro")
        if network == "private":
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
    """Creates the servers as containers (see the module's docstring for the two networks).

    Every container carries testcontainers' session label and the provider's owner label;
    close() (also at exit) removes them, the private network, and the harness's own engine when
    this process started it.
    """

    name = "docker"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._network: Network | None = None
        self._network_mode: str | None = None
        self._engine_checked = False
        self._own_engine: DockerEngine | None = None
        self._orthanc_image: str | None = None
        self._plugin_version = ORTHANC_IMAGE_PLUGIN_VERSION
        self._composed: dict[tuple[str, ...], str] = {}
        self._containers: list[DockerContainer] = []
        self._local: Provider | None = None
        self._base_choice = ("image", ORTHANC_IMAGE)
        self._reaper: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)
        # The engine (started when none answers) and the Orthanc base are settled before the
        # suites are collected: which flavour answers is part of what they expect.
        self.ensure_engine()

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
        if self.network_mode() == "host":
            return self._local_provider().rabbitmq(workdir)
        return RabbitMQContainer(self)

    def sns(self, kind: str, workdir: Path) -> SnsEmulator:
        if self.network_mode() == "host":
            return self._local_provider().sns(kind, workdir)
        if kind == "external":
            return create_emulator("external", workdir)
        if kind != "localstack":
            raise HarnessError(f"the docker provider runs LocalStack only, not {kind!r}")
        return LocalStackContainer(self)

    def sns_kinds(self) -> list[str]:
        if self.network_mode() == "host":
            return self._local_provider().sns_kinds()
        return ["external"] if os.environ.get("AWS_ENDPOINT_URL") else ["localstack"]

    def _local_provider(self) -> Provider:
        # The brokers of the local suites: on the host's network a container adds nothing.
        if self._local is None:
            from .providers import LocalProcessProvider

            self._local = LocalProcessProvider()
        return self._local

    # -- the engine ------------------------------------------------------------------------------

    def ensure_engine(self) -> None:
        """Start the harness's own engine when none answers (once per process)."""
        with self._lock:
            if self._engine_checked:
                return
            self._engine_checked = True
            if not docker_engine_answers():
                from .docker_engine import DockerEngine

                engine = DockerEngine()
                os.environ["DOCKER_HOST"] = engine.start()
                if engine.started_here:
                    _log(f"no Docker engine answered: started dockerd in {engine.paths.root}")
                    self._own_engine = engine
            self._configure_testcontainers()
            remove_leftovers(self._client())
            self._start_reaper()
            self._choose_orthanc_base()

    def _start_reaper(self) -> None:
        # Removes this process's containers (and stops an engine it started) if it is killed;
        # a session of its own, and no inherited pipes: a test's output stays its own.
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "integration.harness.container_reaper", *self._reaper_args()],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    @staticmethod
    def _reaper_args() -> list[str]:
        return ["--owner", str(os.getpid())]

    def _configure_testcontainers(self) -> None:
        from testcontainers.core.config import testcontainers_config

        if os.environ.get("TESTCONTAINERS_RYUK_DISABLED", "").strip().lower() != "false":
            # Ryuk's image comes from a registry; close() and remove_leftovers() do its work.
            testcontainers_config.ryuk_disabled = True

    def _client(self) -> DockerClient:
        import docker

        return docker.from_env(timeout=120)

    def network_mode(self) -> str:
        with self._lock:
            if self._network_mode is None:
                self.ensure_engine()

                def engine_has_bridge() -> bool:
                    client = self._client()
                    try:
                        return bool(client.networks.list(names=["bridge"]))
                    finally:
                        client.close()

                self._network_mode = network_mode(os.environ, engine_has_bridge)
            return self._network_mode

    # -- shared by the servers -----------------------------------------------------------------

    def network(self) -> Network:
        with self._lock:
            if self._network is None:
                from testcontainers.core.network import Network

                self._network = Network().create()
            return self._network

    def new_container(self, image: str, alias: str | None) -> DockerContainer:
        from testcontainers.core.container import DockerContainer

        labels = {OWNER_LABEL: str(os.getpid())}
        if self.network_mode() == "host":
            return DockerContainer(image).with_kwargs(network_mode="host", labels=labels)
        container = DockerContainer(image).with_kwargs(labels=labels)
        container.with_network(self.network())
        if alias is not None:
            container.with_network_aliases(alias)
        return container

    def track(self, container: DockerContainer) -> None:
        with self._lock:
            self._containers.append(container)

    def orthanc_image(self) -> str:
        """The harness's Orthanc image: examples/Dockerfile with this checkout's wheels on the
        base `choose_orthanc_base` names, built once per checkout (see images)."""
        with self._lock:
            if self._orthanc_image is None:
                self.ensure_engine()
                self._orthanc_image = self._build_orthanc_image()
            return self._orthanc_image

    def _choose_orthanc_base(self) -> None:
        from . import images

        source, name = choose_orthanc_base(os.environ, lambda: images.can_pull(ORTHANC_IMAGE))
        self._base_choice = (source, name)
        if source == "flavour" and flavours.selected_flavour() != name:
            # The suites read the flavour to know which Orthanc answers: the one chosen here.
            _log(f"the pinned {ORTHANC_IMAGE} cannot be had: Orthanc is {name}'s, built here")
            os.environ[flavours.FLAVOUR_VARIABLE] = name

    def orthanc_base(self) -> tuple[str, str]:
        """The image examples/Dockerfile builds on and its kind (`choose_orthanc_base`), made
        from a flavour's root filesystem first when that is the choice."""
        from . import images

        self.ensure_engine()
        source, name = self._base_choice
        if source == "flavour":
            return images.flavour_image(name), "debian"
        return name, image_kind(os.environ)

    def _build_orthanc_image(self) -> str:
        from . import images

        base, kind = self.orthanc_base()
        tag = images.plugins_image(base, kind)
        labels = self._client().images.get(tag).labels or {}
        self._plugin_version = plugin_version_of(labels)
        described = ", ".join(
            f"{what} {labels[key]}"
            for what, key in (
                ("Orthanc", "orthanc.version"),
                ("Python plugin", PLUGIN_VERSION_LABEL),
                ("Python", "orthanc.python.version"),
            )
            if key in labels
        )
        _log(f"Orthanc image {tag} on {base}" + (f" ({described})" if described else ""))
        return tag

    def orthanc_plugin_version(self) -> tuple[int, int]:
        self.orthanc_image()
        return self._plugin_version

    def compose(self, plugins: Sequence[str], output: Path) -> None:
        """Write the composed entry for `plugins` to `output` with the image's own composer, as a
        user of the image would run it (one container per selection, then reused)."""
        key = tuple(plugins)
        with self._lock:
            text = self._composed.get(key)
        if text is None:
            image = self.orthanc_image()
            output.parent.mkdir(parents=True, exist_ok=True)
            client = self._client()
            try:
                client.containers.run(
                    image,
                    entrypoint=[str(IMAGE_COMPOSER)],
                    command=[
                        *plugins,
                        *("--site-packages", str(IMAGE_SITE_PACKAGES)),
                        *("--output", str(output)),
                    ],
                    volumes={str(output.parent): {"bind": str(output.parent), "mode": "rw"}},
                    network_mode="none",
                    labels={OWNER_LABEL: str(os.getpid())},
                    remove=True,
                )
            except Exception as error:
                raise HarnessError(
                    f"composing {list(plugins)} in {image} failed: {error}"
                ) from None
            finally:
                client.close()
            text = output.read_text(encoding="utf-8")
            with self._lock:
                self._composed[key] = text
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            containers, self._containers = self._containers, []
            network, self._network = self._network, None
            engine, self._own_engine = self._own_engine, None
            checked = self._engine_checked
        for container in containers:
            with contextlib.suppress(Exception):
                container.stop()
        if checked:
            with contextlib.suppress(Exception):
                remove_session_containers(self._client())
        if network is not None:
            with contextlib.suppress(Exception):
                network.remove()
        if self._reaper is not None:
            # Everything is removed already: the reaper would find nothing.
            self._reaper.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(5)
            self._reaper = None
        if engine is not None:
            report = engine.stop()
            _log("harness's Docker engine: " + report.describe().replace("\n", "\n  "))
            if not report.clean:
                # At exit nothing can fail the run any more: say it loudly.
                _log("WARNING: the Docker engine left something behind (see above)")


def remove_session_containers(client: DockerClient) -> None:
    """Remove the containers of this test process (testcontainers' session label)."""
    from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL_SESSION_ID}={SESSION_ID}"}
    ):
        with contextlib.suppress(Exception):
            container.remove(force=True)


def remove_leftovers(client: DockerClient) -> None:
    """Remove the containers of harness processes that are gone (killed before their exit)."""
    try:
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            owner = container.labels.get(OWNER_LABEL, "")
            if owner.isdigit() and int(owner) != os.getpid() and not process_alive(int(owner)):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
    finally:
        client.close()


def _log(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr, flush=True)
