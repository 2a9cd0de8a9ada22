"""Where the plugins' CPU goes while Orthanc stores: py-spy samples Orthanc during one cell of
the ingest-cost benchmark.

    .venv/bin/python benchmarks/ingest_cost/profile_ingest.py [--configuration seed|all-events]
        [--path rest|cstore] [--shape short|long] [--instances 600] [--output DIR]

The Orthanc, the data and the measurement are bench.py's (one configuration, one path, one
series shape), with `py-spy record` attached for the upload and the stable events after it
(`pip install py-spy`). The plugins run in Orthanc's embedded Python, so the time Orthanc spends
answering a plugin's REST call shows under the Python line that made it; Orthanc's own threads
(HTTP, DICOM, the index) are not sampled, and the CPU per 1,000 instances printed first covers
everything. Samples that wait are left out of the summary; the raw samples are kept in --output.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.profile_catch_up import start_py_spy, summarise
from benchmarks.ingest_cost.bench import SHAPES, builders, instances, measure, process_pid
from integration.harness.providers import select_provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configuration", choices=["seed", "all-events"], default="seed")
    parser.add_argument("--path", choices=["rest", "cstore"], default="rest")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="short")
    parser.add_argument("--instances", type=int, default=600)
    parser.add_argument("--output", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    name = f"ingest-{args.configuration}-{args.path}-{args.shape}-{time.strftime('%H%M%S')}"
    output = args.output / f"{name}.txt"
    provider = select_provider()
    with tempfile.TemporaryDirectory(prefix="ingest-profile-") as temp:
        workdir = Path(temp)
        broker = provider.rabbitmq(workdir / "rabbitmq")
        broker.start()
        try:
            build = builders(broker, workdir)[args.configuration]
            orthanc = build(provider, workdir / f"cost-{args.configuration}").start()
            try:
                per_series = SHAPES[args.shape]
                # A first round warms Orthanc and the plugins up, as the benchmark's rounds do.
                measure(orthanc, args.path, instances(60, per_series), workdir, False)
                spy = start_py_spy(process_pid(orthanc), output)
                time.sleep(1.0)  # py-spy attaches
                data = instances(args.instances, per_series)
                sample = measure(orthanc, args.path, data, workdir, False)
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            finally:
                orthanc.stop()
        finally:
            broker.close()
    print(f"{args.configuration}, {args.path}, series of {SHAPES[args.shape]}:")
    cpu, rate = sample["cpu_ms_per_1000"], sample["rate"]
    print(f"  {cpu:.0f} CPU ms / 1,000 instances, {rate:.0f} inst/s")
    if output.exists():
        summarise(output, top=30, marker="orthanc_", busy_only=True)
    print(f"samples: {output}")


if __name__ == "__main__":
    main()
