"""Time of the REST calls the plugins make per instance or series, as Orthanc's index grows.

    .venv/bin/python benchmarks/rest_calls/bench.py [--steps 3] [--step 2000]
        [--index sqlite|postgresql]
    HARNESS_FLAVOUR=debian-sid .venv/bin/python benchmarks/rest_calls/bench.py

One Orthanc without plugins; before each step `--step` instances are added (3-instance series),
then each call is timed over 30 requests from the outside (HTTP included, as the plugins' calls
are not): `POST /tools/bulk-content` of 25 instances with their metadata (dicom-events and
series-private-tags, per page), `GET /instances/{id}/tags` (dicom-events, per published stored
event with tags), `GET /series/{id}` (the thumbnail's choice, dicom-events' stable events),
`PUT /series/{id}/metadata/...` (series-private-tags and series-thumbnail, per series),
`GET /changes?limit=100` (dicom-events, per page), and `GET /instances/{id}`, the plainest lookup
of a resource by its identifier. Milliseconds per call, mean of 30.
`--index postgresql` puts Orthanc's index in PostgreSQL (the PostgreSQL index plugin, on the
server HARNESS_POSTGRES names, as the cluster suites do) instead of its built-in SQLite.
Writes results.json to results/ here (results-<flavour>/ for another flavour, with
-postgresql appended for that index).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.bench import upload_rest
from benchmarks.ingest_cost.bench import instances
from benchmarks.publish_results import results_folder, write
from integration.harness import flavours
from integration.harness.cluster import cluster_config
from integration.harness.postgres import open_server
from integration.harness.providers import select_provider

REPEATS = 30


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(REPEATS):
        call()
    return (time.perf_counter() - started) / REPEATS * 1000


def calls(client: Any, ids: list[str]) -> dict[str, float]:
    """Milliseconds per call, for the last of `ids` (and its series)."""
    instance = ids[-1]
    series = client.get_json(f"/instances/{instance}")["ParentSeries"]
    bulk = {"Resources": ids, "Level": "Instance", "Metadata": True}
    metadata = f"/series/{series}/metadata/SeriesPrivateTags"
    return {
        "bulk_content_25": timed(lambda: client.post("/tools/bulk-content", json=bulk)),
        "instance_tags": timed(lambda: client.get(f"/instances/{instance}/tags")),
        "series": timed(lambda: client.get(f"/series/{series}")),
        "put_series_metadata": timed(lambda: client.put(metadata, data=b"x")),
        "changes_100": timed(lambda: client.get("/changes?since=0&limit=100")),
        "instance": timed(lambda: client.get(f"/instances/{instance}")),
    }


def measure_steps(
    provider: Any, temp: Path, config: dict[str, Any], steps: int, step: int
) -> tuple[str, list[dict[str, Any]]]:
    """(Orthanc's version, one row of call times per step)."""
    rows: list[dict[str, Any]] = []
    server = provider.orthanc(temp / "o", config=config, name="rest-calls").start()
    try:
        client = server.client
        version = str(client.get_json("/system").get("Version", "?"))
        stored = 0
        for number in range(steps + 1):
            count = 30 if number == 0 else step
            upload_rest(server, instances(count, 3))
            stored += count
            query = {"Level": "Instance", "Query": {}, "Limit": 25, "Since": stored - 25}
            ids = client.json("POST", "/tools/find", json=query)
            row = {"instances": stored, **calls(client, ids)}
            rows.append(row)
            print(row, flush=True)
    finally:
        server.stop()
    return version, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step", type=int, default=2000, help="instances added per step")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--index", choices=["sqlite", "postgresql"], default="sqlite")
    arguments = parser.parse_args()
    flavour = flavours.selected_flavour()
    provider = select_provider()
    with contextlib.ExitStack() as stack:
        temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rest-calls-")))
        config: dict[str, Any] = {"UserMetadata": {"SeriesPrivateTags": 2000}}
        if arguments.index == "postgresql":
            postgres = open_server()
            stack.callback(postgres.close)
            database = stack.enter_context(postgres.database("rest_calls"))
            config.update(cluster_config(database, temp / "storage"))
        version, rows = measure_steps(provider, temp, config, arguments.steps, arguments.step)
    results = {
        "flavour": flavour,
        "index": arguments.index,
        "orthanc_version": version,
        "repeats": REPEATS,
        "rows": rows,
        "growth": {
            key: rows[-1][key] / statistics.mean([rows[0][key], 1e-9])
            for key in rows[0]
            if key != "instances"
        },
        "command": ("" if flavour == "debian-12" else f"HARNESS_FLAVOUR={flavour} ")
        + "python benchmarks/rest_calls/bench.py "
        + " ".join(sys.argv[1:]),
    }
    variant = "" if arguments.index == "sqlite" else arguments.index
    output = arguments.output or results_folder("rest_calls", flavour, variant)
    print(write("rest_calls", results, output))


if __name__ == "__main__":
    main()
