"""Benchmark of GET /series/{id}/thumbnail against Orthanc's /instances/{id}/preview, same run.

A 512x512 CT series of 100 slices is uploaded to a real Orthanc (the integration harness's), then
requests alternate between the baseline (preview of the very instance the thumbnail shows) and
the thumbnail, so that machine noise hits both alike. Scenarios:

- cached:     the default thumbnail, already rendered (target: p50 <= 0.2 x preview)
- restart:    the first request after an Orthanc restart, served from the attachment the plugin
              stored when the series became stable (target: <= 0.5 x); each one checked through
              the status route to have rendered nothing
- restart, nothing stored: the same without `UserContentType` (the choice read back from
              metadata, the thumbnail rendered; target: <= 1.5 x)
- uncached:   every request renders (render cache disabled), choice known (target: <= 1.5 x)

Writes results.json and results.md into --output (default: results/ here, results-<flavour>/ on
another HARNESS_FLAVOUR) and prints the Markdown table.

    .venv/bin/python benchmarks/series_thumbnail/bench.py [--requests 60] [--restarts 5] [--output]
    HARNESS_FLAVOUR=debian-sid .venv/bin/python benchmarks/series_thumbnail/bench.py  # Orthanc 1.13
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
from integration.harness import flavours  # noqa: E402
from integration.harness.orthanc import OrthancServer  # noqa: E402
from orthanc_fake.dicom import make_instance  # noqa: E402

SLICES, ROWS = 100, 512
CONFIG: dict[str, Any] = {"UserMetadata": {"ThumbnailInstanceID": 2001}, "StableAge": 1}
STORING: dict[str, Any] = {"UserContentType": {"SeriesThumbnail": 2001}}


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


def start(
    workdir: Path, section: dict[str, Any], extra: dict[str, Any] | None = None
) -> OrthancServer:
    config = {**CONFIG, **(extra or {}), "SeriesThumbnail": section}
    return OrthancServer(
        workdir, plugins=["series-thumbnail"], config=config, entry="standalone"
    ).start()


def prepare(server: OrthancServer, files: list[bytes], stored: bool = False) -> tuple[str, str]:
    """Upload, wait until stable and the choice (and, when `stored`, the thumbnail) is stored;
    returns (series, chosen instance)."""
    series_ids = {server.upload_file(data)["ParentSeries"] for data in files}
    (series_id,) = series_ids
    server.wait_stable("series", series_id, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = server.client.get(f"/series/{series_id}/metadata/ThumbnailInstanceID")
        attachments = server.client.get_json(f"/series/{series_id}/attachments")
        if answer.status_code == 200 and (not stored or "SeriesThumbnail" in attachments):
            return series_id, answer.text
        time.sleep(0.1)
    raise RuntimeError("the plugin did not store its choice")


def versions(server: OrthancServer) -> tuple[str, str]:
    """Orthanc's version and its Python plugin's."""
    system = server.client.get_json("/system")
    plugin = server.client.get("/plugins/python")
    return str(system.get("Version", "?")), (
        str(plugin.json().get("Version", "?")) if plugin.status_code == 200 else "?"
    )


def first_requests_after_restarts(
    server: OrthancServer, series_id: str, instance_id: str, restarts: int, stored: bool
) -> tuple[list[float], list[float]]:
    """The first request after each restart, thumbnail and preview on alternate restarts so that
    neither pays the other's warm-up. With `stored`, each thumbnail must have rendered nothing."""
    cold: dict[str, list[float]] = {"thumbnail": [], "preview": []}
    paths = {
        "thumbnail": f"/series/{series_id}/thumbnail",
        "preview": f"/instances/{instance_id}/preview",
    }
    for _ in range(restarts):
        for side, path in paths.items():
            server.restart()
            cold[side].append(timed(get(server.url + path)))
            if side == "thumbnail" and stored:
                status = server.client.get_json("/series-thumbnail/status")
                if status["Renderings"] != 0 or status["Attachment"]["Loaded"] != 1:
                    raise RuntimeError(f"not served from the stored attachment: {status}")
    return cold["preview"], cold["thumbnail"]


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

    storing_server = start(workdir / "cached", {}, STORING)
    try:
        orthanc_version, plugin_version = versions(storing_server)
        series_id, instance_id = prepare(storing_server, files, stored=True)
        baseline, candidate = alternate(
            storing_server, series_id, instance_id, requests_per_scenario, {}
        )
        results.append(scenario("cached (default 256 px JPEG)", 0.2, baseline, candidate))
        baseline, candidate = first_requests_after_restarts(
            storing_server, series_id, instance_id, restarts, stored=True
        )
        results.append(
            scenario("first request after restart (stored attachment)", 0.5, baseline, candidate)
        )
    finally:
        storing_server.stop()

    uncached_server = start(workdir / "uncached", {"CacheSizeMB": 0, "PrerenderOnStable": False})
    try:
        series_id, instance_id = prepare(uncached_server, files)
        baseline, candidate = first_requests_after_restarts(
            uncached_server, series_id, instance_id, restarts, stored=False
        )
        results.append(
            scenario("first request after restart (nothing stored)", 1.5, baseline, candidate)
        )
        for label, params in (("JPEG", {}), ("PNG", {"format": "png"})):
            baseline, candidate = alternate(
                uncached_server, series_id, instance_id, requests_per_scenario, params
            )
            results.append(
                scenario(f"uncached (256 px {label}, renders each time)", 1.5, baseline, candidate)
            )
    finally:
        uncached_server.stop()

    flavour = flavours.selected_flavour()
    return {
        "benchmark": "series-thumbnail",
        "flavour": flavour,
        "orthanc_version": orthanc_version,
        "python_plugin_version": plugin_version,
        "series": {"slices": SLICES, "rows": ROWS, "columns": ROWS, "modality": "CT"},
        "baseline": "GET /instances/{chosen}/preview (PNG, full size)",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": (f"HARNESS_FLAVOUR={flavour} " if flavour != "debian-12" else "")
        + f"python benchmarks/series_thumbnail/bench.py --requests {requests_per_scenario}"
        f" --restarts {restarts}",
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per scenario and side")
    parser.add_argument("--restarts", type=int, default=5, help="restarts to time, per side")
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
