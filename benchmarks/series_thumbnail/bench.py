"""Benchmark of GET /series/{id}/thumbnail against Orthanc's /instances/{id}/preview, same run.

A 512x512 CT series of 100 slices is uploaded to a real Orthanc (the integration harness's), then
requests alternate between the baseline (preview of the very instance the thumbnail shows) and
the thumbnail, so that machine noise hits both alike. Three scenarios:

- cached:     the default thumbnail, already rendered (target: p50 <= 0.5 x preview)
- uncached:   every request renders (render cache disabled), choice known (target: <= 1.5 x)
- cold start: the first request after an Orthanc restart (choice read back from metadata)

Writes results.json and results.md into --output and prints the Markdown table.

    .venv/bin/python benchmarks/series_thumbnail/bench.py [--requests 60] [--output DIR]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from pydicom.uid import generate_uid

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.publish_results import write  # noqa: E402
from integration.harness.orthanc import OrthancServer  # noqa: E402
from orthanc_fake.dicom import make_instance  # noqa: E402

SLICES, ROWS = 100, 512
CONFIG: dict[str, Any] = {"UserMetadata": {"ThumbnailInstanceID": 2001}, "StableAge": 1}


def ct_series(slices: int = SLICES, size: int = ROWS) -> list[bytes]:
    """A body-like phantom: air, a noisy soft-tissue ellipse, a bone ring that moves with z."""
    rng = np.random.default_rng(42)
    y, x = np.mgrid[0:size, 0:size]
    cy = cx = size / 2
    study, series = generate_uid(), generate_uid()
    files = []
    for k in range(slices):
        hu = np.full((size, size), -1000.0)
        body = ((x - cx) / (0.42 * size)) ** 2 + ((y - cy) / (0.32 * size)) ** 2 <= 1
        hu[body] = 40 + rng.normal(0, 15, body.sum())
        radius = 0.12 * size * (1 + 0.3 * np.sin(k / 15))
        ring = np.abs(np.hypot(x - cx, y - cy) - radius) < 6
        hu[ring] = 700
        files.append(
            make_instance(
                "BENCH",
                study,
                series,
                SOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                Modality="CT",
                Rows=size,
                Columns=size,
                SamplesPerPixel=1,
                PhotometricInterpretation="MONOCHROME2",
                BitsAllocated=16,
                BitsStored=16,
                HighBit=15,
                PixelRepresentation=1,
                RescaleIntercept=-1024,
                RescaleSlope=1,
                WindowCenter=40,
                WindowWidth=400,
                ImagePositionPatient=[-180.0, -180.0, -200.0 + 2.0 * k],
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                PixelSpacing=[0.7, 0.7],
                InstanceNumber=k + 1,
                PixelData=(hu + 1024).astype(np.int16).tobytes(),
            )
        )
    return files


def timed(call: Callable[[], requests.Response]) -> float:
    started = time.perf_counter()
    answer = call()
    elapsed = time.perf_counter() - started
    if answer.status_code != 200 or not answer.content:
        raise RuntimeError(f"{answer.url}: HTTP {answer.status_code} {answer.text[:200]}")
    return elapsed * 1000.0


def get(url: str) -> Callable[[], requests.Response]:
    return lambda: requests.get(url, timeout=30)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def start(workdir: Path, section: dict[str, Any]) -> OrthancServer:
    config = {**CONFIG, "SeriesThumbnail": section}
    return OrthancServer(
        workdir, plugins=["series-thumbnail"], config=config, entry="standalone"
    ).start()


def prepare(server: OrthancServer, files: list[bytes]) -> tuple[str, str]:
    """Upload, wait until stable and the choice is stored; returns (series, chosen instance)."""
    series_ids = {server.upload_file(data)["ParentSeries"] for data in files}
    (series_id,) = series_ids
    server.wait_stable("series", series_id, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = server.client.get(f"/series/{series_id}/metadata/ThumbnailInstanceID")
        if answer.status_code == 200:
            return series_id, answer.text
        time.sleep(0.1)
    raise RuntimeError("the plugin did not store its choice")


def alternate(
    server: OrthancServer, series_id: str, instance_id: str, count: int, params: dict[str, str]
) -> tuple[list[float], list[float]]:
    http = requests.Session()
    base = server.url

    def preview() -> requests.Response:
        return http.get(f"{base}/instances/{instance_id}/preview", timeout=30)

    def thumbnail() -> requests.Response:
        return http.get(f"{base}/series/{series_id}/thumbnail", params=params, timeout=30)

    for _ in range(3):  # warm up connections and Orthanc's caches alike
        timed(preview), timed(thumbnail)
    baseline, candidate = [], []
    for _ in range(count):
        baseline.append(timed(preview))
        candidate.append(timed(thumbnail))
    return baseline, candidate


def scenario(
    name: str, target: float, baseline: list[float], candidate: list[float]
) -> dict[str, Any]:
    base, cand = summary(baseline), summary(candidate)
    ratio = round(cand["p50_ms"] / base["p50_ms"], 3)
    return {
        "scenario": name,
        "baseline": base,
        "thumbnail": cand,
        "ratio_p50": ratio,
        "target_ratio": target,
        "met": ratio <= target,
    }


def run(requests_per_scenario: int, restarts: int, workdir: Path) -> dict[str, Any]:
    files = ct_series()
    results = []

    cached_server = start(workdir / "cached", {})
    try:
        series_id, instance_id = prepare(cached_server, files)
        baseline, candidate = alternate(
            cached_server, series_id, instance_id, requests_per_scenario, {}
        )
        results.append(scenario("cached (default 256 px JPEG)", 0.5, baseline, candidate))
        # Cold start: the first request after a restart, thumbnail and preview on alternate
        # restarts so that neither pays the other's warm-up.
        cold: dict[str, list[float]] = {"thumbnail": [], "preview": []}
        paths = {
            "thumbnail": f"/series/{series_id}/thumbnail",
            "preview": f"/instances/{instance_id}/preview",
        }
        for _ in range(restarts):
            for side, path in paths.items():
                cached_server.restart()
                cold[side].append(timed(get(cached_server.url + path)))
        results.append(
            scenario(
                "cold start (first request after restart)", 1.5, cold["preview"], cold["thumbnail"]
            )
        )
    finally:
        cached_server.stop()

    uncached_server = start(workdir / "uncached", {"CacheSizeMB": 0, "PrerenderOnStable": False})
    try:
        series_id, instance_id = prepare(uncached_server, files)
        for label, params in (("JPEG", {}), ("PNG", {"format": "png"})):
            baseline, candidate = alternate(
                uncached_server, series_id, instance_id, requests_per_scenario, params
            )
            results.append(
                scenario(f"uncached (256 px {label}, renders each time)", 1.5, baseline, candidate)
            )
    finally:
        uncached_server.stop()

    return {
        "benchmark": "series-thumbnail",
        "series": {"slices": SLICES, "rows": ROWS, "columns": ROWS, "modality": "CT"},
        "baseline": "GET /instances/{chosen}/preview (PNG, full size)",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per scenario and side")
    parser.add_argument("--restarts", type=int, default=3, help="cold starts to time")
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the READMEs' tables follow"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thumbnail-bench-") as workdir:
        report = run(args.requests, args.restarts, Path(workdir))
    print(write("series_thumbnail", report, args.output))
    return 0 if all(r["met"] for r in report["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
