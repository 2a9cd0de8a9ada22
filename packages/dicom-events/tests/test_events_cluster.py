"""Several nodes on one shared index (DicomEvents.Cluster), on the fake: one publisher at a time,
each node's own deletions, no repeated or premature stable events."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dicom_events_testing import MemoryPublisher, base_config, wait_for

from orthanc_dicom_events import lease
from orthanc_dicom_events._kit import ConfigurationError
from orthanc_dicom_events.builder import StableRepeats
from orthanc_dicom_events.changes import SERIES, STABLE_SERIES, Change
from orthanc_dicom_events.config import DEFAULT_LOCK_KEY, parse
from orthanc_dicom_events.lease import AdvisoryLock
from orthanc_dicom_events.plugin import DicomEventsPlugin, create
from orthanc_fake import FakeOrthanc, make_instance
from orthanc_fake.enums import ChangeType, ResourceType

POSTGRESQL = {
    "EnableIndex": True,
    "Host": "db.example",
    "Port": 6432,
    "Database": "orthanc",
    "Username": "orthanc",
    "Password": "pg-s3cret",
    "Lock": False,
}
EVENTS = {
    "StoredInstance": True,
    "StableSeries": True,
    "StableStudy": True,
    "DeletedSeries": True,
    "DeletedInstance": True,
}


def cluster_config(cluster: Any = None, **orthanc: Any) -> dict[str, Any]:
    config = base_config(**EVENTS)
    config["DicomEvents"]["Cluster"] = {"Enabled": True} if cluster is None else cluster
    config["PostgreSQL"] = POSTGRESQL
    config["StableAge"] = 2
    config.update(orthanc)
    return config


# -- configuration ---------------------------------------------------------------------------


def test_the_connection_comes_from_orthancs_postgresql_section() -> None:
    cluster = parse(cluster_config({"Enabled": True, "LockPollMs": 250})).cluster
    assert cluster is not None
    assert (cluster.host, cluster.port, cluster.database) == ("db.example", 6432, "orthanc")
    assert (cluster.username, cluster.password, cluster.ssl) == ("orthanc", "pg-s3cret", False)
    assert (cluster.lock_key, cluster.lock_poll_ms) == (DEFAULT_LOCK_KEY, 250)
    assert (cluster.stable_age_seconds, cluster.clock_tolerance_seconds) == (2, 1)
    assert "pg-s3cret" not in repr(cluster)


def test_a_connection_uri_is_read_too() -> None:
    config = cluster_config()
    config["PostgreSQL"] = {
        "EnableIndex": True,
        "ConnectionUri": "postgresql://u%40x:p%3Aw@pg.local:5433/idx?sslmode=require",
    }
    cluster = parse(config).cluster
    assert cluster is not None
    assert (cluster.host, cluster.port, cluster.database) == ("pg.local", 5433, "idx")
    assert (cluster.username, cluster.password, cluster.ssl) == ("u@x", "p:w", True)


def test_without_the_key_or_disabled_there_is_no_cluster() -> None:
    assert parse(base_config(**EVENTS)).cluster is None
    assert parse(cluster_config({"Enabled": False})).cluster is None


@pytest.mark.parametrize(
    ("cluster", "orthanc", "message"),
    [
        ({"LockPollMs": 10}, {}, "DicomEvents.Cluster.LockPollMs: expected an integer from 50"),
        ({"LockKey": "x"}, {}, "DicomEvents.Cluster.LockKey: expected an integer"),
        ({"Enabled": "yes"}, {}, "DicomEvents.Cluster.Enabled: expected true or false"),
        ({"Lease": 1}, {}, "DicomEvents.Cluster.Lease: unknown key"),
        ([], {}, "DicomEvents.Cluster: expected a JSON object"),
        ({}, {"PostgreSQL": {"EnableIndex": False}}, "needs Orthanc's index in PostgreSQL"),
        ({"Enabled": True}, {"PostgreSQL": {"EnableIndex": True}}, "PostgreSQL.Database"),
        (
            {"Enabled": True},
            {"PostgreSQL": {**POSTGRESQL, "Port": "5432"}},
            "PostgreSQL.Port: expected an integer",
        ),
        (
            {"ClockToleranceSeconds": 2},
            {},
            "DicomEvents.Cluster.ClockToleranceSeconds: expected an integer from 0 to 1",
        ),
        (
            {"IdleSessionTimeoutSeconds": 2},
            {},
            "DicomEvents.Cluster.IdleSessionTimeoutSeconds: expected 0 (never) or at least three",
        ),
    ],
)
def test_invalid_settings_name_the_key_and_the_value(
    cluster: Any, orthanc: dict[str, Any], message: str
) -> None:
    config = cluster_config(cluster, **orthanc)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as raised:
        parse(config)
    assert "value seen" in str(raised.value)


def test_a_missing_driver_refuses_the_start_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def missing() -> Any:
        raise lease.DriverMissing("the PostgreSQL driver pg8000 is missing: pip install x[cluster]")

    monkeypatch.setattr(lease, "load_driver", missing)
    config = cluster_config()
    config["DicomEvents"]["StateDirectory"] = str(tmp_path)
    fake = FakeOrthanc(config, started=False)
    with pytest.raises(ConfigurationError, match=r"DicomEvents\.Cluster: .*pg8000"):
        create(fake, config)


# -- the advisory lock -------------------------------------------------------------------------


class FakeServer:
    """What the advisory lock needs of PostgreSQL: sessions, one lock, the state table."""

    def __init__(self) -> None:
        self.holder: FakeSession | None = None
        self.state: dict[str, str] = {}
        self.parents: dict[str, tuple[str, int]] = {}
        self.statements: list[str] = []
        self.old_server = False  # before PostgreSQL 14
        self.refuse_connections = False


class FakeSession:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.alive = True

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        if not self.alive:
            raise ConnectionError("server closed the connection")
        self.server.statements.append(sql)
        if sql.startswith("SET idle_session_timeout") and self.server.old_server:
            raise ValueError('unrecognized configuration parameter "idle_session_timeout"')
        if "pg_try_advisory_lock" in sql:
            if self.server.holder is None or not self.server.holder.alive:
                self.server.holder = self
            return [[self.server.holder is self]]
        if sql.startswith("SELECT value"):
            value = self.server.state.get(params["name"])
            return [[value]] if value is not None else []
        if sql.startswith("INSERT INTO dicom_events_state"):
            self.server.state[params["name"]] = params["value"]
        elif sql.startswith("INSERT INTO dicom_events_parents"):
            for child, parent, level in zip(
                params["ids"], params["parents"], params["levels"], strict=True
            ):
                self.server.parents.setdefault(child, (parent, level))
        elif sql.startswith("SELECT resource_id"):
            known = self.server.parents
            return [[i, *known[i]] for i in params["ids"] if i in known]
        elif sql.startswith("DELETE FROM dicom_events_parents"):
            for child in params["ids"]:
                self.server.parents.pop(child, None)
        return []

    def close(self) -> None:
        self.alive = False


class FakeDriver:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.connections: list[dict[str, Any]] = []

    def Connection(self, user: str, **options: Any) -> FakeSession:  # pg8000 names it so
        if self.server.refuse_connections:
            raise ConnectionRefusedError("connection refused")
        self.connections.append({"user": user, **options})
        return FakeSession(self.server)


def _cluster() -> Any:
    cluster = parse(cluster_config()).cluster
    assert cluster is not None
    return cluster


def test_one_session_holds_the_lock_and_a_dead_one_frees_it() -> None:
    server = FakeServer()
    driver = FakeDriver(server)
    first, second = AdvisoryLock(_cluster(), driver), AdvisoryLock(_cluster(), driver)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    assert driver.connections[0]["host"] == "db.example"
    assert driver.connections[0]["password"] == "pg-s3cret"
    assert driver.connections[0]["application_name"] == "orthanc-dicom-events"
    assert server.holder is not None
    server.holder.alive = False  # the holder's Orthanc died: its session ended
    assert not first.acquire()
    assert "server closed" in str(first.last_error)
    assert second.acquire()
    second.release()
    assert first.acquire()


def test_the_session_idles_out_when_its_holder_hangs() -> None:
    server = FakeServer()
    lock = AdvisoryLock(_cluster(), FakeDriver(server))
    assert lock.acquire()
    assert server.statements[0] == "SET idle_session_timeout = 30000"
    old = FakeServer()
    old.old_server = True
    before_14 = AdvisoryLock(_cluster(), FakeDriver(old))
    assert before_14.acquire()  # the lock works, only a hung holder keeps it
    assert not before_14.idle_timeout_supported


def test_an_unreachable_server_means_not_held_and_a_new_try_later() -> None:
    server = FakeServer()
    lock = AdvisoryLock(_cluster(), FakeDriver(server))
    server.refuse_connections = True
    assert not lock.acquire()
    assert "refused" in str(lock.last_error)
    server.refuse_connections = False
    assert lock.acquire()


# -- nodes on one shared log (one fake Orthanc stands for the shared database) -------------------


class Node:
    def __init__(self, plugin: DicomEventsPlugin, publisher: MemoryPublisher) -> None:
        self.plugin = plugin
        self.publisher = publisher

    @property
    def role(self) -> str:
        return self.plugin.status()["Cluster"]["Role"]


NodeFactory = Callable[[str], Node]


class Clock:
    """The date of the fake's change log, moved by hand (stable changes compare dates)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def log_clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(
    tmp_path: Path, log_clock: Clock
) -> Iterator[tuple[FakeOrthanc, FakeServer, NodeFactory]]:
    """Nodes on one fake Orthanc: the shared log and index. Changes reach every node's callback
    (only to wake them up); deletions are told to one node, as Orthanc does."""
    server = FakeServer()
    config = cluster_config({"Enabled": True, "LockPollMs": 50})
    fake = FakeOrthanc(config, started=False, clock=log_clock)
    made: list[Node] = []

    def dispatch(change_type: int, level: int, resource_id: str) -> None:
        for node in made:
            if change_type != ChangeType.DELETED:
                node.plugin.on_change(change_type, level, resource_id)

    def node(name: str) -> Node:
        own = {**config, "DicomEvents": {**config["DicomEvents"]}}
        own["DicomEvents"]["StateDirectory"] = str(tmp_path / name)
        publisher = MemoryPublisher()
        plugin = DicomEventsPlugin(
            fake,
            parse(own),
            publisher_factory=lambda: publisher,
            lock=AdvisoryLock(parse(own).cluster, FakeDriver(server)),  # type: ignore[arg-type]
        )
        plugin.worker._poll_seconds = 0.05
        made.append(Node(plugin, publisher))
        if fake.started:
            plugin.on_change(ChangeType.ORTHANC_STARTED, ResourceType.NONE, "")
            assert plugin.worker.ready.wait(5)
        return made[-1]

    fake.RegisterOnChangeCallback(dispatch)
    yield fake, server, node
    for each in made:
        each.plugin.stop()


