"""Every published benchmark figure comes from one file: the benchmark's `results/results.json`.

    .venv/bin/python benchmarks/publish_results.py           # write results.md and README blocks
    .venv/bin/python benchmarks/publish_results.py --check   # exit 1 if any of them is stale

From each `benchmarks/<name>/results*/results.json` (`results-debian-sid/` for a run on another
Orthanc, say) this writes `results.md` beside it, and it rewrites every block of a Markdown file
of the repository that starts with

    <!-- generated from benchmarks/<name>/results/results.json by benchmarks/publish_results.py -->

and ends with `<!-- end of generated figures -->`. Each benchmark calls `publish()` after writing
its `results.json`; CI runs `--check`, so a table that differs from its results file fails.
Nothing between the markers is typed by hand: edit the renderer below, or run the benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
END = "<!-- end of generated figures -->"
BEGIN = re.compile(
    r"<!-- generated from (?P<source>benchmarks/(?P<name>[a-z_]+)/(?P<folder>results[a-z0-9-]*)"
    r"/results\.json)"
    r" by benchmarks/publish_results\.py -->\n"
)
# Markdown files that may hold generated blocks (others are left alone).
DOCUMENTS = ["README.md", "packages/*/README.md", "benchmarks/*/README.md", "tools/*/README.md"]

Renderer = Callable[[dict[str, Any]], str]

# -- targets: the benchmarks import them from here, so a verdict and its table never disagree ----

SERIES_PRIVATE_TAGS_TARGETS: dict[str, tuple[str, float]] = {
    "ingest": (">=", 0.95),
    "listing": ("<=", 1.1),
    "page": ("<=", 1.3),
    "large_listing": ("<=", 1.1),
}
DICOM_EVENTS_TARGETS = {
    "ingest": 0.95,  # ratio of rates, three plugins / no Python plugin (secondary figure)
    "catch_up_rabbitmq_events_per_second": 10_000.0,
    "catch_up_rabbitmq_total_seconds": 5.0,  # broker back -> backlog published, reconnect included
    "catch_up_sns_events_per_second": 2_000.0,
    "latency_p99_ms": 100.0,
}
# Orthanc CPU per instance, three plugins / empty-callback floor (see benchmarks/ingest_cost).
INGEST_COST_TARGETS = {
    ("seed", "long"): 1.10,
    ("seed", "short"): 1.30,
    ("all-events", "long"): 1.20,
}


def meets(value: float, operator: str, target: float) -> bool:
    return value >= target if operator == ">=" else value <= target


def yes_no(flag: bool) -> str:
    return "yes" if flag else "NO"


# -- renderers: results.json -> Markdown ---------------------------------------------------------


def render_dicom_events(results: dict[str, Any]) -> str:
    targets = DICOM_EVENTS_TARGETS
    lines = ["| benchmark | figure | target | met |", "|---|---|---|---|"]
    ingest = results.get("ingest")
    if ingest:
        rounds = ingest["rounds"]
        for kind in ("rest", "cstore"):
            base = ingest["no-python-plugin"][kind]
            plugged = ingest["three-plugins-all-events"][kind]
            ratio = ingest["ratio"][kind]
            lines.append(
                f"| ingest {kind}, three plugins / no Python plugin (rates) | {base:.0f} ->"
                f" {plugged:.0f} inst/s, ratio {ratio:.2f} (median of {rounds} rounds) |"
                f" >= {targets['ingest']} | {yes_no(ratio >= targets['ingest'])} |"
            )
            if "ratio_empty_callback" in ingest:
                empty = ingest["python-plugin-empty-callback"][kind]
                lines.append(
                    f"| ingest {kind}, floor: Python plugin with an empty change callback |"
                    f" {base:.0f} -> {empty:.0f} inst/s, ratio"
                    f" {ingest['ratio_empty_callback'][kind]:.2f}; three plugins / empty callback"
                    f" {ingest['ratio_to_empty_callback'][kind]:.2f} | reported | |"
                )
    for key in sorted(k for k in results if k.startswith("catch_up")):
        entry = results[key]
        rabbit = key == "catch_up_rabbitmq"
        label = "RabbitMQ" if rabbit else f"SNS ({entry.get('emulator', '?')})"
        rate = entry["events_per_second"]
        target = targets[
            "catch_up_rabbitmq_events_per_second" if rabbit else "catch_up_sns_events_per_second"
        ]
        lines.append(
            f"| catch-up {label} | {entry['changes']} changes in {entry['seconds']:.1f} s ="
            f" {rate:.0f} events/s | >= {target:.0f} events/s | {yes_no(rate >= target)} |"
        )
        if rabbit:
            total = entry["reconnect_seconds"] + entry["seconds"]
            lines.append(
                f"| RabbitMQ back -> backlog published | first publish"
                f" {entry['reconnect_seconds']:.1f} s after the return, all {total:.1f} s |"
                f" <= {targets['catch_up_rabbitmq_total_seconds']:.0f} s |"
                f" {yes_no(total <= targets['catch_up_rabbitmq_total_seconds'])} |"
            )
    if "latency" in results:
        entry = results["latency"]
        lines.append(
            f"| stored -> consumer latency, {entry['rate_per_second']:.0f} inst/s x"
            f" {entry['instances']} | p50 {entry['p50_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms |"
            f" p99 <= {targets['latency_p99_ms']:.0f} ms |"
            f" {yes_no(entry['p99_ms'] <= targets['latency_p99_ms'])} |"
        )
    if results.get("note"):
        lines += ["", str(results["note"])]
    stamps = [
        f"{key} {entry['measured']['at']} (commit {entry['measured']['commit']}, load average"
        f" {entry['measured']['load_average']} on {entry['measured']['cores']} cores)"
        for key, entry in results.items()
        if isinstance(entry, dict) and isinstance(entry.get("measured"), dict)
    ]
    undated = [
        key
        for key, entry in results.items()
        if isinstance(entry, dict) and not isinstance(entry.get("measured"), dict)
    ]
    if undated:
        stamps.append(f"{', '.join(undated)} in an earlier run that recorded no date")
    if stamps:
        lines += ["", "Measured: " + "; ".join(stamps) + "."]
    return "\n".join(lines) + "\n"


def render_series_private_tags(results: dict[str, Any]) -> str:
    ingest_figures, listing, page = results["ingest"], results["listing"], results["page"]
    rows = [
        (
            f"ingest ({results['instances']} instances, {results['threads']} REST clients)",
            f"{ingest_figures['baseline_instances_per_s']:.0f} inst/s (no Python plugin)",
            f"{ingest_figures['plugin_instances_per_s']:.0f} inst/s",
            ingest_figures["ratio"],
            "ingest",
        ),
        (
            f"`GET /with-private-tags/series` vs `GET /series?expand` ({results['series']} series)",
            *_listing_times(listing, 0),
            listing["ratio"],
            "listing",
        ),
        (
            "page of 100 (`since`/`limit`) vs Orthanc's page",
            *_listing_times(page, 1),
            page["ratio"],
            "page",
        ),
    ]
    large = results.get("large_listing")
    if large is not None:
        rows.append(
            (
                f"the same listing over {large['series']} series",
                *_listing_times(large, 0),
                large["ratio"],
                "large_listing",
            )
        )
    lines = []
    if "flavour" in results:
        lines += [f"{results['flavour']}: Orthanc {results.get('orthanc_version', '?')}.", ""]
    lines += [
        "| comparison | Orthanc (CPU / wall) | plugin (CPU / wall) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for label, base, candidate, ratio, key in rows:
        operator, target = SERIES_PRIVATE_TAGS_TARGETS[key]
        met = yes_no(meets(ratio, operator, target))
        lines.append(
            f"| {label} | {base} | {candidate} | {ratio:.2f} | {operator} {target} | {met} |"
        )
    lines.append("")
    backlog = ingest_figures["plugin_backlog_after_upload_s"]
    captured = results["captured"]
    lines.append(
        f"Ingest in {results['chunks']} alternating rounds; median of the per-round ratios:"
        f" {ingest_figures['chunk_ratio_median']:.2f}. Plugin backlog after its uploads:"
        f" {backlog:.1f} s in all; counted as ingest time, the ratio would be"
        f" {ingest_figures['ratio_including_backlog']:.2f}. Series listed with all three tags:"
        f" {captured['with_all_three_tags']} of {captured['series']}."
    )
    if "floor_ratio" in ingest_figures:
        lines.append("")
        lines.append(
            "Floor: an Orthanc whose Python plugin only registers an empty change callback,"
            f" in the same rounds: {ingest_figures['floor_instances_per_s']:.0f} inst/s, ratio"
            f" {ingest_figures['floor_ratio']:.2f} (median of the per-round ratios"
            f" {ingest_figures['chunk_floor_ratio_median']:.2f})."
        )
    lines.append("")
    lines.append(
        "Listings: Orthanc's CPU time per request (its process: Orthanc's work and the"
        " plugin's), median of alternating requests, wall time after the slash; the ratio is"
        " the CPU one."
    )
    for name, figures in (("Listing", listing), ("Large listing", large)):
        if figures is None:
            continue
        pairs = [
            c / b
            for b, c in zip(
                figures["baseline_cpu_runs_s"], figures["candidate_cpu_runs_s"], strict=True
            )
            if b > 0  # below one clock tick: no ratio
        ] or [figures["ratio"]]
        lines.append("")
        lines.append(
            f"{name}: {len(pairs)} alternating pairs; CPU ratio of medians {figures['ratio']:.2f},"
            f" per pair {min(pairs):.2f} to {max(pairs):.2f}; wall-time ratio of medians"
            f" {figures['wall_ratio']:.2f}."
        )
    if large is not None:
        passthrough = large["passthrough"]
        peaks = large["rss_peak_per_route_mib"]
        lines.append("")
        lines.append(
            "The floor of any Python plugin route serving that listing, one that asks Orthanc for"
            " `/series?expand` (`RestApiGet`) and answers the same bytes (`AnswerBuffer`):"
            f" {passthrough['candidate_cpu_median_s'] * 1000:.0f} /"
            f" {passthrough['candidate_median_s'] * 1000:.0f} ms, CPU ratio"
            f" {passthrough['ratio']:.2f} (wall {passthrough['wall_ratio']:.2f}); the plugin's"
            " own work is what its route costs beyond that."
        )
        lines.append("")
        lines.append(
            f"Memory of the Orthanc holding {large['series']} series, the plugin's mirror"
            f" included: {large['rss_after_capture_mib']:.0f} MiB once every series was captured;"
            " peak during one request of"
            f" `/series?expand` {peaks['/series?expand']:.0f} MiB, of the passthrough"
            f" {peaks['/benchmark/passthrough']:.0f} MiB, of the plugin's listing"
            f" {peaks['/with-private-tags/series']:.0f} MiB;"
            f" {large['rss_after_listings_mib']:.0f} MiB after the timed listings (VmRSS / VmHWM)."
            f" Series listed with all three tags: {large['captured']['with_all_three_tags']} of"
            f" {large['captured']['series']}."
        )
    return "\n".join(lines) + "\n"


def _listing_times(figures: dict[str, Any], digits: int) -> tuple[str, str]:
    """(Orthanc's route, the plugin's) as "CPU / wall" milliseconds."""

    def times(side: str) -> str:
        cpu, wall = figures[f"{side}_cpu_median_s"], figures[f"{side}_median_s"]
        return f"{cpu * 1000:.{digits}f} / {wall * 1000:.{digits}f} ms"

    return times("baseline"), times("candidate")


def render_series_thumbnail(report: dict[str, Any]) -> str:
    versions = ""
    if "flavour" in report:
        versions = (
            f"{report['flavour']}: Orthanc {report['orthanc_version']}, Python plugin"
            f" {report['python_plugin_version']}. "
        )
    lines = [
        f"{versions}Run of {report['timestamp']}, baseline {report['baseline']}.",
        "",
        "| scenario | preview p50 (ms) | thumbnail p50 (ms) | ratio | target | met |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['scenario']} | {row['baseline']['p50_ms']} | {row['thumbnail']['p50_ms']}"
            f" | {row['ratio_p50']} | <= {row['target_ratio']} | {yes_no(row['met'])} |"
        )
    if "command" in report:
        lines += ["", f"Medians; `{report['command']}`."]
    return "\n".join(lines) + "\n"


def render_ingest_attribution(results: dict[str, Any]) -> str:
    rates, ratios, settled = (
        results["rates"],
        results["median_ratio_to_none"],
        results["settle_seconds"],
    )
    lines = [
        f"REST ingest, {results['instances']} instances x {results['rounds']} alternating rounds,"
        f" {results['per_series']} per series, {results['threads']} clients.",
        "",
        "| variant | median inst/s | median ratio to no plugin | settle after upload (s) |",
        "|---|---|---|---|",
    ]
    for name in rates:
        lines.append(
            f"| {name} | {statistics.median(rates[name]):.0f} | {ratios[name]:.3f} |"
            f" {statistics.median(settled[name]):.1f} |"
        )
    return "\n".join(lines) + "\n"


def render_ingest_cost(results: dict[str, Any]) -> str:
    """CPU (and instructions) of the Orthanc process per stored instance, per configuration."""
    configurations: list[str] = results["configurations"]
    floor = results["floor"]
    labels: dict[str, str] = results.get("labels", {})
    lines = [
        f"{results['flavour']}: Orthanc {results.get('orthanc_version', '?')}, Python plugin"
        f" {results.get('python_plugin_version', '?')}. {results['instances']} fresh instances"
        f" per configuration, path and shape in each of {results['rounds']} rounds; medians"
        f" (min-max over rounds); ratios are per round against the floor"
        f" ({labels.get(floor, floor)}) measured in the same round, then the median.",
        "",
    ]
    instructions = results.get("instructions_available", False)
    header = "| path | series of | configuration | CPU ms / 1,000 inst | ratio to floor |"
    separator = "|---|---|---|---|---|"
    if instructions:
        header += " instructions / inst (M) | ratio to floor |"
        separator += "---|---|"
    header += " rate inst/s | target | met |"
    separator += "---|---|---|"
    lines += [header, separator]
    for path in results["paths"]:
        for shape, per_series in results["shapes"].items():
            for name in configurations:
                cell = results["cells"][path][shape][name]
                cpu = cell["cpu_ms_per_1000"]
                row = (
                    f"| {path} | {per_series} | {labels.get(name, name)} |"
                    f" {statistics.median(cpu):.0f} ({min(cpu):.0f}-{max(cpu):.0f}) |"
                    f" {cell['cpu_ratio_to_floor']:.2f} |"
                )
                if instructions:
                    counts = [value / 1e6 for value in cell.get("instructions_per_instance", [])]
                    row += (
                        f" {statistics.median(counts):.1f} ({min(counts):.1f}-{max(counts):.1f}) |"
                        f" {cell['instructions_ratio_to_floor']:.2f} |"
                        if counts
                        else " - | - |"
                    )
                target = INGEST_COST_TARGETS.get((name, shape))
                met = "" if target is None else yes_no(cell["cpu_ratio_to_floor"] <= target)
                row += (
                    f" {statistics.median(cell['rate']):.0f} |"
                    f" {'' if target is None else f'<= {target:.2f}'} | {met} |"
                )
                lines.append(row)
    lines.append("")
    if not instructions:
        lines.append(f"Instructions: not measured ({results.get('instructions_note', 'perf')}).")
        lines.append("")
    load = results.get("machine_load", {})
    if load:
        lines.append(
            f"Machine: {load.get('cores', '?')} cores; load average {load.get('before', '?')}"
            f" before and {load.get('after', '?')} after the run; busy CPU of every other process"
            f" (the upload clients and RabbitMQ included) during the measured windows:"
            f" {load.get('others_cpu_share', '?')} of the machine."
        )
        lines.append("")
    lines.append(f"Command: `{results['command']}`")
    return "\n".join(lines) + "\n"


def render_cluster(results: dict[str, Any]) -> str:
    """Two Orthanc nodes on one PostgreSQL index against one node, measured side by side."""
    labels = {"rest": "REST", "cstore": "C-STORE"}
    lines = [
        f"{results['flavour']}: Orthanc {results['orthanc_version']}, Python plugin"
        f" {results['python_plugin_version']}, {results['postgresql']}; the three plugins on"
        f" every node, dicom-events in cluster mode with every event on (RabbitMQ). Medians of"
        f" {results['rounds']} alternating rounds (min-max); the ratio is the median of the"
        f" per-round ratios, 2 nodes / 1 node.",
        "",
        "| figure | 1 node | 2 nodes | 2 nodes / 1 node |",
        "|---|---|---|---|",
    ]

    def row(label: str, section: dict[str, Any], key: str, digits: int = 0) -> str:
        cells = []
        for name in ("1-node", "2-nodes"):
            values = section[name][key]
            cells.append(
                f"{statistics.median(values):.{digits}f}"
                f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
            )
        return f"| {label} | {cells[0]} | {cells[1]} | {section['ratio'][key]:.2f} |"

    for path, section in results["ingest"].items():
        kind = f"ingest {labels.get(path, path)}, {results['instances']} instances round-robin"
        lines += [
            row(f"{kind}: inst/s", section, "rate"),
            row(f"{kind}: Orthanc CPU ms / 1,000 inst (all nodes)", section, "cpu_ms_per_1000"),
            row(f"{kind}: PostgreSQL CPU ms / 1,000 inst", section, "postgres_cpu_ms_per_1000"),
        ]
    if "idle" in results:
        lines.append(
            row("idle nodes: Orthanc CPU ms / s (all nodes)", results["idle"], "idle_cpu_ms_per_s")
        )
    catch_up = results["catch_up"]
    events = statistics.median(catch_up["1-node"]["events"] + catch_up["2-nodes"]["events"])
    lines += [
        row(f"catch-up of {events:.0f} events: published events/s", catch_up, "events_per_second"),
        row("catch-up: consumed events/s", catch_up, "consumed_events_per_second"),
    ]
    load = results["machine_load"]
    measured = results["measured"]
    lines += [
        "",
        f"Ingest: {results['clients']} clients in all (REST threads or storescu associations),"
        f" instance or association i through node i mod n; CPU from the first upload until every"
        f" node is idle after the stable age ({results['stable_age']} s). Catch-up: the nodes"
        f" cut off from RabbitMQ (the broker kept running) while"
        f" {results['catch_up_instances']} instances are stored round-robin and until every"
        f" node is idle again, then the publishing node timed from its first publish until its"
        f" backlog is 0, and until a consumer has every event.",
        "",
        f"Machine: {load['cores']} cores, load average {load['before']} before and"
        f" {load['after']} after; busy CPU of every other process (the clients, RabbitMQ and other"
        f" work on the machine) during the ingest windows:"
        f" {load['others_cpu_share']} of the machine. Measured {measured['at']} at commit"
        f" {measured['commit']}: `{results['command']}`.",
    ]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Renderer] = {
    "dicom_events": render_dicom_events,
    "series_private_tags": render_series_private_tags,
    "series_thumbnail": render_series_thumbnail,
    "ingest_attribution": render_ingest_attribution,
    "ingest_cost": render_ingest_cost,
    "cluster": render_cluster,
}
TITLES = {
    "dicom_events": "orthanc-dicom-events benchmark",
    "series_private_tags": "series-private-tags benchmark",
    "series_thumbnail": "series-thumbnail benchmark",
    "ingest_attribution": "Where ingest time goes",
    "ingest_cost": "Orthanc CPU per stored instance",
    "cluster": "Two Orthanc nodes on one PostgreSQL against one",
}
HEADER = "<!-- generated from results.json by benchmarks/publish_results.py: do not edit -->\n"


def results_file(name: str, folder: str = "results") -> Path:
    return BENCHMARKS / name / folder / "results.json"


def results_folder(name: str, flavour: str = "debian-12", variant: str = "") -> Path:
    """Where a benchmark's run on `flavour` (and a `variant` of its set-up) keeps its results:
    results/ for debian-12's default set-up, results-<flavour>[-<variant>]/ otherwise, so that
    no run overwrites another flavour's figures."""
    if flavour == "debian-12" and not variant:
        return BENCHMARKS / name / "results"
    return BENCHMARKS / name / ("-".join(["results", flavour, *([variant] if variant else [])]))


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def results_markdown(name: str, results: dict[str, Any]) -> str:
    return f"{HEADER}# {TITLES[name]}\n\n{RENDERERS[name](results)}"


