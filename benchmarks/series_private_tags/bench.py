"""Benchmark of orthanc-series-private-tags against Orthanc's own routes, baseline in the same run.

Synthetic data: --series series (default 10,000) of --instances instances each (default 2), every
instance carrying three configured private tags. Three comparisons:

- ingest:  the same files uploaded by REST (--threads clients) to an Orthanc without the Python
           plugin and to one running the plugin alone (its standalone entry), in --chunks rounds
           that alternate between the two (the machine's drift is larger than the effect).
           Target: the plugin's rate >= 0.95 x the baseline's. The time the plugin needs after
           each of its chunks to finish its reads (its backlog) is reported too, and so is a
           third Orthanc in the same rotation whose Python plugin only registers an empty
           change callback (the floor of any Python plugin that follows changes).
- listing: GET /with-private-tags/series against GET /series?expand on the plugin's Orthanc,
           requests alternating. Target: median ratio <= 1.1.
- page:    one page of 100 (since=middle, limit=100) against Orthanc's page. Target: <= 1.3.
- large listing (--large-series, default 100,000 series of one instance, 0 to skip): a fresh
           Orthanc with the plugin holds that many series; the same alternating comparison, and
           Orthanc's memory (VmRSS) once every series is captured, after the listings, and its
           peak (VmHWM) during one request of each route. Target: <= 1.1. Beside it, the floor
           of any Python plugin route serving that listing: one that asks Orthanc for
           `/series?expand` and answers the same bytes.

Listings are compared by the CPU time Orthanc's process spends per request (utime + stime of
/proc/<pid>/stat: Orthanc's own work and the plugin's, both in that process), which a busy
machine disturbs far less than the wall times, reported beside them.

Writes results.json and results.md into --output (default: results/ here, results-<flavour>/ for
another flavour) and prints the Markdown table; exits 1 when a target is missed.

    .venv/bin/python benchmarks/series_private_tags/bench.py [--series 10000]
        [--large-series 100000] [--output DIR]
    HARNESS_FLAVOUR=debian-sid .venv/bin/python benchmarks/series_private_tags/bench.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.dicom_events.bench import EMPTY_ENTRY, EMPTY_ENTRY_ROUTE  # noqa: E402
from benchmarks.ingest_cost.bench import process_pid  # noqa: E402
from benchmarks.publish_results import SERIES_PRIVATE_TAGS_TARGETS, write  # noqa: E402
from integration.harness import flavours  # noqa: E402
from integration.harness.orthanc import OrthancServer, compose_entry  # noqa: E402
from integration.harness.processes import wait_until  # noqa: E402
from orthanc_fake.dicom import PrivateBlock, make_instance  # noqa: E402

CREATOR = "MATTERHORN_Prvt_Tags"
TAG_NAMES = ["QueueID", "SourceSeriesUID", "!!OutputFlag"]
PLUGIN_CONFIG: dict[str, Any] = {
    "UserMetadata": {"SeriesPrivateTags": 2000},
    "Dictionary": {
        "0055,1011": ["UT", "QueueID", 1, 1, CREATOR],
        "0055,1012": ["LO", "SourceSeriesUID", 1, 1, CREATOR],
        "0055,1013": ["CS", "OutputFlag", 1, 1, CREATOR],
    },
    "SeriesMainPrivateDicomTags": TAG_NAMES,
}
COMMON_CONFIG: dict[str, Any] = {"StableAge": 60}  # no stability work during the timings
TARGETS = SERIES_PRIVATE_TAGS_TARGETS
UID_ROOT = "1.2.826.0.1.3680043.10.1082.7"
TICK = os.sysconf("SC_CLK_TCK")
# The least any Python plugin route serving Orthanc's listing costs: ask Orthanc for it
# (RestApiGet) and answer the same bytes (AnswerBuffer), nothing else.
PASSTHROUGH_ROUTE = "/benchmark/passthrough"
PASSTHROUGH = f"""

def _passthrough(output, uri, **request):
    output.AnswerBuffer(orthanc.RestApiGet("/series?expand"), "application/json")


