"""Orthanc's CPU time per stored instance, per plugin configuration, side by side in one run.

    .venv/bin/python benchmarks/ingest_cost/bench.py [--instances 600] [--rounds 3]
        [--paths rest,cstore] [--shapes short,long] [--output DIR]
    HARNESS_FLAVOUR=debian-sid .venv/bin/python benchmarks/ingest_cost/bench.py   # Orthanc 1.13

Rates measured while several Orthancs share two busy cores say more about the scheduler than
about the plugins; the CPU time a process spends per instance does not depend on who else
runs. Four Orthancs run at once:

- none:       no Python plugin;
- floor:      the Python plugin with an empty change callback (what any Python plugin that
              follows changes costs);
- seed:       the three plugins composed, with the seed configuration of the top README
              (stored-instance events throttled at 1,000 ms per series, `PLUGIN` origin
              skipped, three tags published, stable series and study events);
- all-events: the three plugins, every event on, no throttle, no origin skipped.

Each dicom-events publishes to RabbitMQ (a private node), into a queue bound to its exchange.

Each round gives every configuration, path (REST: 4 client threads; C-STORE: 4 storescu
associations) and shape (`short`: a new series every 3 instances; `long`: 60-instance series)
`--instances` fresh 32x32 CT instances carrying the configured private tag. The CPU of the
Orthanc process (utime + stime of /proc/<pid>/stat: every thread, the plugins' included) is
read just before the first upload and again once Orthanc is idle after the last one and after
the stable age (so the per-series work - capture, stable events, thumbnail pre-render - is
counted). Where `perf stat -e instructions -p <pid>` works, instructions are counted over the
same window. The order of the configurations rotates every round. Reported per cell: the
median over rounds, its spread, and the median of the per-round ratios to the floor.

Writes results.json (default: results/ here; then results.md and the README tables are
generated from it by benchmarks/publish_results.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

# Run as a script from anywhere: the imports below are relative to the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.bench import (
    ALL_EVENTS,
    EMPTY_ENTRY,
    EMPTY_ENTRY_ROUTE,
    NO_NAGLE,
    PLUGINS,
    rabbit_section,
    upload_cstore,
    upload_rest,
)
from benchmarks.publish_results import write
from integration.harness import flavours
from integration.harness.interfaces import Orthanc, RabbitMQ
from integration.harness.providers import select_provider
from orthanc_fake.dicom import PrivateBlock, make_instance

CREATOR = "MATTERHORN_Prvt_Tags"
STABLE_AGE = 2
# The top README's seed configuration (its Dictionary, private tag and metadata indexes too).
SEED_EVENTS: dict[str, Any] = {
    "StoredInstance": True,
    "StoredInstanceThrottleMs": 1000,
    "StoredInstanceSkipOrigin": ["PLUGIN"],
    "StoredInstancePublishTags": ["PrivateCreator", "PatientName", "SeriesDescription"],
    "StableSeries": True,
    "StableSeriesPublishTags": ["Modality", "SeriesDescription"],
    "StableStudy": True,
    "StableStudyPublishTags": ["StudyDescription"],
    "StablePatient": False,
    "StablePatientPublishTags": [],
    "DeletedInstance": False,
    "DeletedSeries": True,
    "DeletedStudy": True,
    "DeletedPatient": True,
}
EVERY_EVENT: dict[str, Any] = {
    **SEED_EVENTS,
    **ALL_EVENTS,
    "StoredInstanceThrottleMs": 0,
    "StoredInstanceSkipOrigin": [],
}
PLUGINS_CONFIG: dict[str, Any] = {
    "Dictionary": {"0055,1011": ["UT", "QueueID", 1, 1, CREATOR]},
    "SeriesMainPrivateDicomTags": ["QueueID"],
    "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
    "UserContentType": {"SeriesThumbnail": 2001},  # pre-rendered thumbnails kept as attachments
}
CONFIGURATIONS = ["none", "floor", "seed", "all-events"]
LABELS = {
    "none": "no Python plugin",
    "floor": "floor: empty change callback",
    "seed": "three plugins, seed configuration",
    "all-events": "three plugins, every event, no throttle",
}
SHAPES = {"short": 3, "long": 60}
TICK = os.sysconf("SC_CLK_TCK")


# -- data ----------------------------------------------------------------------------------------


def instances(count: int, per_series: int) -> list[bytes]:
    """Fresh instances: one study, a new series every `per_series`, the private tag set."""
    study = generate_uid()
    made: list[bytes] = []
    series = ""
    for index in range(count):
        if index % per_series == 0:
            series = generate_uid()
        block = PrivateBlock(0x0055, CREATOR, {0x11: ("UT", f"queue/{series[-12:]}")})
        made.append(
            make_instance(
                "COST",
                study,
                series,
                pixels=(32, 32),
                private_blocks=[block],
                Modality="CT",
                PatientName="Cost^Bench",
                SeriesDescription="cost",
                InstanceNumber=index % per_series + 1,
            )
        )
    return made


# -- measuring -----------------------------------------------------------------------------------


def process_pid(orthanc: Orthanc) -> int:
    """The Orthanc process itself: the harness's child, or its descendant when chrooted."""
    root = getattr(orthanc, "pid", None)
    if root is None:
        raise RuntimeError("this provider gives no process id: run with HARNESS_PROVIDER=local")
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        parent = int(text.rsplit(")", 1)[1].split()[1])
        names[int(entry.name)] = name
        children.setdefault(parent, []).append(int(entry.name))
    pending: list[int] = [int(root)]
    while pending:
        pid = pending.pop(0)
        if names.get(pid) == "Orthanc":
            return pid
        pending += children.get(pid, [])
    return int(root)


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of the process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def settle(pid: int, timeout: float = 180.0) -> None:
    """Until Orthanc's CPU use stays under 3 % of a core for a second."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout:
        before = cpu_ticks(pid)
        time.sleep(0.5)
        quiet = quiet + 1 if cpu_ticks(pid) - before <= 0.015 * TICK else 0
        if quiet >= 2:
            return


def perf_works() -> tuple[bool, str]:
    perf = shutil.which("perf")
    if perf is None:
        return False, "perf not installed (Debian's linux-perf)"
    result = subprocess.run(
        [perf, "stat", "-x,", "-e", "instructions", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if (
        result.returncode != 0
        or "<not supported>" in result.stderr
        or "<not counted>" in (result.stderr)
    ):
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
        reason = next((line for line in dmesg.splitlines() if "Performance Events" in line), "")
        answer = "not supported" if "<not supported>" in result.stderr else "an error"
        return False, (
            f"`perf stat -e instructions true` answers {answer} on this machine"
            + (f"; its kernel says: {reason.split(']', 1)[-1].strip()}" if reason else "")
        )
    return True, "perf stat -e instructions -p <pid>"


class Counter:
    """`perf stat -e instructions -p <pid>` over a window, when the machine allows it."""

    def __init__(self, pid: int, enabled: bool) -> None:
        self.process: subprocess.Popen[str] | None = None
        if enabled:
            self.process = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", "instructions", "-p", str(pid)],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )
            time.sleep(0.2)

    def stop(self) -> float | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        for line in err.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("instructions") and fields[0].isdigit():
                return float(fields[0])
        return None


def measure(
    orthanc: Orthanc, path: str, data: list[bytes], workdir: Path, count_instructions: bool
) -> dict[str, float | None]:
    pid = process_pid(orthanc)
    settle(pid)
    counter = Counter(pid, count_instructions)
    before = cpu_ticks(pid)
    busy_before, total_before = machine_ticks()
    rate = upload_rest(orthanc, data) if path == "rest" else upload_cstore(orthanc, data, workdir)
    time.sleep(STABLE_AGE + 2)  # the stable events and their work come after the stable age
    settle(pid)
    ticks = cpu_ticks(pid) - before
    busy_after, total_after = machine_ticks()
    instructions = counter.stop()
    return {
        "cpu_ms_per_1000": 1000.0 * ticks / TICK * 1000.0 / len(data),
        "instructions_per_instance": None if instructions is None else instructions / len(data),
        "rate": rate,
        # Busy CPU of everything else on the machine in this window, as a share of the machine.
        "others_share": ((busy_after - busy_before) - ticks) / max(1, total_after - total_before),
    }


# -- the run -------------------------------------------------------------------------------------


def bind_sink(url: str, exchange: str) -> None:
    """A queue taking every event of `exchange`, as a deployment has: without one, every event
    would be unroutable and kept as a dead letter, work no deployment does. It keeps only its
    last 100 messages (not durable), so it needs no consumer."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        queue = f"{exchange}-sink"
        channel.queue_declare(queue, durable=False, arguments={"x-max-length": 100})
        channel.queue_bind(queue, exchange, routing_key="#")
    finally:
        connection.close()


