"""Time of the REST calls the plugins make per instance or series, as Orthanc's index grows.

    .venv/bin/python benchmarks/rest_calls/bench.py [--steps 3] [--step 2000]
    HARNESS_FLAVOUR=debian-sid .venv/bin/python benchmarks/rest_calls/bench.py

One Orthanc without plugins; before each step `--step` instances are added (3-instance series),
then each call is timed over 30 requests from the outside (HTTP included, as the plugins' calls
are not): `POST /tools/bulk-content` of 25 instances with their metadata (dicom-events and
series-private-tags, per page), `GET /instances/{id}/tags` (dicom-events, per published stored
event with tags), `GET /series/{id}` (the thumbnail's choice, dicom-events' stable events),
`PUT /series/{id}/metadata/...` (series-private-tags and series-thumbnail, per series),
`GET /changes?limit=100` (dicom-events, per page). Milliseconds per call, mean of 30.
Writes results.json to results/ here (results-<flavour>/ for another flavour).
"""

from __future__ import annotations

import argparse
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
from benchmarks.publish_results import write
from integration.harness import flavours
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step", type=int, default=2000, help="instances added per step")
    parser.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    flavour = flavours.selected_flavour()
    provider = select_provider()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rest-calls-") as temp:
        config = {"UserMetadata": {"SeriesPrivateTags": 2000}}
        server = provider.orthanc(Path(temp) / "o", config=config, name="rest-calls").start()
        try:
            client = server.client
            version = str(client.get_json("/system").get("Version", "?"))
            stored = 0
            for step in range(arguments.steps + 1):
                count = 30 if step == 0 else arguments.step
                upload_rest(server, instances(count, 3))
                stored += count
                query = {"Level": "Instance", "Query": {}, "Limit": 25, "Since": stored - 25}
                ids = client.json("POST", "/tools/find", json=query)
                row = {"instances": stored, **calls(client, ids)}
                rows.append(row)
                print(row, flush=True)
        finally:
            server.stop()
    results = {
        "flavour": flavour,
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
    output = arguments.output
    if output is None and flavour != "debian-12":
        output = Path(__file__).parent / f"results-{flavour}"
    print(write("rest_calls", results, output))


if __name__ == "__main__":
    main()