def with_blocks(text: str, document: Path) -> str:
    """`text` with every generated block rendered again from its results file."""
    out: list[str] = []
    position = 0
    for match in BEGIN.finditer(text):
        if match.start() < position:
            continue
        end = text.find(END, match.end())
        if end < 0:
            raise SystemExit(f"{document}: a generated block has no '{END}'")
        name = match.group("name")
        source = results_file(name, match.group("folder"))
        if name not in RENDERERS:
            raise SystemExit(f"{document}: no renderer for benchmarks/{name}")
        if not source.is_file():
            raise SystemExit(f"{document}: {match.group('source')} does not exist")
        out += [text[position : match.end()], RENDERERS[name](load(source))]
        position = end
    out.append(text[position:])
    return "".join(out)


def targets() -> dict[Path, str]:
    """Every generated file and its expected content."""
    expected: dict[Path, str] = {}
    for name in RENDERERS:
        for source in sorted((BENCHMARKS / name).glob("results*/results.json")):
            expected[source.with_name("results.md")] = results_markdown(name, load(source))
    for pattern in DOCUMENTS:
        for document in sorted(ROOT.glob(pattern)):
            text = document.read_text()
            if BEGIN.search(text):
                expected[document] = with_blocks(text, document)
    return expected


def publish(check: bool = False) -> list[Path]:
    """Write (or, with check, only compare) every generated file; returns those that differed."""
    stale = []
    for path, content in targets().items():
        if not path.is_file() or path.read_text() != content:
            stale.append(path)
            if not check:
                path.write_text(content)
    return stale