orthanc.RegisterRestCallback("{PASSTHROUGH_ROUTE}", _passthrough)
"""


# -- data ------------------------------------------------------------------------------------------


def dataset_files(series: int, instances: int, cache: Path) -> list[Path]:
    """The synthetic files, generated once per size and reused from `cache` afterwards."""
    folder = cache / f"{series}x{instances}"
    expected = series * instances
    files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if len(files) == expected:
        return files
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for number in range(series):
        for index, data in enumerate(series_instances(number, instances)):
            (folder / f"{number:07d}-{index:03d}.dcm").write_bytes(data)
        if number and number % 1000 == 0:
            print(f"  generated {number} series ({time.monotonic() - started:.0f} s)", flush=True)
    return sorted(folder.glob("*.dcm"))


def series_instances(number: int, instances: int) -> Iterator[bytes]:
    """One series: its instances all carry the three private tags (values vary per series)."""
    study_uid = f"{UID_ROOT}.{number // 2}"
    series_uid = f"{UID_ROOT}.{number // 2}.{number % 2 + 1}"
    elements = {
        0x11: ("UT", f"queue/{number:07d}/" + "x" * 40),
        0x12: ("LO", f"{UID_ROOT}.9.{number}"),
        0x13: ("CS", "DONE"),
    }
    for index in range(instances):
        yield make_instance(
            f"PATIENT{number % 1000:04d}",
            study_uid,
            series_uid,
            f"{series_uid}.{index + 1}",
            private_blocks=[PrivateBlock(0x0055, CREATOR, elements)],
            InstanceNumber=index + 1,
        )


# -- measuring -------------------------------------------------------------------------------------


def ingest(url: str, files: Sequence[Path], threads: int) -> float:
    """Upload every file (keep-alive connection per thread); returns instances per second."""
    host, port = url.removeprefix("http://").split(":")
    payloads = [path.read_bytes() for path in files]
    local = threading.local()

    def upload(data: bytes) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request(
            "POST", "/instances", body=data, headers={"Content-Type": "application/dicom"}
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"upload answered HTTP {response.status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(upload, payloads, chunksize=16))
    return len(payloads) / (time.perf_counter() - started)


def timed_get(url: str, path: str) -> tuple[float, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered HTTP {response.status}: {body[:200]!r}")
    return elapsed, body


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int, field: str) -> int:
    """A `VmRSS` / `VmHWM` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def alternate(
    server: OrthancServer, baseline: str, candidate: str, repeats: int, batch: int = 1
) -> dict[str, Any]:
    """Median wall and CPU times of two routes requested in turn (which one goes first
    alternates too); the ratio is the CPU one. A sample is `batch` requests in a row (CPU time
    is counted in clock ticks of 10 ms: a short request needs many), divided by `batch`."""
    pid = process_pid(server)  # Orthanc itself, also when it runs chrooted
    timed_get(server.url, baseline)
    timed_get(server.url, candidate)
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    cpu: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for round_number in range(repeats):
        order = [("baseline", baseline), ("candidate", candidate)]
        for side, path in order if round_number % 2 == 0 else reversed(order):
            before = process_cpu_seconds(pid)
            wall = sum(timed_get(server.url, path)[0] for _ in range(batch))
            cpu[side].append((process_cpu_seconds(pid) - before) / batch)
            times[side].append(wall / batch)
    base, cand = statistics.median(times["baseline"]), statistics.median(times["candidate"])
    base_cpu, cand_cpu = statistics.median(cpu["baseline"]), statistics.median(cpu["candidate"])
    return {
        "baseline_route": baseline,
        "candidate_route": candidate,
        "baseline_median_s": base,
        "candidate_median_s": cand,
        "wall_ratio": cand / base,
        "baseline_cpu_median_s": base_cpu,
        "candidate_cpu_median_s": cand_cpu,
        "ratio": cand_cpu / max(base_cpu, 1 / TICK / batch),
        "baseline_runs_s": times["baseline"],
        "candidate_runs_s": times["candidate"],
        "baseline_cpu_runs_s": cpu["baseline"],
        "candidate_cpu_runs_s": cpu["candidate"],
    }


def wait_for_backlog(server: OrthancServer, instances: int, timeout: float) -> float:
    """Seconds until the plugin has handled every stored instance."""
    started = time.perf_counter()

    def caught_up() -> bool:
        status = server.client.get_json("/series-private-tags/status")
        handled = status["InstancesRead"] + status["InstancesSkipped"]
        return bool(handled >= instances and status["PendingChanges"] == 0)

    wait_until(caught_up, timeout=timeout, what="the plugin to read every instance", interval=0.2)
    return time.perf_counter() - started


