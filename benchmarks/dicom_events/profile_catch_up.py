"""Where a catch-up's time goes: py-spy samples the Orthanc process while its backlog drains.

    .venv/bin/python benchmarks/dicom_events/profile_catch_up.py [--broker rabbitmq|sns]
        [--changes 20000] [--output DIR]

The scenario is bench.py's catch-up (instances stored while the broker is away, then the
backlog published), with `py-spy record` attached to Orthanc during the drain (`pip install
py-spy`; it samples without stopping the process). The plugin runs inside Orthanc's embedded
Python, so the time Orthanc spends answering the plugin's REST calls shows under the Python line
that made the call. Prints the publisher thread's hottest lines and functions, and the CPU
seconds Orthanc and the whole machine used during the drain; the raw samples (collapsed stacks)
are kept in --output.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.bench import instances, rabbit_section, upload_rest
from integration.harness.providers import select_provider
from integration.harness.rabbitmq import consume, declare_queue


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent doing anything but idling, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_by_command() -> dict[tuple[int, str], float]:
    """CPU seconds of every process now, by (pid, command)."""
    found: dict[tuple[int, str], float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        found[(int(stat.parent.name), command)] = ticks / os.sysconf("SC_CLK_TCK")
    return found


def start_py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    argv = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    argv += ["--threads", "--idle", "--nonblocking", "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Innermost frames of a thread that waits rather than works (py-spy records them with --idle).
IDLE_FRAMES = ("Condition.wait", "readinto", "select", "poll (", "sleep", "_worker (concurrent")


def summarise(
    collapsed: Path, top: int = 25, marker: str = "orthanc_dicom_events", busy_only: bool = False
) -> None:
    """Samples of the threads running `marker`'s code, by innermost line and by function on the
    stack; `busy_only` leaves out samples that were waiting."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        count = int(count_text)
        if not any(marker in f for f in frames):
            continue
        if busy_only and any(idle in frames[-1] for idle in IDLE_FRAMES):
            continue
        total += count
        innermost = frames[-1]
        own[_short(innermost)] += count
        for frame in set(frames[1:]):
            inclusive[_short(frame)] += count
    print(f"samples of {marker} threads{' (busy only)' if busy_only else ''}: {total}")
    print("\n-- innermost frame (self time) --")
    for name, count in own.most_common(top):
        print(f"{100 * count / max(total, 1):5.1f}%  {name}")
    print("\n-- on the stack (inclusive) --")
    for name, count in inclusive.most_common(top * 2):
        print(f"{100 * count / max(total, 1):5.1f}%  {name}")


def _short(frame: str) -> str:
    return frame.replace("/work/main/", "").replace(str(Path(sys.prefix)), "venv")


def start_profile(orthanc: Any, output: Path) -> subprocess.Popen[bytes]:
    spy = start_py_spy(orthanc.pid, output)
    time.sleep(1.0)  # py-spy attaches
    return spy


def drain_measured(orthanc: Any, spy: subprocess.Popen[bytes], changes: int, output: Path) -> None:
    """Wait for the first publish, then measure CPU use by process until the backlog is 0."""
    while orthanc.client.get_json("/dicom-events/status")["Broker"]["Published"] == 0:
        time.sleep(0.01)
    started, busy, by_process = time.monotonic(), machine_busy_seconds(), cpu_by_command()
    while True:
        broker = orthanc.client.get_json("/dicom-events/status")["Broker"]
        if broker["Backlog"] == 0 and broker["State"] == "connected":
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    busy = machine_busy_seconds() - busy
    after = cpu_by_command()
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    print(f"drained {changes} in {seconds:.2f} s = {changes / seconds:.0f} events/s")
    print(f"machine busy {busy:.2f} CPU s of {seconds * (os.cpu_count() or 1):.2f}")
    used = {key: after[key] - by_process.get(key, 0.0) for key in after}
    for (pid, command), cpu in sorted(used.items(), key=lambda item: -item[1])[:8]:
        print(f"  {cpu:6.2f} s  {command} ({pid})")
    if output.exists():
        summarise(output)


def profile_rabbitmq(provider: Any, workdir: Path, changes: int, output: Path) -> None:
    broker = provider.rabbitmq(workdir / "rabbitmq")
    broker.start()
    try:
        orthanc = provider.orthanc(
            workdir / "orthanc",
            plugins=["dicom-events"],
            config={"DicomEvents": rabbit_section(broker, "prof", {"StoredInstance": True})},
        ).start()
        try:
            # As in bench.py: the queue is read after the drain, not during it.
            declare_queue(broker.url, "prof", "dicom.#", "prof")
            broker.stop()
            upload_rest(orthanc, instances(changes, per_series=500))
            spy = start_profile(orthanc, output)
            broker.start()
            drain_measured(orthanc, spy, changes, output)
            with consume(broker.url, "prof", "dicom.#", queue="prof") as collector:
                collector.wait_for(changes, timeout=300)
        finally:
            orthanc.stop()
    finally:
        broker.close()


def profile_sns(provider: Any, workdir: Path, changes: int, output: Path) -> None:
    kinds = provider.sns_kinds()
    kind = "localstack" if "localstack" in kinds else kinds[0]
    sns = provider.sns(kind, workdir / f"sns-{kind}")
    sns.start()
    try:
        name = f"prof-{uuid.uuid4().hex[:6]}"
        arn = f"arn:aws:sns:{sns.region}:000000000000:{name}"
        section = {
            "Events": {"StoredInstance": True},
            "Broker": {
                "Type": "sqs-sns",
                "SNSConfig": {
                    "TopicArn": arn,
                    "Region": sns.region,
                    "EndpointUrl": sns.endpoint_url_for_orthanc,
                },
            },
        }
        orthanc = provider.orthanc(
            workdir / "orthanc",
            plugins=["dicom-events"],
            config={"DicomEvents": section},
            env=sns.env,
        ).start()
        try:
            upload_rest(orthanc, instances(changes, per_series=500))
            spy = start_profile(orthanc, output)
            sns.create_topic(name)
            drain_measured(orthanc, spy, changes, output)
        finally:
            orthanc.stop()
    finally:
        sns.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["rabbitmq", "sns"], default="rabbitmq")
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--output", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    output = args.output / f"catch-up-{args.broker}-{time.strftime('%H%M%S')}.txt"
    provider = select_provider()
    with tempfile.TemporaryDirectory(prefix="dicom-events-profile-") as temp:
        run = profile_rabbitmq if args.broker == "rabbitmq" else profile_sns
        run(provider, Path(temp), args.changes, output)
    print(f"samples: {output}")


if __name__ == "__main__":
    main()
