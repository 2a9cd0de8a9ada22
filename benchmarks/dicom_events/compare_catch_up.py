"""The RabbitMQ catch-up of an earlier commit's plugin and of this checkout's, side by side.

    .venv/bin/python benchmarks/dicom_events/compare_catch_up.py --baseline COMMIT [--rounds 3]
        [--changes 20000]

On a machine shared with other work a catch-up's rate moves with the load more than with a
change: rounds of the two versions alternate (ABBA...) against one broker, and the medians are
compared. The baseline's `orthanc_dicom_events` is taken from `git archive` of COMMIT and put
first on Orthanc's PYTHONPATH; each round checks the version Orthanc loaded. Prints one line
per round and the medians; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events import bench
from integration.harness.orthanc import site_packages
from integration.harness.providers import select_provider

ROOT = Path(__file__).resolve().parents[2]
BASELINE_MARK = "+baseline"


def extract_baseline(commit: str, into: Path) -> Path:
    """The package source at `commit`, its version marked so that a round can tell it loaded."""
    archive = subprocess.run(
        ["git", "archive", commit, "packages/dicom-events/src"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    source = into / "packages" / "dicom-events" / "src"
    about = source / "orthanc_dicom_events" / "__about__.py"
    version = about.read_text().split('"')[1]
    about.write_text(f'__version__ = "{version}{BASELINE_MARK}"\n')
    return source


class VersionedProvider:
    """The harness's provider, whose Orthancs load the baseline's package when asked."""

    def __init__(self, provider: Any, baseline: Path) -> None:
        self._provider = provider
        self._baseline = baseline
        self.use_baseline = False

    def orthanc(self, workdir: Path, **options: Any) -> Any:
        if self.use_baseline:
            path = f"{self._baseline}:{site_packages()}"
            options["env"] = {**(options.get("env") or {}), "PYTHONPATH": path}
        return self._provider.orthanc(workdir, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a commit of this repository")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=20000)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"baseline": [], "checkout": []}
    real_drain = bench.drain_times

    def drain_checking_version(orthanc: Any, *more: Any, **options: Any) -> tuple[float, float]:
        version = orthanc.client.get_json("/dicom-events/status")["Version"]
        if version.endswith(BASELINE_MARK) != provider.use_baseline:
            raise SystemExit(f"Orthanc loaded the wrong plugin version: {version}")
        return real_drain(orthanc, *more, **options)

    bench.drain_times = drain_checking_version
    with tempfile.TemporaryDirectory(prefix="dicom-events-compare-") as temp:
        workdir = Path(temp)
        provider = VersionedProvider(select_provider(), extract_baseline(args.baseline, workdir))
        broker = provider.rabbitmq(workdir / "rabbitmq")
        broker.start()
        try:
            for number in range(args.rounds):
                order = ["baseline", "checkout"] if number % 2 == 0 else ["checkout", "baseline"]
                for name in order:
                    provider.use_baseline = name == "baseline"
                    result = bench.bench_catch_up_rabbitmq(
                        provider, broker, workdir / f"{name}-{number}", args.changes
                    )
                    rates[name].append(result["events_per_second"])
                    load = Path("/proc/loadavg").read_text().split()[0]
                    print(name, json.dumps(result), f"load {load}", flush=True)
        finally:
            broker.close()
    for name, values in rates.items():
        listed = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name}: median {statistics.median(values):.0f} events/s ({listed})")


if __name__ == "__main__":
    main()
