"""orthanc-dicom-events on several Orthanc nodes sharing one PostgreSQL index, a real RabbitMQ.

One node publishes the shared change log at a time (a PostgreSQL advisory lock); every node
publishes the deletions it saw. Instances go round-robin through all nodes, by C-STORE and REST.
"""

from __future__ import annotations

import collections
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from integration.conftest import ClusterFactory
from integration.harness.cluster import OrthancCluster
from integration.harness.interfaces import RabbitMQ
from integration.harness.orthanc import OrthancServer
from integration.harness.processes import wait_until
from integration.harness.rabbitmq import EventCollector, ReceivedMessage, consume
from orthanc_fake.dicom import make_instance
from orthanc_fake.identifiers import orthanc_id

pytestmark = pytest.mark.e2e

EVENTS: dict[str, Any] = {
    "StoredInstance": True,
    "StableSeries": True,
    "StableStudy": True,
    "StablePatient": True,
    "DeletedInstance": True,
    "DeletedSeries": True,
    "DeletedStudy": True,
    "DeletedPatient": True,
}
SOURCE = "orthanc://cluster"


def cluster_config(url: str, exchange: str) -> dict[str, Any]:
    return {
        # One machine, one clock: no tolerance, so a node's stable change made while another
        # node still receives instances of the resource less than 5 s apart is never published
        # (with 3 s, a sender stalled that long on a loaded machine made a real second quiet
        # period, and so a second stable event, about once in four runs).
        "StableAge": 5,
        "DicomEvents": {
            "Events": EVENTS,
            "Broker": {"Type": "rabbitmq", "RabbitConfig": {"URL": url, "Exchange": exchange}},
            "Source": SOURCE,  # the same on every node: events are the same whoever publishes
            "Cluster": {"ClockToleranceSeconds": 0},  # LockPollMs: the default, 1000
            "ShutdownFlushSeconds": 3,
        },
    }


def status(node: OrthancServer) -> dict[str, Any]:
    answer: dict[str, Any] = node.client.get_json("/dicom-events/status")
    return answer


def publishers(nodes: Sequence[OrthancServer]) -> list[OrthancServer]:
    return [node for node in nodes if status(node)["Cluster"]["Role"] == "publisher"]


def the_publisher(nodes: Sequence[OrthancServer], timeout: float = 15.0) -> OrthancServer:
    def one() -> OrthancServer | None:
        found = publishers(nodes)
        return found[0] if len(found) == 1 else None

    return wait_until(one, timeout=timeout, what="exactly one publishing node", interval=0.1)


@dataclass
class Workload:
    """Instances of new patients (one study each, `series` series), written as files."""

    folder: Path
    studies: int
    series: int
    per_series: int
    files: list[Path] = field(default_factory=list)
    instances: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> ancestors
    study_of_file: dict[Path, str] = field(default_factory=dict)

    def make(self) -> Workload:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(self.studies):
            patient, study = f"CL-{uuid.uuid4().hex[:10]}", generate_uid()
            patient_id = orthanc_id(patient)
            study_id = orthanc_id(patient, study)
            for _ in range(self.series):
                series = generate_uid()
                series_id = orthanc_id(patient, study, series)
                for number in range(self.per_series):
                    sop = generate_uid()
                    path = self.folder / f"{len(self.files):05d}.dcm"
                    path.write_bytes(
                        make_instance(
                            patient_id=patient,
                            study_uid=study,
                            series_uid=series,
                            sop_uid=sop,
                            InstanceNumber=number + 1,
                        )
                    )
                    self.files.append(path)
                    self.instances[orthanc_id(patient, study, series, sop)] = (
                        series_id,
                        study_id,
                        patient_id,
                    )
                    self.study_of_file[path] = study_id
        return self

    def ids(self, level: int) -> set[str]:
        """0: series, 1: studies, 2: patients."""
        return {ancestors[level] for ancestors in self.instances.values()}