def builders(broker: RabbitMQ, workdir: Path) -> dict[str, Callable[[Any, Path], Orthanc]]:
    for exchange in ("cost-seed", "cost-all"):
        bind_sink(broker.url, exchange)
    script = workdir / "empty-entry.py"
    script.write_text(EMPTY_ENTRY)
    common = {"StableAge": STABLE_AGE}

    def three(events: dict[str, Any], exchange: str) -> Callable[[Any, Path], Orthanc]:
        config = {
            **common,
            **PLUGINS_CONFIG,
            "DicomEvents": rabbit_section(broker, exchange, events),
        }
        return lambda p, d: p.orthanc(d, plugins=PLUGINS, config=config, env=NO_NAGLE, name=d.name)

    return {
        "none": lambda p, d: p.orthanc(d, config=common, env=NO_NAGLE, name=d.name),
        "floor": lambda p, d: p.orthanc(
            d,
            script=script,
            ready_routes=[EMPTY_ENTRY_ROUTE],
            config=common,
            env=NO_NAGLE,
            name=d.name,
        ),
        "seed": three(SEED_EVENTS, "cost-seed"),
        "all-events": three(EVERY_EVENT, "cost-all"),
    }


def versions(orthanc: Orthanc) -> tuple[str, str]:
    system = orthanc.client.get_json("/system")
    plugin = orthanc.client.get("/plugins/python")
    return str(system.get("Version", "?")), (
        str(plugin.json().get("Version", "?")) if plugin.status_code == 200 else "?"
    )


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    paths = arguments.paths.split(",")
    shapes = {name: SHAPES[name] for name in arguments.shapes.split(",")}
    count_instructions, instructions_note = perf_works()
    provider = select_provider()
    samples: dict[str, dict[str, dict[str, list[dict[str, float | None]]]]] = {
        path: {shape: {name: [] for name in CONFIGURATIONS} for shape in shapes} for path in paths
    }
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="ingest-cost-") as temp:
        workdir = Path(temp)
        broker = provider.rabbitmq(workdir / "rabbitmq")
        broker.start()
        servers: dict[str, Orthanc] = {}
        try:
            for name, build in builders(broker, workdir).items():
                servers[name] = build(provider, workdir / f"cost-{name}").start()
            orthanc_version, plugin_version = versions(servers["floor"])
            for round_number in range(arguments.rounds):
                shift = round_number % len(CONFIGURATIONS)
                order = CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]
                for path in paths:
                    for shape, per_series in shapes.items():
                        for name in order:
                            data = instances(arguments.instances, per_series)
                            sample = measure(servers[name], path, data, workdir, count_instructions)
                            samples[path][shape][name].append(sample)
                            print(
                                f"round {round_number + 1} {path} {shape} {name}:"
                                f" {sample['cpu_ms_per_1000']:.0f} CPU ms / 1,000,"
                                f" {sample['rate']:.0f} inst/s,"
                                f" others {sample['others_share']:.0%}",
                                flush=True,
                            )
        finally:
            for server in servers.values():
                server.stop()
            broker.close()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    cells: dict[str, Any] = {}
    others: list[float] = []
    for path in paths:
        cells[path] = {}
        for shape in shapes:
            cells[path][shape] = {}
            floor = samples[path][shape]["floor"]
            for name in CONFIGURATIONS:
                runs = samples[path][shape][name]
                others += [float(s["others_share"] or 0.0) for s in runs]
                cpu = [float(s["cpu_ms_per_1000"] or 0.0) for s in runs]
                cell: dict[str, Any] = {
                    "cpu_ms_per_1000": cpu,
                    "cpu_ratio_to_floor": statistics.median(
                        c / float(f["cpu_ms_per_1000"] or 1.0)
                        for c, f in zip(cpu, floor, strict=True)
                    ),
                    "rate": [float(s["rate"] or 0.0) for s in runs],
                }
                counts = [s["instructions_per_instance"] for s in runs]
                floor_counts = [f["instructions_per_instance"] for f in floor]
                if all(c is not None for c in counts + floor_counts):
                    cell["instructions_per_instance"] = counts
                    cell["instructions_ratio_to_floor"] = statistics.median(
                        float(c or 0) / float(f or 1)
                        for c, f in zip(counts, floor_counts, strict=True)
                    )
                cells[path][shape][name] = cell
    command = "python benchmarks/ingest_cost/bench.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    flavour = flavours.selected_flavour()
    return {
        "flavour": flavour,
        "orthanc_version": orthanc_version,
        "python_plugin_version": plugin_version,
        "instances": arguments.instances,
        "rounds": arguments.rounds,
        "paths": paths,
        "shapes": shapes,
        "configurations": CONFIGURATIONS,
        "labels": LABELS,
        "floor": "floor",
        "instructions_available": count_instructions,
        "instructions_note": instructions_note,
        "machine_load": {
            "cores": os.cpu_count(),
            "before": " ".join(load_before),
            "after": " ".join(load_after),
            "others_cpu_share": f"median {statistics.median(others):.0%}, max {max(others):.0%}",
        },
        "command": (f"HARNESS_FLAVOUR={flavour} " if flavour != "debian-12" else "")
        + command.strip(),
        "cells": cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=600, help="per configuration and cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paths", default="rest,cstore")
    parser.add_argument("--shapes", default="short,long")
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the READMEs' tables follow"
    )
    arguments = parser.parse_args()
    print(write("ingest_cost", run(arguments), arguments.output))


if __name__ == "__main__":
    main()