def _store(fake: FakeOrthanc, count: int, series: str, first: int = 0) -> list[str]:
    ids = [
        fake.store(
            make_instance(series_uid=series, study_uid="9.8", sop_uid=f"{series}.{number}")
        ).instance_id
        for number in range(first, first + count)
    ]
    fake.deliver_pending_changes()
    return ids


def test_one_node_publishes_the_log_another_takes_over_where_it_stopped(
    nodes: tuple[FakeOrthanc, FakeServer, NodeFactory],
) -> None:
    fake, server, node = nodes
    a = node("a")
    fake.start()
    wait_for(lambda: a.role == "publisher", what="a publishes")
    b = node("b")
    assert b.role == "standby"
    first = _store(fake, 3, "1.1")
    wait_for(lambda: len(a.publisher.events) == 3, what="a's events")
    assert b.publisher.events == []
    # The identity and the position live in the shared table, written by the holder only.
    identity = server.state["identity"]
    wait_for(lambda: server.state.get("cursor") == str(fake.archive._last_seq), what="cursor")

    a.plugin.stop()  # the lock goes with a's session
    second = _store(fake, 2, "1.2")
    wait_for(lambda: len(b.publisher.events) == 2, what="b's events")
    assert b.role == "publisher"
    assert [e.envelope["subject"] for e in a.publisher.events] == first
    assert [e.envelope["subject"] for e in b.publisher.events] == second
    ids = [e.id for e in a.publisher.events + b.publisher.events]
    assert all(event_id.startswith(identity + "-") for event_id in ids)
    assert len(set(ids)) == 5
    assert b.plugin.status()["Cluster"]["Takeovers"] == 1


