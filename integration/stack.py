"""Run the whole stack for a look around: RabbitMQ, an SNS emulator, and Orthanc with the three
plugins composed, loaded with the shared DICOM samples. Ctrl-C stops everything it started.

    python -m integration.stack [--http-port 8042] [--samples DIR] [--sns moto|localstack]

SIGINT, SIGTERM and SIGHUP all run the same clean-up, once: Orthanc, then the brokers. Its
messages go to stderr and are dropped when nobody reads them any more (`| tee` ends with Ctrl-C
too), so a closed pipe or terminal never cuts the clean-up short.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from integration.harness.interfaces import Orthanc, RabbitMQ, SnsEmulator
from integration.harness.processes import HarnessError, port_is_free, running_processes
from integration.harness.providers import select_provider
from integration.harness.rabbitmq import declare_exchange
from orthanc_fake.samples import find_samples_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLES = find_samples_dir(REPO_ROOT)
WORKDIR = REPO_ROOT / ".stack"
EXCHANGE = "dicom-events"
TOPIC = "dicom-events"
NOT_DICOM = {".dic", ".md", ".txt", ".json"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """A stop signal arrived while the stack was starting."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m integration.stack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--http-port", type=int, help="Orthanc's HTTP port (8042 if free)")
    parser.add_argument("--dicom-port", type=int, help="Orthanc's DICOM port (4242 if free)")
    parser.add_argument(
        "--samples", type=Path, default=DEFAULT_SAMPLES, help="DICOM files to upload"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=WORKDIR,
        help="files and logs (default: .stack/, emptied first; another directory must be empty)",
    )
    parser.add_argument(
        "--sns",
        choices=("moto", "localstack", "external"),
        help="SNS emulator (default: AWS_ENDPOINT_URL's, else LocalStack if set up, else moto)",
    )
    parser.add_argument(
        "--pid-file",
        type=Path,
        help="once up, write 'PID name' of each process started to this file (removed at the end)",
    )
    return parser


def show(message: str, stream: TextIO | None = None) -> None:
    """Write a line to stdout (or `stream`); dropped when the pipe or terminal has gone away."""
    target = sys.stdout if stream is None else stream
    try:
        target.write(message + "\n")
        target.flush()
    except (OSError, ValueError):
        _discard_output_of(target)


def _discard_output_of(stream: TextIO) -> None:
    # What is still buffered would fail again at exit (and print a traceback): send it nowhere.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def preferred_port(requested: int | None, default: int) -> int | None:
    """The requested port, else `default` when free, else None (the harness picks one)."""
    if requested is not None:
        return requested
    return default if port_is_free(default) else None


def orthanc_config(
    rabbitmq: RabbitMQ, http_port: int | None, dicom_port: int | None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Name": "orthanc-python-plugins",
        "DicomEvents": {
            "Broker": {
                "Type": "rabbitmq",
                "RabbitConfig": {"URL": rabbitmq.url_for_orthanc, "Exchange": EXCHANGE},
            },
            "Events": {
                name: True
                for name in (
                    "StoredInstance",
                    "StableSeries",
                    "StableStudy",
                    "StablePatient",
                    "DeletedInstance",
                    "DeletedSeries",
                    "DeletedStudy",
                    "DeletedPatient",
                )
            },
        },
        # From PrivateMDNTags.dic of the samples: a private tag PrivateMDNTags.dcm carries.
        "Dictionary": {
            "7053,1003": ["ST", "OriginalImageFileName", 1, 1, "Philips PET Private Group"]
        },
        "SeriesMainPrivateDicomTags": ["OriginalImageFileName"],
        "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
        "UserContentType": {"SeriesThumbnail": 2001},
    }
    if http_port is not None:
        config["HttpPort"] = http_port
    if dicom_port is not None:
        config["DicomPort"] = dicom_port
    return config


def upload_samples(
    orthanc: Orthanc, samples: Path, stop_requested: threading.Event
) -> tuple[int, list[str]]:
    """Upload every DICOM-looking file under `samples`; returns (stored, refused names)."""
    stored, refused = 0, []
    for path in sorted(p for p in samples.rglob("*") if p.is_file()):
        if stop_requested.is_set():
            raise StopRequested
        if path.suffix.lower() in NOT_DICOM:
            continue
        response = orthanc.client.post(
            "/instances", data=path.read_bytes(), headers={"Content-Type": "application/dicom"}
        )
        if response.ok:
            stored += 1
        else:
            refused.append(f"{path.relative_to(samples)} (HTTP {response.status_code})")
    return stored, refused


