"""Fixtures of the end-to-end suites: servers come from the provider, never from a concrete class.

- `rabbitmq`: one broker per session, started on first use.
- `sns`: one SNS endpoint per session and kind; tests that use it run once per kind available
  here (LocalStack and moto when both can run). `sns_preferred`: just the first of them.
- `interruptible_rabbitmq` / `interruptible_sns`: the same servers, for outage tests; they are
  running again after the test.
- `orthanc_factory(plugins=[...], config={...}, entry="composed")`: started Orthancs, stopped at
  the end of the test. A failing test shows the tail of each of their logs.
- `postgres`: the PostgreSQL server of the session (127.0.0.1:5432 when it answers, else a
  private one); `cluster_factory(nodes=2, plugins=[...], config={...})`: Orthanc nodes on a
  database of their own, dropped at the end of the test.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from integration.compose_fixtures import (  # noqa: F401  (pytest-docker's, set for compose)
    compose_brokers,
    docker_cleanup,
    docker_compose_command,
    docker_compose_file,
    docker_compose_project_name,
    docker_setup,
)
from integration.harness import flavours
from integration.harness.cluster import NodeConfig, OrthancCluster
from integration.harness.interfaces import Orthanc, Provider, RabbitMQ, SnsEmulator
from integration.harness.orthanc import Entry
from integration.harness.postgres import Database, PostgresServer, open_server
from integration.harness.providers import select_provider
from orthanc_fake.samples import ENVIRONMENT_VARIABLE, find_samples_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = find_samples_dir(REPO_ROOT)
LOG_LINES_ON_FAILURE = 200

_PROVIDER = select_provider()
_orthancs_of_test = pytest.StashKey[list[Orthanc]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build (or check) the selected flavour's root filesystem before the first test, with its
    log line shown: a first build takes about a minute, which no test's time limit expects."""
    flavour = flavours.selected_flavour()
    if _PROVIDER.name in ("docker", "compose") or not flavours.runs_chrooted(flavour):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        flavours.chrooted_orthanc(flavour)


def pytest_report_header(config: pytest.Config) -> str:
    return f"orthanc flavour: {flavours.selected_flavour()} (HARNESS_FLAVOUR)"


class OrthancFactory(Protocol):
    def __call__(
        self,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        *,
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Orthanc: ...


@pytest.fixture(scope="session")
def provider(request: pytest.FixtureRequest) -> Provider:
    # Session fixtures the provider needs first: the compose provider's brokers (pytest-docker).
    for name in getattr(_PROVIDER, "session_fixtures", ()):
        request.getfixturevalue(name)
    return _PROVIDER


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The shared DICOM samples (../shared/dicom-samples beside the checkout)."""
    if SAMPLES_DIR is None:
        pytest.fail(f"DICOM samples not found: set {ENVIRONMENT_VARIABLE} or check out ../shared")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def rabbitmq(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    broker = provider.rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


class _SnsPool:
    """One emulator per kind for the whole session, started on first use."""

    def __init__(self, provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._provider = provider
        self._tmp_path_factory = tmp_path_factory
        self._started: dict[str, SnsEmulator] = {}

    def get(self, kind: str) -> SnsEmulator:
        if kind not in self._started:
            emulator = self._provider.sns(kind, self._tmp_path_factory.mktemp(f"sns-{kind}"))
            emulator.start()
            self._started[kind] = emulator
        return self._started[kind]

    def close(self) -> None:
        for emulator in self._started.values():
            emulator.close()


@pytest.fixture(scope="session")
def _sns_pool(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SnsPool]:
    pool = _SnsPool(provider, tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session", params=_PROVIDER.sns_kinds())
def sns(_sns_pool: _SnsPool, request: pytest.FixtureRequest) -> SnsEmulator:
    """Each SNS endpoint available here in turn: a test using it runs once per kind."""
    kind: str = request.param
    return _sns_pool.get(kind)


@pytest.fixture(scope="session")
def sns_preferred(_sns_pool: _SnsPool, provider: Provider) -> SnsEmulator:
    """Only the preferred SNS endpoint (LocalStack when set up, else moto), for tests that do not
    need to run against each emulator."""
    return _sns_pool.get(provider.sns_kinds()[0])


@pytest.fixture
def interruptible_rabbitmq(rabbitmq: RabbitMQ) -> Iterator[RabbitMQ]:
    """The session broker, for a test that stops and starts it; running again afterwards."""
    if not rabbitmq.can_interrupt:
        pytest.skip("the broker is not the harness's own (RABBITMQ_URL): no outage test")
    yield rabbitmq
    if not rabbitmq.is_running():
        rabbitmq.start()


@pytest.fixture
def interruptible_sns(sns: SnsEmulator) -> Iterator[SnsEmulator]:
    """The session SNS emulator, for a test that stops and starts it (state is lost then)."""
    if not sns.can_interrupt:
        pytest.skip("the SNS endpoint is not the harness's own (AWS_ENDPOINT_URL): no outage test")
    yield sns
    if not sns.is_running():
        sns.start()


@pytest.fixture
def orthanc_factory(
    provider: Provider, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OrthancFactory]:
    servers: list[Orthanc] = request.node.stash.setdefault(_orthancs_of_test, [])

    def create(
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        *,
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Orthanc:
        server = provider.orthanc(
            tmp_path / f"orthanc-{len(servers)}",
            plugins=plugins,
            config=config,
            entry=entry,
            script=script,
            ready_routes=ready_routes,
            env=env,
            name=f"harness{len(servers)}",
        )
        servers.append(server)
        if start:
            server.start()
        return server

    yield create
    for server in list(servers):
        discard(server)


def discard(server: Orthanc) -> None:
    """End a test's Orthanc at once: its storage is thrown away, and clean shutdowns have tests of
    their own (a graceful stop costs 3 to 9 s, a large part of a suite's time)."""
    if server.is_running():
        with contextlib.suppress(Exception):
            server.kill(signal.SIGKILL)
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = open_server()
    try:
        yield server
    finally:
        server.close()


class ClusterFactory(Protocol):
    def __call__(
        self,
        nodes: int = 2,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        *,
        node_config: NodeConfig | None = None,
        start: bool = True,
    ) -> OrthancCluster: ...


@pytest.fixture
def cluster_factory(
    postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ClusterFactory]:
    """Clusters of Orthanc nodes, each on a database of its own, stopped and dropped afterwards."""
    clusters: list[tuple[OrthancCluster, Database]] = []
    servers: list[Orthanc] = request.node.stash.setdefault(_orthancs_of_test, [])

    def create(
        nodes: int = 2,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        *,
        node_config: NodeConfig | None = None,
        start: bool = True,
    ) -> OrthancCluster:
        database = postgres.create_database()
        cluster = OrthancCluster(
            tmp_path / f"cluster-{len(clusters)}",
            database,
            nodes=nodes,
            plugins=plugins,
            config=config,
            node_config=node_config,
        )
        clusters.append((cluster, database))
        servers.extend(cluster.nodes)
        if start:
            cluster.start()
        return cluster

    yield create
    for cluster, database in clusters:
        cluster.stop()
        postgres.drop_database(database)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        servers: list[Orthanc] = item.stash.get(_orthancs_of_test, [])
        for index, server in enumerate(servers):
            report.sections.append(
                (
                    f"Orthanc {index} log ({server.url}), last {LOG_LINES_ON_FAILURE} lines",
                    server.log_tail(LOG_LINES_ON_FAILURE),
                )
            )
    return report
