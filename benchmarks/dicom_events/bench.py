"""Benchmarks of orthanc-dicom-events, each with its baseline measured side by side in one run.

    .venv/bin/python benchmarks/dicom_events/bench.py [--instances 2000] [--rounds 3]
        [--catch-up 20000] [--catch-up-rounds 3]
        [--latency-seconds 60] [--rate 50] [--only ingest|catch-up|latency] [--output DIR]

1. ingest: instances/s by REST (4 client threads) and by C-STORE (4 storescu in parallel, one
   association each), into Orthanc without the Python plugin and with the three plugins composed
   and every event enabled (RabbitMQ live); all run at once, in alternating rounds (median of
   the per-round ratios). A third Orthanc loads the Python plugin with a change callback that
   does nothing: what any Python plugin that follows changes costs, the floor for the other
   ratio. TCP_NODELAY=1 is set for both DCMTK ends (see NO_NAGLE).
2. catch-up: changes recorded while the broker is away, then events/s until the backlog is empty
   (RabbitMQ: broker stopped and started again; SNS: the topic appears only after the burst);
   each broker's round with the median rate is reported, every round's rate beside it. The
   RabbitMQ queue is bound before the outage and read only after the drain, then checked to
   hold every event: a consumer belongs on another machine, not on the two cores measured.
3. latency: a steady upload rate, throttle off: upload answered -> event received, p50 / p99.

Writes results.json to --output (default: results/ beside this script, results-<flavour>/ for
another flavour than debian-12; from results/, results.md and
the README tables are generated from it by benchmarks/publish_results.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

# Run as a script from anywhere: the harness lives in the repository's `integration` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.publish_results import results_folder, write
from integration.harness import flavours
from integration.harness.interfaces import Orthanc, RabbitMQ
from integration.harness.providers import select_provider
from integration.harness.rabbitmq import consume, declare_queue
from orthanc_fake.dicom import make_instance

ALL_EVENTS = {
    key: True
    for key in (
        "StoredInstance",
        "StableSeries",
        "StableStudy",
        "StablePatient",
        "DeletedInstance",
        "DeletedSeries",
        "DeletedStudy",
        "DeletedPatient",
    )
}
# A Python plugin that only receives Orthanc's changes, and does nothing with them.
EMPTY_ENTRY = """
import orthanc

def _on_change(change_type, level, resource_id):
    pass

def _ready(output, uri, **request):
    output.AnswerBuffer("{}", "application/json")