def test_a_standby_node_publishes_the_deletions_it_saw(
    nodes: tuple[FakeOrthanc, FakeServer, NodeFactory],
) -> None:
    fake, server, node = nodes
    a = node("a")
    fake.start()
    wait_for(lambda: a.role == "publisher", what="a publishes")
    b = node("b")
    ids = _store(fake, 2, "2.1")
    wait_for(lambda: len(a.publisher.events) == 2, what="stored events")
    series = a.publisher.events[0].envelope["data"]["seriesId"]
    fake.RestApiDelete(f"/series/{series}")
    # Orthanc calls back only the node that deleted (b); the change log has no deletions.
    for change in iter(fake.archive.take_pending, None):
        if change.change_type == ChangeType.DELETED:
            b.plugin.on_change(change.change_type, change.level, change.resource_id)
    wait_for(lambda: len(b.publisher.events) == 3, what="b's deleted events")
    deleted = {e.envelope["subject"]: e.type for e in b.publisher.events}
    assert deleted == {
        ids[0]: "dicom.instance.deleted",
        ids[1]: "dicom.instance.deleted",
        series: "dicom.series.deleted",
    }
    # b never read the log: the ancestors come from what the publisher shared in the database.
    stored = a.publisher.events[0].envelope["data"]
    for event in b.publisher.events:
        data = event.envelope["data"]
        assert (data["studyId"], data["patientId"]) == (stored["studyId"], stored["patientId"])
        if event.type == "dicom.instance.deleted":
            assert data["seriesId"] == series
    assert not set(server.parents) & {*ids, series}  # spooled: the shared links are dropped
    assert b.role == "standby"
    assert len(a.publisher.events) == 2


