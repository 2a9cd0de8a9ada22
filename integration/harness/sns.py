"""SNS + SQS emulators for the suites: an existing endpoint, LocalStack's runtime, or moto server.

Topic ARNs and queue URLs are opaque: always read them from the API. Emulator state is in memory,
so a stop()/start() outage loses topics and queues: create them again afterwards (same name, same
ARN).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from .processes import HarnessError, ManagedProcess, free_port, wait_until

ACCOUNT_ID = "000000000000"  # what LocalStack uses; moto is told to use it too
DEFAULT_REGION = "us-east-1"
KINDS = ("external", "localstack", "moto")


class OutageNotSupported(HarnessError):
    """The emulator is not the harness's own, so it cannot be stopped and restarted."""


@dataclass(frozen=True)
class SnsMessage:
    """One SNS notification as read from a subscribed SQS queue."""

    message: Any  # the published Message, parsed as JSON when it is JSON
    raw_body: str  # the SQS body: the Message itself (raw delivery) or SNS's JSON envelope
    attributes: dict[str, str]  # message attributes, name -> string value
    envelope: dict[str, Any] | None  # SNS's envelope when raw delivery is off
    sqs_attributes: dict[str, str] = field(default_factory=dict)  # MessageGroupId, ...


class SqsReader:
    """An SQS queue subscribed to a topic; `receive` deletes what it reads (emulators slow down
    as queues fill)."""

    def __init__(
        self, emulator: SnsEmulatorBase, topic_arn: str, *, raw: bool, filter_policy: Any
    ) -> None:
        self._sqs = emulator.client("sqs")
        self._sns = emulator.client("sns")
        self.raw = raw
        self.topic_arn = topic_arn
        fifo = topic_arn.endswith(".fifo")
        name = f"harness-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        attributes = {"FifoQueue": "true"} if fifo else {}
        self.queue_url: str = self._sqs.create_queue(QueueName=name, Attributes=attributes)[
            "QueueUrl"
        ]
        self.queue_arn: str = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self._allow_topic_to_send()
        subscription_attributes = {"RawMessageDelivery": "true" if raw else "false"}
        if filter_policy is not None:
            subscription_attributes["FilterPolicy"] = json.dumps(filter_policy)
        self.subscription_arn: str = self._sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=self.queue_arn,
            Attributes=subscription_attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    def _allow_topic_to_send(self) -> None:
        # Emulators do not enforce it; real SNS would drop deliveries without this policy.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": self.queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}},
                }
            ],
        }
        self._sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(policy)}
        )

    def receive(self, count: int, timeout: float = 10.0) -> list[SnsMessage]:
        """Read (and delete) messages until `count` have arrived; fail after `timeout` seconds."""
        received: list[SnsMessage] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                summary = [m.message for m in received]
                raise TimeoutError(
                    f"expected {count} SNS message(s) on {self.topic_arn} within {timeout} s, "
                    f"got {len(received)}: {summary!r}"
                )
            received.extend(self._receive_batch(wait_seconds=min(1, max(0, int(remaining)))))
        return received

    def receive_for(self, seconds: float) -> list[SnsMessage]:
        """Everything that arrives within `seconds` (to assert that nothing, or no more, came)."""
        received: list[SnsMessage] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            received.extend(self._receive_batch(wait_seconds=1))
        return received

    def _receive_batch(self, wait_seconds: int) -> list[SnsMessage]:
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if messages:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )
        return [self._parse(message) for message in messages]

    def _parse(self, sqs_message: dict[str, Any]) -> SnsMessage:
        body: str = sqs_message["Body"]
        sqs_attributes = {str(k): str(v) for k, v in sqs_message.get("Attributes", {}).items()}
        if self.raw:
            attributes = {
                name: str(value.get("StringValue", value.get("BinaryValue", "")))
                for name, value in sqs_message.get("MessageAttributes", {}).items()
            }
            return SnsMessage(_json_or_text(body), body, attributes, None, sqs_attributes)
        envelope: dict[str, Any] = json.loads(body)
        attributes = {
            name: str(value.get("Value", ""))
            for name, value in envelope.get("MessageAttributes", {}).items()
        }
        return SnsMessage(
            _json_or_text(envelope.get("Message", "")), body, attributes, envelope, sqs_attributes
        )

    def close(self) -> None:
        """Unsubscribe and delete the queue (ignored when the emulator is already gone)."""
        with contextlib.suppress(Exception):
            self._sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        with contextlib.suppress(Exception):
            self._sqs.delete_queue(QueueUrl=self.queue_url)

    def __enter__(self) -> SqsReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class SnsEmulatorBase:
    """What every SNS endpoint offers the suites; subclasses know how to start and stop it."""

    kind = "base"
    can_interrupt = True

    def __init__(self, endpoint_url: str, region: str = DEFAULT_REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key_id = "test"
        self.secret_access_key = "test"

    @property
    def endpoint_url_for_orthanc(self) -> str:
        return self.endpoint_url

    def is_running(self) -> bool:
        return True

    @property
    def env(self) -> dict[str, str]:
        """What a process (Orthanc, boto3) needs in its environment to reach the endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_topic(self, name: str, *, fifo: bool = False) -> str:
        """Create (or find) a topic and return its ARN; a FIFO topic's name gets `.fifo`."""
        attributes = {}
        if fifo:
            name = name if name.endswith(".fifo") else f"{name}.fifo"
            attributes = {"FifoTopic": "true"}
        arn: str = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return arn

    def subscribe_queue(
        self, topic_arn: str, *, raw: bool = True, filter_policy: Any = None
    ) -> SqsReader:
        """A fresh SQS queue subscribed to `topic_arn`; close() it when done."""
        return SqsReader(self, topic_arn, raw=raw, filter_policy=filter_policy)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def log_tail(self, lines: int = 200) -> str:
        return "(no log)"


class ExternalSns(SnsEmulatorBase):
    """An endpoint the harness did not start (AWS_ENDPOINT_URL): used as is, never stopped."""

    kind = "external"
    can_interrupt = False

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url, os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))
        self.access_key_id = os.environ.get("AWS_ACCESS_KEY_ID", "test")
        self.secret_access_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "test")

    def start(self) -> None:
        wait_until(
            lambda: self.client("sns").list_topics() is not None,
            timeout=15,
            what=f"the SNS endpoint at AWS_ENDPOINT_URL ({self.endpoint_url})",
            retry_on=(Exception,),
            interval=0.5,
        )

    def stop(self) -> None:
        raise OutageNotSupported(
            "the SNS endpoint comes from AWS_ENDPOINT_URL: outage tests need the harness's own "
            "emulator (unset AWS_ENDPOINT_URL)"
        )

    def close(self) -> None:
        """Nothing to stop: the endpoint belongs to someone else."""