class Stack:
    """What the command started, so that it stops exactly that, in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Callable[[], object]]] = []

    def add(self, name: str, stop: Callable[[], object]) -> None:
        self.started.append((name, stop))

    def stop(self) -> None:
        """Stop everything, last started first; reports go to stderr and may be lost."""
        while self.started:
            name, stop = self.started.pop()
            began = time.monotonic()
            try:
                stop()
            except Exception as error:
                show(f"  {name}: could not stop cleanly: {error}", sys.stderr)
            else:
                show(f"  {name} stopped ({time.monotonic() - began:.1f} s)", sys.stderr)


def write_pid_file(path: Path) -> None:
    """'PID name' per line for each process this stack started, written whole or not at all."""
    lines = [f"{process.pid} {process.name}\n" for process in running_processes()]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(lines))
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only a flag: the clean-up runs once, in the main flow, whichever signal came first.
        stop_requested.set()

    def stop_if_requested() -> None:
        if stop_requested.is_set():
            raise StopRequested

    for stop_signal in STOP_SIGNALS:
        # A signal ignored from the start (`nohup`, a background job) stays ignored.
        if signal.getsignal(stop_signal) != signal.SIG_IGN:
            signal.signal(stop_signal, request_stop)

    provider = select_provider()
    sns_kind = args.sns or provider.sns_kinds()[0]
    workdir: Path = args.workdir.resolve()
    if workdir == WORKDIR:
        shutil.rmtree(workdir, ignore_errors=True)
    elif workdir.exists() and any(workdir.iterdir()):
        show(f"--workdir {workdir} is not empty", sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    stack = Stack()
    try:
        rabbitmq = provider.rabbitmq(workdir / "rabbitmq")
        sns = provider.sns(sns_kind, workdir / "sns")
        # The two brokers take several seconds each: start them side by side.
        brokers: list[tuple[str, RabbitMQ | SnsEmulator]] = [
            ("RabbitMQ", rabbitmq),
            (sns_kind, sns),
        ]
        # A stop signal lets a start under way finish (bounded by its timeout), then stops all.
        with ThreadPoolExecutor(2) as pool:
            starting = [(name, broker, pool.submit(broker.start)) for name, broker in brokers]
            failures = []
            for name, broker, future in starting:
                try:
                    future.result()
                except Exception as error:
                    failures.append(f"{name}: {error}")
                    broker.close()
                else:
                    stack.add(name, broker.close)
            if failures:
                raise HarnessError("\n".join(failures))
        stop_if_requested()
        declare_exchange(rabbitmq.url, EXCHANGE)
        topic_arn = sns.create_topic(TOPIC)

        orthanc = provider.orthanc(
            workdir / "orthanc",
            plugins=["dicom-events", "series-private-tags", "series-thumbnail"],
            config=orthanc_config(
                rabbitmq,
                preferred_port(args.http_port, 8042),
                preferred_port(args.dicom_port, 4242),
            ),
            env=sns.env,
            name="stack",
        )
        stop_if_requested()
        orthanc.start()
        stack.add("Orthanc", orthanc.stop)
        if args.samples is None:
            stored, refused = 0, ["no samples found: pass --samples DIR"]
        else:
            stored, refused = upload_samples(orthanc, args.samples.resolve(), stop_requested)
        elapsed = time.monotonic() - began
        if args.pid_file is not None:
            write_pid_file(args.pid_file)

        python = Path(sys.executable)
        show(
            f"""
Stack ready in {elapsed:.1f} s (files and logs in {workdir}).

  Orthanc        {orthanc.url}   (DICOM AET {orthanc.aet} on port {orthanc.dicom_port})
                 {stored} sample files uploaded from {args.samples}
  RabbitMQ       {rabbitmq.url}   exchange {EXCHANGE!r}
  watch events   {python} -m integration.watch_events --url '{rabbitmq.url}'
  SNS ({sns.kind}){" " * max(1, 9 - len(sns.kind))}{sns.endpoint_url}   topic {topic_arn}

Ctrl-C stops everything."""
        )
        if refused:
            show("Refused by Orthanc: " + ", ".join(refused))
        while not stop_requested.wait(1):
            if not orthanc.is_running():
                show(f"Orthanc exited: see {workdir / 'orthanc'}", sys.stderr)
                return 1
        return 0
    except StopRequested:
        return 0
    except (HarnessError, TimeoutError) as error:
        show(f"The stack could not start: {error}", sys.stderr)
        return 1
    finally:
        if stack.started:
            show("\nStopping:", sys.stderr)
        stack.stop()
        if args.pid_file is not None:
            args.pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