def test_the_stable_changes_of_the_other_nodes_are_published_once(
    nodes: tuple[FakeOrthanc, FakeServer, NodeFactory], log_clock: Clock
) -> None:
    fake, _, node = nodes
    a = node("a")
    fake.start()
    wait_for(lambda: a.role == "publisher", what="a publishes")
    _store(fake, 2, "3.1")
    series = fake.RestApiGet("/series")
    series_id = json.loads(series)[0]
    # Two nodes received instances: each logs its own stable change, StableAge (2 s) later.
    log_clock.advance(3)
    fake.mark_stable(ResourceType.SERIES, series_id)
    fake.mark_stable(ResourceType.SERIES, series_id)
    wait_for(lambda: len(a.publisher.events) == 3, what="one stable event")
    assert a.plugin.worker.repeated_stable_dropped == 1
    _store(fake, 1, "3.1", first=2)  # a new instance: the next stable change is published
    fake.mark_stable(ResourceType.SERIES, series_id)  # too soon: another node still receives
    log_clock.advance(3)
    fake.mark_stable(ResourceType.SERIES, series_id)
    wait_for(lambda: len(a.publisher.events) == 5, what="a second stable event")
    types = [e.type for e in a.publisher.events]
    assert types.count("dicom.series.stable") == 2
    assert a.plugin.status()["Cluster"]["PrematureStableDropped"] == 1


