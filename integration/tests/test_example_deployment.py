"""The deployable example (examples/: Dockerfile, docker-compose.yml, consumers) end to end, as an
operator runs it: build the Orthanc image, start the stack, send one DICOM file, read its event
with the example consumer, take the stack down.

It runs with the container providers only (integration/tests/conftest.py), on a copy of examples/
with this checkout's wheels in wheels/. The Orthanc base and the broker images are the ones the
provider uses (built here when they cannot be pulled), and the compose file is adapted to this
engine and compose by `compose_variant`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from integration.harness import flavours
from integration.harness.compose import ComposeProject, HostPorts, write_variant
from integration.harness.containers import ContainerProvider
from integration.harness.images import broker_images
from integration.harness.interfaces import Provider
from integration.harness.processes import HarnessError, free_port, free_port_pair, wait_until
from orthanc_dicom_events.events import load_schema

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SERVICES = ("rabbitmq", "localstack", "orthanc")
READY_TIMEOUT = 30.0
EVENT_TIMEOUT = 60.0
# What the example's compose file and init script name.
RABBITMQ_ACCOUNT = "orthanc:orthanc"
QUEUE_PATH = "queue/us-east-1/000000000000/dicom-events"
EXAMPLE_IMAGE = "orthanc-python-plugins/example-orthanc:local"
# What Orthanc (and the brokers) log when a published port is already bound on the host.
PORT_TAKEN = "already in use"
PORT_ATTEMPTS = 3


class Deployment:
    """A copy of examples/ and its compose project; `ports` are the host ports of its services."""

    def __init__(self, provider: ContainerProvider, workdir: Path, broker: str) -> None:
        self.directory = workdir / "examples"
        shutil.copytree(EXAMPLES, self.directory, ignore=shutil.ignore_patterns("__pycache__"))
        wheels = self.directory / "wheels"
        flavours.build_wheels(wheels, REPO)
        network = provider.network_mode()
        base, kind = provider.orthanc_base()
        build_args = {"ORTHANC_IMAGE": base, "ORTHANC_IMAGE_KIND": kind}
        bundle = flavours.host_ca_bundle()
        if bundle is not None:
            shutil.copyfile(bundle, wheels / "ca.pem")
            build_args["PIP_CERT"] = "/tmp/plugin-wheels/ca.pem"
        rabbitmq = free_port_pair()
        self.ports = {
            "orthanc": HostPorts({8042: free_port(), 4242: free_port()}),
            "rabbitmq": HostPorts(
                {5672: rabbitmq, 15672: free_port()}, {"dist": rabbitmq + 1, "epmd": free_port()}
            ),
            "localstack": HostPorts({4566: free_port()}),
        }
        # The variables the compose file publishes its ports with (a private network).
        environment = {
            "EVENTS_BROKER": broker,
            "ORTHANC_HTTP_PORT": str(self.port("orthanc", 8042)),
            "ORTHANC_DICOM_PORT": str(self.port("orthanc", 4242)),
            "RABBITMQ_PORT": str(self.port("rabbitmq", 5672)),
            "RABBITMQ_MANAGEMENT_PORT": str(self.port("rabbitmq", 15672)),
            "LOCALSTACK_PORT": str(self.port("localstack", 4566)),
        }
        compose_file = write_variant(
            self.directory / "docker-compose.yml",
            workdir / "docker-compose.yml",
            network=network,
            # One name for the image compose builds, whatever the project's name.
            images={**broker_images(), "orthanc": EXAMPLE_IMAGE},
            build_args={"orthanc": build_args},
            host_ports=self.ports,
        )
        self.project = ComposeProject(
            compose_file,
            self.directory,
            f"orthanc-plugins-example-{os.getpid()}",
            environment=environment,
        )

    def port(self, service: str, container_port: int) -> int:
        return self.ports[service].published[container_port]

    @property
    def orthanc_url(self) -> str:
        return f"http://127.0.0.1:{self.port('orthanc', 8042)}"


class Consumer:
    """An example consumer run as an operator runs it; it exits after its one event."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stderr: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            if line.startswith("listening on"):
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        if not self._ready.wait(READY_TIMEOUT) or self.process.poll() is not None:
            pytest.fail(f"the consumer did not start listening:\n{''.join(self.stderr)}")

    def events(self) -> list[dict[str, Any]]:
        try:
            stdout, _ = self.process.communicate(timeout=EVENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the consumer printed no event:\n{''.join(self.stderr)}")
        assert self.process.returncode == 0, "".join(self.stderr)
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def container_provider(provider: Provider) -> ContainerProvider:
    assert isinstance(provider, ContainerProvider), provider
    return provider


def _timed(what: str, action: Any) -> None:
    started = time.monotonic()
    action()
    print(f"example deployment: {what} in {time.monotonic() - started:.1f} s", file=sys.stderr)


@pytest.fixture(params=["rabbitmq", "sqs-sns"])
def deployment(
    request: pytest.FixtureRequest, container_provider: ContainerProvider, tmp_path: Path
) -> Iterator[Deployment]:
    for attempt in range(1, PORT_ATTEMPTS + 1):
        deployment = Deployment(container_provider, tmp_path / f"attempt-{attempt}", request.param)
        try:
            _start(deployment.project)
        except HarnessError as error:
            # The stack shares the host's network: a port found free can be taken by another
            # process before the service binds it. Only that failure is worth a second start.
            final = PORT_TAKEN not in str(error) or attempt == PORT_ATTEMPTS
            if final:
                print(deployment.project.logs(lines=80), file=sys.stderr)
            _down(deployment)
            if final:
                raise
            print(f"example deployment: a port was taken, new ports: {error}", file=sys.stderr)
            continue
        break
    try:
        yield deployment
    except BaseException:
        print(deployment.project.logs(lines=80), file=sys.stderr)
        raise
    finally:
        _down(deployment)


def _start(project: ComposeProject) -> None:
    _timed("docker-compose up --build", lambda: project.up(build=True))
    _timed("services healthy", lambda: project.wait_healthy(SERVICES, 240))


def _down(deployment: Deployment) -> None:
    _timed("docker-compose down --volumes", deployment.project.down)
    left = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"name={deployment.project.name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert not left, f"containers left after down: {left}"


def _send_one_file(deployment: Deployment, dicom: Path) -> str:
    answer = requests.post(
        f"{deployment.orthanc_url}/instances",
        data=dicom.read_bytes(),
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["ID"])


def _stored_instance(events: list[dict[str, Any]], instance_id: str) -> None:
    assert len(events) == 1, events
    event = events[0]
    jsonschema.validate(event, load_schema("dicom.instance.stored"))
    assert event["type"] == "dicom.instance.stored"
    assert event["subject"] == instance_id
    # The tags the compose file asks for (StoredInstancePublishTags).
    assert "SOPClassUID" in event["data"]["tags"]


def test_one_file_in_the_example_stack_reaches_the_example_consumer(
    deployment: Deployment, samples_dir: Path
) -> None:
    broker = deployment.project.environment["EVENTS_BROKER"]
    consumers = EXAMPLES / "consumers"
    if broker == "rabbitmq":
        url = f"amqp://{RABBITMQ_ACCOUNT}@127.0.0.1:{deployment.port('rabbitmq', 5672)}/%2F"
        consumer = Consumer(
            [
                *(str(consumers / "rabbitmq_consumer.py"), "--url", url),
                *("--binding", "dicom.instance.stored", "--max-messages", "1", "--json"),
            ]
        )
    else:
        endpoint = f"http://127.0.0.1:{deployment.port('localstack', 4566)}"
        consumer = Consumer(
            [
                *(str(consumers / "sqs_consumer.py"), "--queue-url", f"{endpoint}/{QUEUE_PATH}"),
                *("--endpoint-url", endpoint, "--max-messages", "1", "--json"),
            ],
            env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        )
    try:
        consumer.wait_ready()
        # The queue of the example's init script also gets series and study events later;
        # the stored-instance event comes first.
        instance_id = _send_one_file(deployment, samples_dir / "SignedCT.dcm")
        _stored_instance(consumer.events(), instance_id)
    finally:
        consumer.stop()
    # Orthanc in the stack is the one the image was built for, with the plugin version it has.
    system = wait_until(
        lambda: requests.get(f"{deployment.orthanc_url}/system", timeout=5).json(),
        timeout=10,
        what="Orthanc's /system",
        retry_on=(requests.RequestException,),
    )
    print(
        f"example deployment: Orthanc {system['Version']}, Python plugin "
        f"{requests.get(f'{deployment.orthanc_url}/plugins/python', timeout=5).json()['Version']}",
        file=sys.stderr,
    )