def send_round_robin(
    nodes: Sequence[OrthancServer], files: Sequence[Path], chunk: int = 10
) -> None:
    """File i goes through node i % n: even nodes by C-STORE, odd ones by REST, all at once."""
    shares: dict[int, list[Path]] = collections.defaultdict(list)
    for index, path in enumerate(files):
        shares[index % len(nodes)].append(path)
    errors: list[BaseException] = []

    def send(node_index: int) -> None:
        node, mine = nodes[node_index], shares[node_index]
        try:
            if node_index % 2 == 0:
                for start in range(0, len(mine), chunk):
                    node.cstore(mine[start : start + chunk])
            else:
                for path in mine:
                    node.upload_file(path)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=send, args=(index,)) for index in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    if errors:
        raise errors[0]


def by_type(messages: Sequence[ReceivedMessage]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for message in messages:
        grouped[message.body["type"]].append(message.body)
    return grouped


def wait_for_events(
    collector: EventCollector,
    done: Callable[[dict[str, list[dict[str, Any]]]], bool],
    timeout: float,
    what: str,
) -> dict[str, list[dict[str, Any]]]:
    def finished() -> dict[str, list[dict[str, Any]]] | None:
        grouped = by_type(collector.messages)
        return grouped if done(grouped) else None

    def counts() -> str:
        return str({key: len(value) for key, value in by_type(collector.messages).items()})

    return wait_until(finished, timeout=timeout, what=what, interval=0.5, details=counts)


def stable_diagnosis(nodes: Sequence[OrthancServer], collector: EventCollector) -> str:
    """Per resource: its Stable* changes in the shared log (with dates) and events published."""
    changes = nodes[0].client.get_json("/changes?since=0&limit=100000")["Changes"]
    logged: dict[str, list[str]] = collections.defaultdict(list)
    for change in changes:
        if change["ChangeType"].startswith("Stable"):
            logged[change["ID"]].append(f"{change['Seq']}@{change['Date'][-6:]}")
    published = collections.Counter(
        m.body["subject"] for m in collector.messages if m.body["type"].endswith(".stable")
    )
    lines = [str([status(node)["Cluster"] for node in nodes])]
    lines += [
        f"{resource}: log {entries}, published {published[resource]}"
        for resource, entries in logged.items()
        if len(entries) != len(nodes) or published[resource] != 1
    ]
    return "\n".join(lines)


def subjects(events: Sequence[dict[str, Any]]) -> list[str]:
    return [str(event["subject"]) for event in events]


@pytest.mark.parametrize(
    ("nodes", "studies", "per_series"),
    [pytest.param(2, 2, 20, id="2-nodes-80-instances"), pytest.param(3, 6, 50, id="3-nodes-600")],
)
def test_every_event_once_across_the_cluster(
    cluster_factory: ClusterFactory,
    rabbitmq: RabbitMQ,
    tmp_path: Path,
    nodes: int,
    studies: int,
    per_series: int,
) -> None:
    exchange = f"cluster-{uuid.uuid4().hex[:8]}"
    workload = Workload(tmp_path / "dicom", studies, series=2, per_series=per_series).make()
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        cluster = cluster_factory(
            nodes=nodes,
            plugins=["dicom-events"],
            config=cluster_config(rabbitmq.url_for_orthanc, exchange),
        )
        publisher = the_publisher(cluster.nodes)
        identities = {status(node)["Cluster"]["Lock"] for node in cluster.nodes}
        assert len(identities) == 1  # one lock, the same database

        send_round_robin(cluster.nodes, workload.files)
        series, studies_ids, patients = (workload.ids(level) for level in range(3))
        grouped = wait_for_events(
            collector,
            lambda g: (
                len(g["dicom.instance.stored"]) >= len(workload.instances)
                and set(subjects(g["dicom.series.stable"])) == series
                and set(subjects(g["dicom.study.stable"])) == studies_ids
                and set(subjects(g["dicom.patient.stable"])) == patients
            ),
            timeout=120,
            what="stored and stable events of every resource",
        )

        # Every node received instances of every resource, so each logs its own stable change
        # of each: once all nodes call them stable, the log holds them all.
        levels = (("series", series), ("studies", studies_ids), ("patients", patients))
        for node in cluster.nodes:
            for level, members in levels:
                for resource_id in members:
                    node.wait_stable(level, resource_id, timeout=30)
        resources = len(series) + len(studies_ids) + len(patients)

        def not_published() -> int | None:
            counters = status(publisher)["Cluster"]
            dropped = int(counters["RepeatedStableDropped"] + counters["PrematureStableDropped"])
            return dropped if dropped >= resources * (nodes - 1) else None

        dropped = wait_until(
            not_published,
            timeout=30,
            what=f"{resources * (nodes - 1)} stable changes of the other nodes not published",
            interval=0.2,
            details=lambda: stable_diagnosis(cluster.nodes, collector),
        )

        # Each study deleted through a node other than the publisher (which stored only part).
        others = [node for node in cluster.nodes if node is not publisher]
        for index, study_id in enumerate(sorted(studies_ids)):
            others[index % len(others)].client.delete(f"/studies/{study_id}").raise_for_status()
        grouped = wait_for_events(
            collector,
            lambda g: (
                set(subjects(g["dicom.study.deleted"])) == studies_ids
                and len(g["dicom.instance.deleted"]) >= len(workload.instances)
            ),
            timeout=60,
            what="deleted events of every study and instance",
        )
        # Repeats would come with the stable changes of the other nodes: wait past them.
        messages = collector.wait_quiet(5)

    grouped = by_type(messages)
    ids = [message.body["id"] for message in messages]
    assert len(ids) == len(set(ids)), [i for i, n in collections.Counter(ids).items() if n > 1]
    assert sorted(subjects(grouped["dicom.instance.stored"])) == sorted(workload.instances)
    assert sorted(subjects(grouped["dicom.series.stable"])) == sorted(series)
    assert sorted(subjects(grouped["dicom.study.stable"])) == sorted(studies_ids)
    assert sorted(subjects(grouped["dicom.patient.stable"])) == sorted(patients)
    assert sorted(subjects(grouped["dicom.instance.deleted"])) == sorted(workload.instances)
    assert sorted(subjects(grouped["dicom.series.deleted"])) == sorted(series)
    assert sorted(subjects(grouped["dicom.study.deleted"])) == sorted(studies_ids)
    assert sorted(subjects(grouped["dicom.patient.deleted"])) == sorted(patients)
    assert {message.body["source"] for message in messages} == {SOURCE}
    # Deleted through nodes that never read the log: the ancestors come from the publisher.
    for event in grouped["dicom.instance.deleted"]:
        series_id, study_id, patient_id = workload.instances[event["subject"]]
        data = event["data"]
        assert (data["seriesId"], data["studyId"], data["patientId"]) == (
            series_id,
            study_id,
            patient_id,
        )
    for event in grouped["dicom.study.deleted"]:
        assert event["data"]["patientId"] in patients
    # Log events are numbered by the one identity in the shared database, whoever published.
    log_ids = {
        event["id"].rsplit("-", 1)[0]
        for kind in ("dicom.instance.stored", "dicom.series.stable")
        for event in grouped[kind]
    }
    assert len(log_ids) == 1
    cluster_status = status(publisher)["Cluster"]
    repeated, premature = (
        cluster_status["RepeatedStableDropped"],
        cluster_status["PrematureStableDropped"],
    )
    print(
        f"{nodes} nodes: {len(messages)} events; stable changes not published:"
        f" {repeated} repeated, {premature} premature"
    )
    # The other nodes' stable changes were in the shared log, and none was published.
    assert repeated + premature == dropped == resources * (nodes - 1)


def test_the_publisher_killed_mid_burst_another_node_takes_over_losing_nothing(
    cluster_factory: ClusterFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    exchange = f"cluster-{uuid.uuid4().hex[:8]}"
    workload = Workload(tmp_path / "dicom", studies=4, series=1, per_series=60).make()
    with consume(rabbitmq.url, exchange, "dicom.#") as collector:
        cluster = cluster_factory(
            nodes=3,
            plugins=["dicom-events"],
            config=cluster_config(rabbitmq.url_for_orthanc, exchange),
        )
        publisher = the_publisher(cluster.nodes)
        survivors = [node for node in cluster.nodes if node is not publisher]
        half = len(workload.files) // 2
        sent = threading.Thread(
            target=send_round_robin, args=(cluster.nodes, workload.files[:half])
        )
        sent.start()
        wait_until(
            lambda: len(collector.messages) >= 20, timeout=60, what="the burst to be published"
        )
        sent.join(120)
        killed_at = time.monotonic()
        publisher.kill(signal.SIGKILL)
        successor = the_publisher(survivors, timeout=10)
        takeover = time.monotonic() - killed_at
        # The rest of the burst through the survivors.
        send_round_robin(survivors, workload.files[half:])
        grouped = wait_for_events(
            collector,
            lambda g: set(subjects(g["dicom.instance.stored"])) == set(workload.instances),
            timeout=60,
            what="a stored event for every instance",
        )
        messages = collector.wait_quiet(3)

    stored = [m.body for m in messages if m.body["type"] == "dicom.instance.stored"]
    counts = collections.Counter(event["id"] for event in stored)
    duplicates = sum(n - 1 for n in counts.values())
    by_subject: dict[str, set[str]] = collections.defaultdict(set)
    for event in stored:
        by_subject[event["subject"]].add(event["id"])
    # 0 lost; a duplicate carries the id of the first copy (one id per instance).
    assert set(by_subject) == set(workload.instances)
    assert all(len(event_ids) == 1 for event_ids in by_subject.values())
    assert status(successor)["Cluster"]["Takeovers"] == 1
    print(f"takeover {takeover:.2f} s after SIGKILL, {duplicates} duplicate stored event(s)")
    assert takeover < 10
    assert grouped  # the wait above saw every instance
    assert isinstance(cluster, OrthancCluster)


def test_a_hung_publisher_loses_the_lock_when_its_session_idles_out(
    cluster_factory: ClusterFactory, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    exchange = f"cluster-{uuid.uuid4().hex[:8]}"
    workload = Workload(tmp_path / "dicom", studies=2, series=1, per_series=20).make()
    config = cluster_config(rabbitmq.url_for_orthanc, exchange)
    config["DicomEvents"]["Cluster"]["IdleSessionTimeoutSeconds"] = 3
    with consume(rabbitmq.url, exchange, "dicom.instance.*") as collector:
        cluster = cluster_factory(nodes=2, plugins=["dicom-events"], config=config)
        publisher = the_publisher(cluster.nodes)
        other = next(node for node in cluster.nodes if node is not publisher)
        half = len(workload.files) // 2
        send_round_robin(cluster.nodes, workload.files[:half])
        wait_until(
            lambda: len(collector.messages) >= half, timeout=30, what="the first half published"
        )
        publisher.kill(signal.SIGSTOP)  # hangs: its connection stays open
        try:
            stopped_at = time.monotonic()
            send_round_robin([other], workload.files[half:])
            the_publisher([other], timeout=15)
            takeover = time.monotonic() - stopped_at
            wait_for_events(
                collector,
                lambda g: set(subjects(g["dicom.instance.stored"])) == set(workload.instances),
                timeout=30,
                what="a stored event for every instance",
            )
        finally:
            publisher.kill(signal.SIGCONT)
        # Awake again, it finds its session ended and stays standby.
        wait_until(
            lambda: status(publisher)["Cluster"]["Role"] == "standby",
            timeout=15,
            what="the old publisher to notice it lost the lock",
        )
        messages = collector.wait_quiet(2)
    by_subject: dict[str, set[str]] = collections.defaultdict(set)
    for message in messages:
        by_subject[message.body["subject"]].add(message.body["id"])
    assert set(by_subject) == set(workload.instances)
    assert all(len(event_ids) == 1 for event_ids in by_subject.values())
    assert publishers(cluster.nodes) == [other]
    print(f"takeover {takeover:.2f} s after SIGSTOP (IdleSessionTimeoutSeconds 3)")
    assert takeover < 3 + 1 + 2  # the idle timeout, one LockPollMs, a round