def test_without_the_cluster_key_every_stable_change_is_published(tmp_path: Path) -> None:
    config = base_config(StableSeries=True)
    config["DicomEvents"]["StateDirectory"] = str(tmp_path)
    fake = FakeOrthanc(config, started=False)
    publisher = MemoryPublisher()
    plugin = DicomEventsPlugin(fake, parse(config), publisher_factory=lambda: publisher)
    assert plugin.lock is None and "Cluster" not in plugin.status()
    fake.RegisterOnChangeCallback(plugin.on_change)
    fake.start()
    try:
        _store(fake, 1, "4.1")
        series_id = json.loads(fake.RestApiGet("/series"))[0]
        fake.mark_stable(ResourceType.SERIES, series_id)
        fake.mark_stable(ResourceType.SERIES, series_id)
        wait_for(lambda: len(publisher.events) == 2, what="both stable events")
    finally:
        plugin.stop()


# -- which stable changes are published -----------------------------------------------------------


def _date(seconds: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y%m%dT%H%M%S")


def _stable(seq: int, at: int, series: str = "s") -> Change:
    return Change(seq, STABLE_SERIES, SERIES, series, _date(at))


def test_a_premature_stable_change_is_dropped_and_the_later_one_published() -> None:
    repeats = StableRepeats(quiet_seconds=1)
    repeats.changed(_date(10), "s", "st", "p")  # node A's last instance
    repeats.changed(_date(12), "s", "st", "p")  # node B still receiving
    assert repeats.is_repeat(_stable(3, 12))  # A's stable change: B's instance is too young
    assert not repeats.is_repeat(_stable(4, 14))  # B's, two seconds after the last instance
    assert repeats.is_repeat(_stable(5, 15))  # a third node's: a repeat
    assert (repeats.premature, repeats.dropped) == (1, 1)
    # Decisions are kept by sequence number: a page read again publishes the same events.
    assert repeats.is_repeat(_stable(3, 12)) and not repeats.is_repeat(_stable(4, 14))


def test_a_new_instance_arms_the_next_stable_change_again() -> None:
    repeats = StableRepeats(quiet_seconds=1)
    assert not repeats.is_repeat(_stable(1, 5))
    repeats.changed(_date(6), "s", "st", "p")
    assert repeats.is_repeat(_stable(2, 6))  # premature: the instance is too young
    assert not repeats.is_repeat(_stable(3, 9))


def test_the_lock_is_released_when_the_plugin_stops(
    nodes: tuple[FakeOrthanc, FakeServer, NodeFactory],
) -> None:
    fake, server, node = nodes
    a = node("a")
    fake.start()
    wait_for(lambda: a.role == "publisher", what="a publishes")
    assert server.holder is not None and server.holder.alive
    a.plugin.stop()
    assert not server.holder.alive


def test_a_standby_node_tries_the_lock_every_lock_poll_without_changes(
    nodes: tuple[FakeOrthanc, FakeServer, NodeFactory],
) -> None:
    fake, server, node = nodes
    a = node("a")
    fake.start()
    wait_for(lambda: a.role == "publisher", what="a publishes")
    b = node("b")
    b.plugin.worker._poll_seconds = 30.0  # no change wakes it, no idle round for 30 s
    wait_for(lambda: b.plugin.worker.ready.is_set(), what="b ready")
    a.plugin.stop()
    # LockPollMs is 50 here: b takes over at once although nothing happens in the log.
    wait_for(lambda: b.role == "publisher", timeout=3, what="b takes over")
    assert server.holder is not None and server.holder.alive