orthanc.RegisterOnChangeCallback(_on_change)
orthanc.RegisterRestCallback("/empty-entry/status", _ready)
"""
EMPTY_ENTRY_ROUTE = "/empty-entry/status"
OTHER_PLUGINS_CONFIG: dict[str, Any] = {
    "Dictionary": {"7053,1003": ["ST", "OriginalImageFileName", 1, 1, "Philips PET Private Group"]},
    "SeriesMainPrivateDicomTags": ["OriginalImageFileName"],
    "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
}
PLUGINS = ["dicom-events", "series-private-tags", "series-thumbnail"]


def instances(count: int, per_series: int = 100) -> list[bytes]:
    study = generate_uid()
    series = [generate_uid() for _ in range(max(1, count // per_series))]
    made = []
    for index in range(count):
        data = make_instance(
            patient_id="BENCH", study_uid=study, series_uid=series[index % len(series)]
        )
        made.append(data if isinstance(data, bytes) else bytes(data))
    return made


def rabbit_section(broker: RabbitMQ, exchange: str, events: dict[str, Any]) -> dict[str, Any]:
    return {
        "Events": events,
        "Broker": {
            "Type": "rabbitmq",
            "RabbitConfig": {"URL": broker.url_for_orthanc, "Exchange": exchange},
        },
    }


def upload_rest(orthanc: Orthanc, data: list[bytes], threads: int = 4) -> float:
    """Instances per second."""
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(orthanc.upload_file, data))
    return len(data) / (time.monotonic() - started)


# DCMTK (Orthanc's DICOM server and storescu alike) leaves Nagle's algorithm on unless TCP_NODELAY
# is set in the environment: every C-STORE then waits for a delayed ACK, about 11 instances/s
# whatever the server does. Measured: 11/s as is, 22/s with one side set, 525/s with both.
NO_NAGLE = {"TCP_NODELAY": "1"}
CSTORE_PROCESSES = 4  # parallel associations, like several modalities sending at once


def upload_cstore(orthanc: Orthanc, data: list[bytes], workdir: Path) -> float:
    """Instances per second; the files are split among CSTORE_PROCESSES storescu processes."""
    folder = workdir / f"cstore-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    paths = []
    for index, blob in enumerate(data):
        path = folder / f"{index:06d}.dcm"
        path.write_bytes(blob)
        paths.append(str(path))
    storescu = shutil.which("storescu")
    if storescu is None:
        raise RuntimeError("storescu not found: install dcmtk")
    server = getattr(orthanc, "dicom_port", None)
    argv = [storescu, "-aec", getattr(orthanc, "aet", "ORTHANC"), "-aet", "BENCH"]
    argv += ["127.0.0.1", str(server)]
    env = {**os.environ, **NO_NAGLE}
    batches = [paths[i::CSTORE_PROCESSES] for i in range(CSTORE_PROCESSES)]
    started = time.monotonic()
    running = [subprocess.Popen([*argv, *batch], env=env) for batch in batches if batch]
    failed = [process.args for process in running if process.wait(timeout=600) != 0]
    elapsed = time.monotonic() - started
    if failed:
        raise RuntimeError(f"storescu failed for {len(failed)} batch(es)")
    return len(data) / elapsed


def bench_ingest(
    provider: Any, broker: RabbitMQ, workdir: Path, count: int, rounds: int = 3
) -> dict[str, Any]:
    """Both Orthancs run at once and take turns, each round with fresh instances.

    The machine may be busy with other work: the figure is the median of the per-round ratios
    (plugged / baseline, measured back to back), not a ratio of means.
    """
    empty_entry = workdir / "empty-entry.py"
    empty_entry.write_text(EMPTY_ENTRY)
    variants: dict[str, Callable[[Path], Orthanc]] = {
        "no-python-plugin": lambda d: provider.orthanc(d, config={"StableAge": 2}, env=NO_NAGLE),
        "python-plugin-empty-callback": lambda d: provider.orthanc(
            d,
            script=empty_entry,
            ready_routes=[EMPTY_ENTRY_ROUTE],
            config={"StableAge": 2},
            env=NO_NAGLE,
        ),
        "three-plugins-all-events": lambda d: provider.orthanc(
            d,
            plugins=PLUGINS,
            config={
                "StableAge": 2,
                **OTHER_PLUGINS_CONFIG,
                "DicomEvents": rabbit_section(broker, "bench-ingest", ALL_EVENTS),
            },
            env=NO_NAGLE,
        ),
    }
    servers = {name: build(workdir / f"ingest-{name}").start() for name, build in variants.items()}
    runs: dict[str, dict[str, list[float]]] = {n: {"rest": [], "cstore": []} for n in variants}
    try:
        for round_number in range(rounds):
            order = list(variants) if round_number % 2 == 0 else list(reversed(variants))
            for kind in ("rest", "cstore"):
                for name in order:
                    data = instances(count)
                    rate = (
                        upload_rest(servers[name], data)
                        if kind == "rest"
                        else upload_cstore(servers[name], data, workdir)
                    )
                    runs[name][kind].append(rate)
                    settle(servers[name])
            print(json.dumps({n: {k: round(v[-1]) for k, v in r.items()} for n, r in runs.items()}))
    finally:
        for server in servers.values():
            server.stop()
    summary: dict[str, Any] = {
        name: {kind: statistics.median(values) for kind, values in entry.items()}
        for name, entry in runs.items()
    }
    base, plugged = runs["no-python-plugin"], runs["three-plugins-all-events"]
    empty = runs["python-plugin-empty-callback"]

    def median_ratio(
        numerator: dict[str, list[float]], denominator: dict[str, list[float]]
    ) -> dict[str, float]:
        return {
            kind: statistics.median(
                n / d for n, d in zip(numerator[kind], denominator[kind], strict=True)
            )
            for kind in ("rest", "cstore")
        }

    summary["ratio"] = median_ratio(plugged, base)
    summary["ratio_empty_callback"] = median_ratio(empty, base)
    summary["ratio_to_empty_callback"] = median_ratio(plugged, empty)
    summary["rounds"] = rounds
    summary["runs"] = runs
    return summary


def settle(orthanc: Orthanc, timeout: float = 120.0) -> None:
    """Let Orthanc finish its background work (its CPU use falls to idle) before the next upload,
    so one side's catch-up never slows the other side's upload."""
    process = getattr(orthanc, "_process", None)
    pid = getattr(process, "pid", None)
    if pid is None:
        time.sleep(2.0)
        return
    stat = Path(f"/proc/{pid}/stat")

    def cpu_seconds() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds()
        time.sleep(0.5)
        if cpu_seconds() - before < 0.015:  # under 3 % of one core
            return


def drain_times(orthanc: Orthanc, timeout: float, published_before: int = 0) -> tuple[float, float]:
    """(seconds until the first publish succeeded, seconds from then until the backlog is 0).

    `published_before`: the status's `Published` count before the backlog was built, for an
    Orthanc that has published before (a benchmark's later rounds)."""
    started = time.monotonic()
    first_publish: float | None = None
    while time.monotonic() - started < timeout:
        broker = orthanc.client.get_json("/dicom-events/status")["Broker"]
        if first_publish is None and broker["Published"] > published_before:
            first_publish = time.monotonic()
        if broker["Backlog"] == 0 and broker["State"] == "connected":
            end = time.monotonic()
            first_publish = first_publish or end
            return first_publish - started, max(end - first_publish, 1e-3)
        time.sleep(0.02)
    raise TimeoutError("the backlog did not drain")


def bench_catch_up_rabbitmq(
    provider: Any, broker: RabbitMQ, workdir: Path, count: int
) -> dict[str, Any]:
    orthanc = provider.orthanc(
        workdir / "catchup-rabbitmq",
        plugins=["dicom-events"],
        config={"DicomEvents": rabbit_section(broker, "bench-catchup", {"StoredInstance": True})},
    ).start()
    try:
        # The queue is bound before the outage and read after the drain: the broker routes and
        # stores every event as it would for a consumer on another machine, while this
        # machine's two cores go to Orthanc and the broker only.
        declare_queue(broker.url, "bench-catchup", "dicom.#", "bench-catchup")
        broker.stop()
        upload_rest(orthanc, instances(count, per_series=500))
        backlog = orthanc.client.get_json("/dicom-events/status")["Broker"]["Backlog"]
        broker.start()
        reconnect, seconds = drain_times(orthanc, timeout=600)
        with consume(broker.url, "bench-catchup", "dicom.#", queue="bench-catchup") as collector:
            collector.wait_for(count, timeout=300)
    finally:
        orthanc.stop()
    return {
        "changes": backlog,
        "reconnect_seconds": reconnect,
        "seconds": seconds,
        "events_per_second": count / seconds,
    }


def bench_catch_up_sns(provider: Any, workdir: Path, count: int) -> dict[str, Any]:
    kinds = provider.sns_kinds()
    kind = "localstack" if "localstack" in kinds else kinds[0]
    sns = provider.sns(kind, workdir / f"sns-{kind}")
    sns.start()
    try:
        name = f"catchup-{uuid.uuid4().hex[:6]}"
        arn = f"arn:aws:sns:{sns.region}:000000000000:{name}"
        orthanc = provider.orthanc(
            workdir / "catchup-sns",
            plugins=["dicom-events"],
            config={
                "DicomEvents": {
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
            },
            env=sns.env,
        ).start()
        try:
            upload_rest(orthanc, instances(count, per_series=500))  # the topic does not exist yet
            backlog = orthanc.client.get_json("/dicom-events/status")["Broker"]["Backlog"]
            assert sns.create_topic(name) == arn
            reconnect, seconds = drain_times(orthanc, timeout=900)
        finally:
            orthanc.stop()
    finally:
        sns.close()
    return {
        "emulator": kind,
        "changes": backlog,
        "reconnect_seconds": reconnect,
        "seconds": seconds,
        "events_per_second": count / seconds,
    }


def bench_latency(
    provider: Any, broker: RabbitMQ, workdir: Path, seconds: float, rate: float
) -> dict[str, Any]:
    orthanc = provider.orthanc(
        workdir / "latency",
        plugins=["dicom-events"],
        config={"DicomEvents": rabbit_section(broker, "bench-latency", {"StoredInstance": True})},
    ).start()
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    lock = threading.Lock()
    try:
        with consume(broker.url, "bench-latency", "dicom.instance.stored") as collector:
            # The collector stamps nothing: poll its list often and stamp on first sight.
            stop = threading.Event()

            def watch() -> None:
                seen = 0
                while not stop.is_set():
                    messages = collector.messages
                    now = time.monotonic()
                    for message in messages[seen:]:
                        with lock:
                            received[message.body["subject"]] = now
                    seen = len(messages)
                    time.sleep(0.001)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            data = instances(int(seconds * rate))
            started = time.monotonic()
            for index, blob in enumerate(data):
                due = started + index / rate
                time.sleep(max(0.0, due - time.monotonic()))
                answer = orthanc.upload_file(blob)
                with lock:
                    sent[answer["ID"]] = time.monotonic()
            collector.wait_for(len(data), timeout=60)
            time.sleep(0.1)
            stop.set()
            watcher.join()
    finally:
        orthanc.stop()
    latencies = sorted(1000 * max(0.0, received[i] - sent[i]) for i in sent if i in received)
    return {
        "instances": len(sent),
        "rate_per_second": rate,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating ingest rounds")
    parser.add_argument("--catch-up", type=int, default=20000)
    parser.add_argument("--catch-up-rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--only", choices=["ingest", "catch-up", "latency"], action="append")
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the READMEs' tables follow"
    )
    args = parser.parse_args()
    only = set(args.only or ["ingest", "catch-up", "latency"])
    provider = select_provider()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dicom-events-bench-") as temp:
        workdir = Path(temp)
        broker = provider.rabbitmq(workdir / "rabbitmq")
        broker.start()
        try:
            if "ingest" in only:
                results["ingest"] = bench_ingest(
                    provider, broker, workdir, args.instances, args.rounds
                )
                print(json.dumps(results["ingest"]["ratio"]), flush=True)
            if "latency" in only:
                results["latency"] = bench_latency(
                    provider, broker, workdir, args.latency_seconds, args.rate
                )
                print(json.dumps(results["latency"]), flush=True)
            if "catch-up" in only:
                rabbit_rounds, sns_rounds = [], []
                for number in range(args.catch_up_rounds):
                    # A fresh Orthanc per round: on Orthanc 1.13 every lookup slows down as the
                    # index grows, so a shared storage would make each round slower than the last.
                    rounds_dir = workdir / f"catch-up-round-{number + 1}"
                    rabbit_rounds.append(
                        bench_catch_up_rabbitmq(provider, broker, rounds_dir, args.catch_up)
                    )
                    print(json.dumps(rabbit_rounds[-1]), flush=True)
                    sns_rounds.append(bench_catch_up_sns(provider, rounds_dir, args.catch_up))
                    print(json.dumps(sns_rounds[-1]), flush=True)
                results["catch_up_rabbitmq"] = median_round(rabbit_rounds)
                results["catch_up_sns"] = median_round(sns_rounds)
        finally:
            broker.close()
    stamp = measured_stamp()
    for section in results.values():
        section["measured"] = stamp
    folder = args.output or results_folder("dicom_events", flavours.selected_flavour())
    target = folder / "results.json"
    if target.is_file():
        # A partial run (--only) replaces its own sections and keeps the others, each with
        # the date and commit it was measured at.
        previous = json.loads(target.read_text())
        previous.pop("note", None)
        if "catch-up" in only:
            previous.pop("catch_up_sns_moto", None)  # its emulator is whichever runs now
        results = {**previous, **results}
    catch_up_note(results)
    print(write("dicom_events", results, folder))


def catch_up_note(results: dict[str, Any]) -> None:
    """Say in the published table how many catch-up rounds each figure is the median of."""
    parts = []
    for key, label in (("catch_up_rabbitmq", "RabbitMQ"), ("catch_up_sns", "SNS")):
        rates = results.get(key, {}).get("rounds_events_per_second")
        if len(rates or []) > 1:
            listed = ", ".join(f"{rate:.0f}" for rate in rates)
            parts.append(f"{label} the median of {len(rates)} rounds ({listed} events/s)")
        elif rates:
            parts.append(f"{label} one round")
    if parts:
        results["note"] = "Catch-up figures: " + "; ".join(parts) + "."


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (its own figures, consistent with each other), and the
    rate of every round."""
    ranked = sorted(rounds, key=lambda entry: entry["events_per_second"])
    median = dict(ranked[(len(ranked) - 1) // 2])
    median["rounds_events_per_second"] = [entry["events_per_second"] for entry in rounds]
    return median


def measured_stamp() -> dict[str, Any]:
    """When, at which commit and on how busy a machine a section was measured."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit or "?",
        "load_average": Path("/proc/loadavg").read_text().split()[0],
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    main()
