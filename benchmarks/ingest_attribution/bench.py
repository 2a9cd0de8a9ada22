"""Where ingest time goes: REST ingest into Orthancs that differ by one plugin at a time.

    .venv/bin/python benchmarks/ingest_attribution/bench.py [--instances 1000]
        [--rounds 3] [--per-series 100] [--threads 4] [--variants none,empty,...] [--output DIR]

Variants, all running at once and fed in alternating rounds (the machine's drift is larger than
the effects measured): no Python plugin; the Python plugin with an empty change callback only;
each plugin alone; the three composed (every event enabled, RabbitMQ live). Each round uploads
fresh instances; before the next round the variant's Orthanc is left to finish its background
work (its CPU use falls to idle), so one variant's catch-up never slows another's upload.
Reported: per variant, the median over rounds of (its rate / the no-plugin rate of that round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the imports below are relative to the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.bench import (
    ALL_EVENTS,
    EMPTY_ENTRY,
    EMPTY_ENTRY_ROUTE,
    OTHER_PLUGINS_CONFIG,
    PLUGINS,
    instances,
    rabbit_section,
    upload_rest,
)
from benchmarks.publish_results import write
from integration.harness.interfaces import Orthanc, RabbitMQ
from integration.harness.providers import select_provider

IDLE_CPU_SHARE = 0.03  # below this share of one core for 0.5 s, Orthanc counts as settled


def variants(broker: RabbitMQ, workdir: Path) -> dict[str, Callable[[Any, Path], Orthanc]]:
    script = workdir / "empty-entry.py"
    script.write_text(EMPTY_ENTRY)
    events = rabbit_section(broker, "bench-attribution", ALL_EVENTS)
    return {
        "none": lambda p, d: p.orthanc(d),
        "empty": lambda p, d: p.orthanc(d, script=script, ready_routes=[EMPTY_ENTRY_ROUTE]),
        "dicom-events": lambda p, d: p.orthanc(
            d, plugins=["dicom-events"], config={"DicomEvents": events}
        ),
        "series-private-tags": lambda p, d: p.orthanc(
            d, plugins=["series-private-tags"], config=OTHER_PLUGINS_CONFIG
        ),
        "series-thumbnail": lambda p, d: p.orthanc(
            d, plugins=["series-thumbnail"], config=OTHER_PLUGINS_CONFIG
        ),
        "all-three": lambda p, d: p.orthanc(
            d, plugins=PLUGINS, config={**OTHER_PLUGINS_CONFIG, "DicomEvents": events}
        ),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def settle(orthanc: Any, timeout: float = 120.0) -> float:
    """Wait until Orthanc's own CPU use is idle; returns the seconds waited."""
    pid = orthanc._process.pid  # the harness keeps it; only read here
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < IDLE_CPU_SHARE * 0.5:
            break
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-series", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--variants",
        default="none,empty,dicom-events,series-private-tags,series-thumbnail,all-three",
    )
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the READMEs' tables follow"
    )
    args = parser.parse_args()
    wanted = ["none", *[v for v in args.variants.split(",") if v != "none"]]
    provider = select_provider()
    rates: dict[str, list[float]] = {name: [] for name in wanted}
    settled: dict[str, list[float]] = {name: [] for name in wanted}
    with tempfile.TemporaryDirectory(prefix="ingest-attribution-") as temp:
        workdir = Path(temp)
        broker = provider.rabbitmq(workdir / "rabbitmq")
        broker.start()
        servers: dict[str, Any] = {}
        try:
            builders = variants(broker, workdir)
            for name in wanted:
                servers[name] = builders[name](provider, workdir / name).start()
            for name in wanted:
                settle(servers[name])
            for round_number in range(args.rounds):
                # Rotate the order too, so no variant always runs first or last.
                order = wanted[round_number % len(wanted) :] + wanted[: round_number % len(wanted)]
                for name in order:
                    data = instances(args.instances, per_series=args.per_series)
                    rates[name].append(upload_rest(servers[name], data, args.threads))
                    settled[name].append(settle(servers[name]))
                print(json.dumps({n: round(r[-1]) for n, r in rates.items()}), flush=True)
        finally:
            for server in servers.values():
                server.stop()
            broker.close()
    ratios = {
        name: statistics.median(r / b for r, b in zip(rates[name], rates["none"], strict=True))
        for name in wanted
    }
    results = {
        "instances": args.instances,
        "rounds": args.rounds,
        "per_series": args.per_series,
        "threads": args.threads,
        "rates": rates,
        "settle_seconds": settled,
        "median_ratio_to_none": ratios,
    }
    print(write("ingest_attribution", results, args.output))


if __name__ == "__main__":
    main()
