"""Two Orthanc nodes on one PostgreSQL index against one node, side by side in one run.

    .venv/bin/python benchmarks/cluster/bench.py [--instances 500] [--catch-up 1500]
        [--rounds 3] [--paths rest,cstore] [--output DIR]

Two clusters of the harness (`integration.harness.cluster.OrthancCluster`) run at once, each on
a database of its own of the same PostgreSQL server (127.0.0.1:5432 when it answers, else a
private one: HARNESS_POSTGRES, see `integration/harness/postgres.py`) and one storage folder per
cluster: `1-node` and `2-nodes`. Every node runs the three plugins composed, dicom-events in
cluster mode (`DicomEvents.Cluster`, every event on) publishing to a private RabbitMQ node, the
same `Source` on every node. In each round, in alternating order:

1. ingest: `--instances` fresh instances (series of 100) sent round-robin through the nodes,
   by REST (4 client threads in all) and by C-STORE (4 storescu associations in all), so the
   clients are the same for 1 and 2 nodes. Reported: instances/s, and the CPU time (user +
   system, /proc/<pid>/stat) of the Orthanc processes, summed over the nodes, per 1,000
   instances, read just before the first upload and again once every node is idle after the
   stable age (the stable events and the per-series work included); beside it the CPU of the
   PostgreSQL backends of the cluster's database (pg_stat_activity) in the same window.
2. idle: the CPU the nodes use, summed, over 4 s with nothing sent (the standby's lock
   tries, every node's follow-up of the shared change log), per second.
3. catch-up: the nodes cut off from RabbitMQ by a relay of this script between them and the
   broker (the broker itself keeps running, warm), `--catch-up` instances sent round-robin
   through the nodes, the stable age waited and every node idle again (the other plugins' work
   on the burst done), the relay opened again; then the publishing node (one per cluster) is
   timed from its first publish until its backlog is 0 (`drain_times` of
   benchmarks/dicom_events), and until a consumer has received every event published.

Figures: medians over rounds; ratios 2 nodes / 1 node are the medians of the per-round ratios.
Writes results.json (default: results/ here; then results.md and the README's table are
generated from it by benchmarks/publish_results.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the imports below are relative to the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.dicom_events.bench import (
    ALL_EVENTS,
    CSTORE_PROCESSES,
    NO_NAGLE,
    OTHER_PLUGINS_CONFIG,
    PLUGINS,
    drain_times,
    instances,
    measured_stamp,
    rabbit_section,
)
from benchmarks.ingest_cost.bench import (
    TICK,
    bind_sink,
    cpu_ticks,
    machine_ticks,
    process_pid,
    settle,
    versions,
)
from benchmarks.publish_results import write
from integration.harness import flavours
from integration.harness.cluster import OrthancCluster
from integration.harness.gate import TcpGate
from integration.harness.orthanc import OrthancServer
from integration.harness.postgres import Database, PostgresServer, open_server
from integration.harness.processes import wait_until
from integration.harness.rabbitmq import PrivateRabbitMQNode, consume

STABLE_AGE = 2
CLIENTS = 4  # REST threads, or storescu associations, in all (not per node)
CONFIGURATIONS = {"1-node": 1, "2-nodes": 2}
SOURCE = "orthanc://bench-cluster"


# -- holding the publisher back -------------------------------------------------------------


# -- clusters --------------------------------------------------------------------------------


def exchange_of(name: str) -> str:
    return f"bench-cluster-{name}"


def make_cluster(
    name: str, nodes: int, workdir: Path, database: Database, broker: PrivateRabbitMQNode, url: str
) -> OrthancCluster:
    events = rabbit_section(broker, exchange_of(name), ALL_EVENTS)
    events["Broker"]["RabbitConfig"]["URL"] = url  # through the gate
    return OrthancCluster(
        workdir / name,
        database,
        nodes=nodes,
        plugins=PLUGINS,
        config={
            "StableAge": STABLE_AGE,
            **OTHER_PLUGINS_CONFIG,
            "DicomEvents": {**events, "Source": SOURCE, "Cluster": {"LockPollMs": 1000}},
        },
    )


def role(node: OrthancServer) -> str:
    return str(node.client.get_json("/dicom-events/status")["Cluster"]["Role"])


def publisher(cluster: OrthancCluster) -> OrthancServer:
    def one() -> OrthancServer | None:
        found = [node for node in cluster.nodes if role(node) == "publisher"]
        return found[0] if len(found) == 1 else None

    return wait_until(one, timeout=30, what="exactly one publishing node", interval=0.2)


def published(node: OrthancServer) -> int:
    return int(node.client.get_json("/dicom-events/status")["Broker"]["Published"])


# -- sending ---------------------------------------------------------------------------------


def send_rest(nodes: list[OrthancServer], data: list[bytes]) -> float:
    """Instances per second; instance i goes through node i % len(nodes), CLIENTS threads."""
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda i: nodes[i % len(nodes)].upload_file(data[i]), range(len(data))))
    return len(data) / (time.monotonic() - started)


def send_cstore(nodes: list[OrthancServer], data: list[bytes], workdir: Path) -> float:
    """Instances per second; CLIENTS storescu associations, association i to node i % n."""
    folder = workdir / f"cstore-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    paths = []
    for index, blob in enumerate(data):
        path = folder / f"{index:06d}.dcm"
        path.write_bytes(blob)
        paths.append(str(path))
    batches = [paths[i::CSTORE_PROCESSES] for i in range(CSTORE_PROCESSES)]
    env = {**os.environ, **NO_NAGLE}
    started = time.monotonic()
    running = []
    for index, batch in enumerate(batches):
        node = nodes[index % len(nodes)]
        argv = ["storescu", "-aec", node.aet, "-aet", "BENCH", "127.0.0.1", str(node.dicom_port)]
        running.append(subprocess.Popen([*argv, *batch], env=env))
    failed = [process.args for process in running if process.wait(timeout=600) != 0]
    elapsed = time.monotonic() - started
    if failed:
        raise RuntimeError(f"storescu failed for {len(failed)} association(s)")
    return len(data) / elapsed


# -- measuring -------------------------------------------------------------------------------


def postgres_ticks(database: Database) -> dict[int, int]:
    """CPU ticks of every backend of `database` but the one asking, by PID."""
    connection = database.connect()
    try:
        rows = connection.run(
            "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()",
            name=database.name,
        )
    finally:
        connection.close()
    ticks = {}
    for (pid,) in rows:
        try:
            ticks[int(pid)] = cpu_ticks(int(pid))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile, or not on this machine
    return ticks


def settle_all(pids: list[int]) -> None:
    for pid in pids:
        settle(pid)
    for pid in pids:  # the first may have woken up while the others settled
        settle(pid)


def idle_cpu(cluster: OrthancCluster, seconds: float = 4.0) -> float:
    """CPU ms per second of the idle nodes, summed (lock polls, change-log follow-ups)."""
    pids = [process_pid(node) for node in cluster.nodes]
    settle_all(pids)
    before = sum(cpu_ticks(pid) for pid in pids)
    time.sleep(seconds)
    return (sum(cpu_ticks(pid) for pid in pids) - before) * 1000.0 / TICK / seconds


def measure_ingest(
    cluster: OrthancCluster, database: Database, path: str, data: list[bytes], workdir: Path
) -> dict[str, float]:
    pids = [process_pid(node) for node in cluster.nodes]
    settle_all(pids)
    before = sum(cpu_ticks(pid) for pid in pids)
    pg_before = postgres_ticks(database)
    busy_before, total_before = machine_ticks()
    rate = (
        send_rest(cluster.nodes, data)
        if path == "rest"
        else send_cstore(cluster.nodes, data, workdir)
    )
    time.sleep(STABLE_AGE + 2)  # the stable events and their work come after the stable age
    settle_all(pids)
    ticks = sum(cpu_ticks(pid) for pid in pids) - before
    pg_after = postgres_ticks(database)
    busy_after, total_after = machine_ticks()
    pg = sum(value - pg_before.get(pid, 0) for pid, value in pg_after.items())
    per_1000 = 1000.0 * 1000.0 / TICK / len(data)
    return {
        "rate": rate,
        "cpu_ms_per_1000": ticks * per_1000,
        "postgres_cpu_ms_per_1000": pg * per_1000,
        # Busy CPU of everything else on the machine in this window, as a share of the machine.
        "others_share": ((busy_after - busy_before) - ticks - pg)
        / max(1, total_after - total_before),
    }


def measure_catch_up(
    cluster: OrthancCluster, broker: PrivateRabbitMQNode, gate: TcpGate, name: str, count: int
) -> dict[str, float]:
    node = publisher(cluster)
    with consume(broker.url, exchange_of(name), "#") as collector:
        before = published(node)
        gate.cut()
        send_rest(cluster.nodes, instances(count, per_series=500))
        time.sleep(STABLE_AGE + 2)  # the stable changes are part of the backlog
        # The other plugins' work on the burst (capture, stable series) done first: what is
        # timed is the publisher, not the GIL it would share with them.
        settle_all([process_pid(each) for each in cluster.nodes])
        backlog = int(node.client.get_json("/dicom-events/status")["Broker"]["Backlog"])
        gate.reopen()
        started = time.monotonic()
        reconnect, seconds = drain_times(node, timeout=600, published_before=before)
        events = published(node) - before
        collector.wait_for(events, timeout=300)
        consumed = time.monotonic() - started - reconnect
    return {
        "backlog": backlog,
        "events": events,
        "reconnect_seconds": reconnect,
        "seconds": seconds,
        "events_per_second": events / seconds,
        "consumed_seconds": consumed,
        "consumed_events_per_second": events / consumed,
    }


def server_name(postgres: PostgresServer, database: Database) -> str:
    connection = database.connect()
    try:
        version = connection.run("SHOW server_version")[0][0]
    finally:
        connection.close()
    where = "a private server" if postgres.private else f"{postgres.host}:{postgres.port}"
    return f"PostgreSQL {version.split()[0]} ({where})"


# -- the run ---------------------------------------------------------------------------------


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def summarize(runs: dict[str, list[dict[str, float]]], keys: list[str]) -> dict[str, Any]:
    """Per configuration: each key's values per round and median; per key the 2/1 ratio."""
    summary: dict[str, Any] = {
        name: {key: [run[key] for run in runs[name]] for key in keys} for name in CONFIGURATIONS
    }
    summary["median"] = {
        name: {key: statistics.median(summary[name][key]) for key in keys}
        for name in CONFIGURATIONS
    }
    summary["ratio"] = {
        key: median_ratio(summary["2-nodes"][key], summary["1-node"][key]) for key in keys
    }
    return summary


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    paths = arguments.paths.split(",")
    ingest: dict[str, dict[str, list[dict[str, float]]]] = {
        path: {name: [] for name in CONFIGURATIONS} for path in paths
    }
    catch_up: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGURATIONS}
    idle: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGURATIONS}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    postgres: PostgresServer = open_server()
    databases: dict[str, Database] = {}
    clusters: dict[str, OrthancCluster] = {}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as temp:
        workdir = Path(temp)
        broker = PrivateRabbitMQNode(workdir / "rabbitmq")
        broker.start()
        gate = TcpGate(broker.port)
        try:
            for name, nodes in CONFIGURATIONS.items():
                bind_sink(broker.url, exchange_of(name))
                databases[name] = postgres.create_database("bench_cluster")
                clusters[name] = make_cluster(
                    name, nodes, workdir, databases[name], broker, gate.url(broker.url)
                )
                clusters[name].start()
            server = server_name(postgres, databases["1-node"])
            orthanc_version, plugin_version = versions(clusters["1-node"][0])
            for name in CONFIGURATIONS:
                publisher(clusters[name])
            for round_ in range(arguments.rounds):
                order = list(CONFIGURATIONS)
                if round_ % 2:
                    order.reverse()
                for path in paths:
                    for name in order:
                        data = instances(arguments.instances)
                        sample = measure_ingest(
                            clusters[name], databases[name], path, data, workdir
                        )
                        ingest[path][name].append(sample)
                        print(
                            f"round {round_ + 1} {path} {name}: {sample['rate']:.0f} inst/s,"
                            f" Orthanc {sample['cpu_ms_per_1000']:.0f} CPU ms / 1,000,"
                            f" PostgreSQL {sample['postgres_cpu_ms_per_1000']:.0f},"
                            f" others {sample['others_share']:.0%}",
                            flush=True,
                        )
                for name in order:
                    idle[name].append({"idle_cpu_ms_per_s": idle_cpu(clusters[name])})
                for name in order:
                    entry = measure_catch_up(clusters[name], broker, gate, name, arguments.catch_up)
                    catch_up[name].append(entry)
                    print(
                        f"round {round_ + 1} catch-up {name}: {entry['events']} events,"
                        f" {entry['events_per_second']:.0f} events/s published,"
                        f" {entry['consumed_events_per_second']:.0f} consumed",
                        flush=True,
                    )
        finally:
            for cluster in clusters.values():
                cluster.stop()
            gate.close()
            broker.close()
            for database in databases.values():
                postgres.drop_database(database)
            postgres.close()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    others = [
        sample["others_share"]
        for by_name in ingest.values()
        for samples in by_name.values()
        for sample in samples
    ]
    command = "python benchmarks/cluster/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    flavour = flavours.selected_flavour()
    return {
        "flavour": flavour,
        "orthanc_version": orthanc_version,
        "python_plugin_version": plugin_version,
        "postgresql": server,
        "configurations": CONFIGURATIONS,
        "instances": arguments.instances,
        "catch_up_instances": arguments.catch_up,
        "rounds": arguments.rounds,
        "clients": CLIENTS,
        "stable_age": STABLE_AGE,
        "ingest": {
            path: summarize(
                ingest[path],
                ["rate", "cpu_ms_per_1000", "postgres_cpu_ms_per_1000", "others_share"],
            )
            for path in paths
        },
        "catch_up": summarize(
            catch_up,
            [
                "backlog",
                "events",
                "reconnect_seconds",
                "seconds",
                "events_per_second",
                "consumed_seconds",
                "consumed_events_per_second",
            ],
        ),
        "idle": summarize(idle, ["idle_cpu_ms_per_s"]),
        "machine_load": {
            "cores": os.cpu_count(),
            "before": " ".join(load_before),
            "after": " ".join(load_after),
            "others_cpu_share": f"median {statistics.median(others):.0%}, max {max(others):.0%}",
        },
        "measured": measured_stamp(),
        "command": (f"HARNESS_FLAVOUR={flavour} " if flavour != "debian-12" else "")
        + command.strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500, help="per configuration and path")
    parser.add_argument("--catch-up", type=int, default=1500, help="instances in the backlog")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paths", default="rest,cstore")
    parser.add_argument(
        "--output", type=Path, help="default: results/ here, and the README's table follows"
    )
    arguments = parser.parse_args()
    print(write("cluster", run(arguments), arguments.output))


if __name__ == "__main__":
    main()