# -- run -------------------------------------------------------------------------------------------


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    files = dataset_files(arguments.series, arguments.instances, arguments.cache)
    total = len(files)
    results: dict[str, Any] = {
        "series": arguments.series,
        "instances_per_series": arguments.instances,
        "instances": total,
        "threads": arguments.threads,
        "chunks": arguments.chunks,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "flavour": flavours.selected_flavour(),
    }
    with tempfile.TemporaryDirectory(prefix="spt-bench-") as workdir:
        baseline = OrthancServer(Path(workdir) / "baseline", config=COMMON_CONFIG, name="baseline")
        empty_entry = Path(workdir) / "empty-entry.py"
        empty_entry.write_text(EMPTY_ENTRY)
        floor = OrthancServer(
            Path(workdir) / "floor",
            config=COMMON_CONFIG,
            script=empty_entry,
            ready_routes=[EMPTY_ENTRY_ROUTE],
            name="floor",
        )
        server = OrthancServer(
            Path(workdir) / "plugin",
            plugins=["series-private-tags"],
            config={**COMMON_CONFIG, **PLUGIN_CONFIG},
            entry="standalone",
            name="plugin",
        )
        try:
            baseline.start()
            floor.start()
            server.start()
            results["orthanc_version"] = str(server.client.get_json("/system").get("Version", "?"))
            results["ingest"] = compare_ingest(baseline, floor, server, files, arguments)
            baseline.stop()
            floor.stop()
            results["captured"] = count_captured(server.url)
            print("listing ...", flush=True)
            results["listing"] = alternate(
                server, "/series?expand", "/with-private-tags/series", arguments.repeats
            )
            middle = arguments.series // 2
            page = f"since={middle}&limit=100"
            results["page"] = alternate(
                server,
                f"/series?expand&{page}",
                f"/with-private-tags/series?{page}",
                arguments.repeats * 3,
                batch=20,
            )
            results["plugin_status"] = server.client.get_json("/series-private-tags/status")
        finally:
            baseline.stop()
            floor.stop()
            server.stop()
        if arguments.large_series:
            results["large_listing"] = large_listing(Path(workdir) / "large", arguments)
    return results