def write(name: str, results: dict[str, Any], output: Path | None = None) -> str:
    """Save a benchmark's results (by default in its flavour's folder, see `results_folder`);
    into one of its own results*/ folders, every file generated from it follows. Returns the
    rendered Markdown."""
    folder = (output or results_folder(name, results.get("flavour", "debian-12"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if folder.parent == BENCHMARKS / name and folder.name.startswith("results"):
        publish()
    else:
        (folder / "results.md").write_text(results_markdown(name, results))
    return RENDERERS[name](results)


def render_rest_calls(results: dict[str, Any]) -> str:
    """Milliseconds per REST call as Orthanc's index grows (benchmarks/rest_calls)."""
    names = {
        "bulk_content_25": "`POST /tools/bulk-content`, 25 instances",
        "instance_tags": "`GET /instances/{id}/tags`",
        "series": "`GET /series/{id}`",
        "put_series_metadata": "`PUT /series/{id}/metadata/...`",
        "changes_100": "`GET /changes?limit=100`",
        "instance": "`GET /instances/{id}`",
    }
    rows = results["rows"]
    index = {"postgresql": "PostgreSQL (its index plugin)"}.get(results.get("index", ""), "SQLite")
    lines = [
        f"{results['flavour']}: Orthanc {results['orthanc_version']}, index in {index}, ms per"
        f" call (mean of {results['repeats']}, HTTP included) with this many instances stored.",
        "",
        "| call | " + " | ".join(f"{row['instances']:,}" for row in rows) + " | last / first |",
        "|---|" + "---|" * (len(rows) + 1),
    ]
    for key, label in names.items():
        if key not in rows[0]:
            continue  # a call measured only by later runs
        cells = " | ".join(f"{row[key]:.2f}" for row in rows)
        lines.append(f"| {label} | {cells} | {rows[-1][key] / rows[0][key]:.1f} |")
    lines += ["", f"Command: `{results['command'].strip()}`"]
    return "\n".join(lines) + "\n"


RENDERERS["rest_calls"] = render_rest_calls
TITLES["rest_calls"] = "REST calls as Orthanc's index grows"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file is out of date"
    )
    arguments = parser.parse_args(argv)
    stale = publish(check=arguments.check)
    for path in stale:
        verb = "differs from its results file" if arguments.check else "written"
        print(f"{path.relative_to(ROOT)}: {verb}", file=sys.stderr if arguments.check else None)
    if arguments.check and stale:
        print("run: python benchmarks/publish_results.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