class _ProcessEmulator(SnsEmulatorBase):
    """An emulator process of the harness's own, on a loopback port kept across restarts."""

    health_path = "/"
    startup_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self._process = ManagedProcess(
            self.kind,
            self._argv(),
            log_path=workdir / f"{self.kind}.log",
            env=self._environment(),
            cwd=workdir,
            # Its state is in memory, nothing to save; and LocalStack's shutdown can hang.
            parent_death_signal=signal.SIGKILL,
        )

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        raise NotImplementedError

    def _healthy(self, response: requests.Response) -> bool:
        return response.ok

    def _exit_hint(self) -> str:
        return ""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process.start()

        def ready() -> bool:
            if not self._process.is_running():
                raise HarnessError(
                    f"{self.kind} exited with status {self._process.returncode}:\n"
                    + self._process.log_tail(60)
                    + self._exit_hint()
                )
            return self._healthy(requests.get(self.endpoint_url + self.health_path, timeout=2))

        try:
            wait_until(
                ready,
                timeout=self.startup_timeout,
                what=f"{self.kind} on port {self.port}",
                retry_on=(requests.RequestException,),
                interval=0.2,
                details=lambda: self._process.log_tail(60),
            )
        except BaseException:
            self._process.stop()
            raise

    def is_running(self) -> bool:
        return self._process.is_running()

    def stop(self) -> None:
        """Stop the emulator (an outage); `start()` brings it back, empty, on the same port."""
        self._process.stop()

    def close(self) -> None:
        self._process.stop()

    def log_tail(self, lines: int = 200) -> str:
        return self._process.log_tail(lines)