def large_listing(workdir: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    """The listing comparison over --large-series series of one instance, with Orthanc's memory."""
    files = dataset_files(arguments.large_series, 1, arguments.cache)
    server = OrthancServer(
        workdir,
        config={**COMMON_CONFIG, **PLUGIN_CONFIG},
        script=entry_with_passthrough(workdir / "entry"),
        ready_routes=["/series-private-tags/status", PASSTHROUGH_ROUTE],
        name="large",
    )
    try:
        server.start()
        pid = process_pid(server)  # Orthanc itself, also when it runs chrooted
        print(f"large listing: storing {len(files)} series ...", flush=True)
        rate = ingest(server.url, files, arguments.threads)
        wait_for_backlog(server, len(files), 1800)
        rss_captured = memory_kib(pid, "VmRSS")
        peaks: dict[str, float] = {}
        for route in ("/series?expand", PASSTHROUGH_ROUTE, "/with-private-tags/series"):
            # Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            timed_get(server.url, route)
            peaks[route] = memory_kib(pid, "VmHWM") / 1024
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        listing = alternate(
            server, "/series?expand", "/with-private-tags/series", arguments.large_repeats
        )
        listing.update(
            series=len(files),
            ingest_instances_per_s=rate,
            rss_after_capture_mib=rss_captured / 1024,
            rss_after_listings_mib=memory_kib(pid, "VmRSS") / 1024,
            rss_peak_during_listings_mib=memory_kib(pid, "VmHWM") / 1024,
            rss_peak_per_route_mib=peaks,
            captured=count_captured(server.url),
            passthrough=alternate(
                server, "/series?expand", PASSTHROUGH_ROUTE, arguments.large_repeats
            ),
        )
        return listing
    finally:
        server.stop()


def entry_with_passthrough(folder: Path) -> Path:
    """The plugin's composed entry, plus the passthrough route."""
    output = folder / "__init__.py"
    compose_entry(["series-private-tags"], output, flavours.selected_flavour())
    output.write_text(output.read_text() + PASSTHROUGH)
    return output


def compare_ingest(
    baseline: OrthancServer,
    floor: OrthancServer,
    server: OrthancServer,
    files: Sequence[Path],
    arguments: argparse.Namespace,
) -> dict[str, Any]:
    """Upload the data chunk by chunk to the Orthancs in turn, so that drift hits all alike.

    The order rotates; the plugin's backlog is drained (and timed) after each of its chunks,
    outside the upload timings, so it never slows another side's next chunk. `floor` runs the
    Python plugin with an empty change callback: what any Python plugin following changes costs.
    """
    size = -(-len(files) // arguments.chunks)
    chunks = [files[start : start + size] for start in range(0, len(files), size)]
    seconds = {"baseline": 0.0, "floor": 0.0, "plugin": 0.0}
    ratios: list[float] = []
    floor_ratios: list[float] = []
    backlog = 0.0
    sides = [("baseline", baseline), ("floor", floor), ("plugin", server)]
    for number, chunk in enumerate(chunks):
        rates: dict[str, float] = {}
        shift = number % len(sides)
        for side, target in sides[shift:] + sides[:shift]:
            rates[side] = ingest(target.url, chunk, arguments.threads)
            seconds[side] += len(chunk) / rates[side]
            if side == "plugin":
                backlog += wait_for_backlog(server, len(files[: size * number + len(chunk)]), 600)
        ratios.append(rates["plugin"] / rates["baseline"])
        floor_ratios.append(rates["floor"] / rates["baseline"])
        print(
            f"  chunk {number + 1}/{len(chunks)}: {rates['baseline']:.0f} (no Python plugin),"
            f" {rates['floor']:.0f} (empty callback), {rates['plugin']:.0f} (plugin) inst/s",
            flush=True,
        )
    baseline_rate, plugin_rate = len(files) / seconds["baseline"], len(files) / seconds["plugin"]
    floor_rate = len(files) / seconds["floor"]
    with_backlog = len(files) / (seconds["plugin"] + backlog)
    return {
        "baseline_instances_per_s": baseline_rate,
        "floor_instances_per_s": floor_rate,
        "plugin_instances_per_s": plugin_rate,
        "ratio": plugin_rate / baseline_rate,
        "floor_ratio": floor_rate / baseline_rate,
        # Counting the plugin's catch-up time as ingest time too: the stricter view.
        "plugin_instances_per_s_including_backlog": with_backlog,
        "ratio_including_backlog": with_backlog / baseline_rate,
        "chunk_ratios": ratios,
        "chunk_ratio_median": statistics.median(ratios),
        "chunk_floor_ratios": floor_ratios,
        "chunk_floor_ratio_median": statistics.median(floor_ratios),
        "plugin_backlog_after_upload_s": backlog,
    }


def count_captured(url: str) -> dict[str, int]:
    _, body = timed_get(url, "/with-private-tags/series")
    series_list = json.loads(body)
    complete = sum(1 for series in series_list if len(series["MainPrivateDicomTags"]) == 3)
    return {"series": len(series_list), "with_all_three_tags": complete}


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    checks: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda value, target: value >= target,
        "<=": lambda value, target: value <= target,
    }
    return {
        name: checks[operator](results[name]["ratio"], target)
        for name, (operator, target) in TARGETS.items()
        if name in results
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=2, help="instances per series")
    parser.add_argument("--threads", type=int, default=4, help="concurrent REST uploads")
    parser.add_argument("--repeats", type=int, default=7, help="timed listings per side")
    parser.add_argument(
        "--chunks", type=int, default=10, help="ingest rounds, alternating the two Orthancs"
    )
    parser.add_argument(
        "--large-series", type=int, default=100_000, help="series of the large listing (0: skip)"
    )
    parser.add_argument("--large-repeats", type=int, default=5, help="timed large listings")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "series-private-tags-bench-data",
        help="where the generated DICOM files are kept between runs",
    )
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the READMEs' tables follow"
    )
    arguments = parser.parse_args(argv)
    results = run(arguments)
    results["targets_met"] = verdicts(results)
    print(write("series_private_tags", results, arguments.output))
    return 0 if all(results["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