class MotoServer(_ProcessEmulator):
    """`moto_server` from the development environment."""

    kind = "moto"
    health_path = "/moto-api/"

    def _argv(self) -> list[str]:
        return [moto_server_command(), "-H", "127.0.0.1", "-p", str(self.port)]

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "MOTO_ACCOUNT_ID": ACCOUNT_ID}


class LocalStackRuntime(_ProcessEmulator):
    """LocalStack's runtime (SNS and SQS only) run by `python` from a venv where it is installed.

    It needs no container and no auth token; every file it writes stays in `workdir`.
    """

    kind = "localstack"
    health_path = "/_localstack/health"

    def __init__(self, workdir: Path, python: str) -> None:
        self.python = python
        super().__init__(workdir)

    def _argv(self) -> list[str]:
        return [self.python, "-m", "localstack.runtime.main"]

    def _environment(self) -> dict[str, str]:
        root = self.workdir / "localstack"
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{self.port}"
        settings = {
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(root / "filesystem"),
            "HOME": str(root),
            "TMPDIR": str(root / "tmp"),
            "GATEWAY_LISTEN": address,
            "LOCALSTACK_HOST": address,
            "SERVICES": "sns,sqs",
            "EAGER_SERVICE_LOADING": "1",
            "GATEWAY_SERVER": "hypercorn",  # the default server binds 0.0.0.0
            "SQS_ENDPOINT_STRATEGY": "path",
            "PERSISTENCE": "0",
            "DISABLE_EVENTS": "1",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
        }
        # The harness's own interpreter settings must not leak into another Python.
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "VIRTUAL_ENV", "AWS_"))
        }
        return {**inherited, **settings}

    def _exit_hint(self) -> str:
        if "No component plugins found" not in self._process.log_text():
            return ""
        # plux hides the ImportError behind this message; the usual cause is the Python version.
        return (
            f"\nHint: LocalStack's components did not import; see `{self.python} -c 'import "
            "localstack.aws.components'`. localstack-core 2026.3 needs Python >= 3.13."
        )

    def _healthy(self, response: requests.Response) -> bool:
        if not response.ok:
            return False
        services = response.json().get("services", {})
        return all(services.get(name) in ("available", "running") for name in ("sns", "sqs"))


def moto_server_command() -> str:
    """`moto_server` next to the running interpreter (the dev venv), else on PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise HarnessError("moto_server not found: install moto[server] in the dev venv")
    return found


def available_kinds() -> list[str]:
    """The SNS endpoints the suites should run against here, in order of preference.

    SNS_EMULATOR (moto, localstack or external) forces one; AWS_ENDPOINT_URL means that endpoint
    only; otherwise moto always, and LocalStack too when LOCALSTACK_PYTHON names its Python.
    """
    forced = os.environ.get("SNS_EMULATOR", "").strip().lower()
    if forced:
        if forced not in KINDS:
            raise HarnessError(f"SNS_EMULATOR={forced!r}: expected one of {', '.join(KINDS)}")
        return [forced]
    if os.environ.get("AWS_ENDPOINT_URL"):
        return ["external"]
    kinds = ["moto"]
    if os.environ.get("LOCALSTACK_PYTHON"):
        kinds.insert(0, "localstack")
    return kinds


def create_emulator(kind: str, workdir: Path) -> SnsEmulatorBase:
    """An emulator of `kind`, not yet started."""
    if kind == "external":
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise HarnessError("SNS emulator 'external' needs AWS_ENDPOINT_URL")
        return ExternalSns(endpoint)
    if kind == "localstack":
        python = os.environ.get("LOCALSTACK_PYTHON")
        if not python:
            raise HarnessError(
                "SNS emulator 'localstack' needs LOCALSTACK_PYTHON: the Python of a venv with "
                "localstack-core[base-runtime] (./dev bootstrap makes .venv-localstack)"
            )
        return LocalStackRuntime(workdir, python)
    if kind == "moto":
        return MotoServer(workdir)
    raise HarnessError(f"unknown SNS emulator {kind!r}: expected one of {', '.join(KINDS)}")
