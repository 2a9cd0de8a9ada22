"""One publisher at a time among Orthanc nodes: a PostgreSQL session-level advisory lock.

The lock lives as long as the database session that took it. When the holding Orthanc dies (even
by SIGKILL) its kernel closes the connection, the server ends the session and the lock is free at
once; another node takes it at its next try (every `LockPollMs`). A holder cut off from the
server (network) notices when its next check fails and stops publishing the shared change log;
until then both may publish the same changes, under the same event ids.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any, Protocol

from .config import ClusterConfig

APPLICATION_NAME = "orthanc-dicom-events"
# Orthanc keeps a plugin's global properties per node (keyed by its server identifier) in a
# PostgreSQL index: the state all nodes share lives in a table of its own in that database.
STATE_TABLE = "dicom_events_state"
_CREATE_STATE = (
    "CREATE TABLE IF NOT EXISTS dicom_events_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
)
_SELECT_STATE = "SELECT value FROM dicom_events_state WHERE name = :name"
# Deleted resources can no longer be asked for their parents, and a node learns none while it is
# standby: the publisher shares those it learns, so any node's deleted events carry ancestors.
_CREATE_PARENTS = (
    "CREATE TABLE IF NOT EXISTS dicom_events_parents"
    " (resource_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, level INTEGER NOT NULL)"
)
_INSERT_PARENTS = (
    "INSERT INTO dicom_events_parents(resource_id, parent_id, level)"
    " SELECT * FROM unnest(CAST(:ids AS TEXT[]), CAST(:parents AS TEXT[]),"
    " CAST(:levels AS INTEGER[])) ON CONFLICT (resource_id) DO NOTHING"
)
_SELECT_PARENTS = (
    "SELECT resource_id, parent_id, level FROM dicom_events_parents"
    " WHERE resource_id = ANY(CAST(:ids AS TEXT[]))"
)
_DELETE_PARENTS = "DELETE FROM dicom_events_parents WHERE resource_id = ANY(CAST(:ids AS TEXT[]))"
_UPSERT_STATE = (
    "INSERT INTO dicom_events_state(name, value) VALUES (:name, :value)"
    " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
)


class PublisherLock(Protocol):
    """Who publishes Orthanc's shared change log."""

    def acquire(self) -> bool:
        """Take the lock, or check it is still held; True while this node holds it."""
        ...

    def release(self) -> None:
        """Let another node take over (closes the session)."""
        ...

    def describe(self) -> str:
        """Where the lock lives, for logs and the status route (no password)."""
        ...

    def get_state(self, name: str) -> str | None:
        """A value every node shares (the event-id identity, the cursor); None when unset."""
        ...

    def set_state(self, name: str, value: str) -> None:
        """Write a shared value; only the lock's holder does."""
        ...

    def remember_parents(self, links: list[tuple[str, str, int]]) -> None:
        """Share (child, parent, level of the child) links the publisher learnt."""
        ...

    def parents_of(self, resource_ids: list[str]) -> list[tuple[str, str, int]]:
        """The shared links of these resources and of their ancestors."""
        ...

    def forget_parents(self, resource_ids: list[str]) -> None:
        """Drop the links of deleted resources (their deletions are spooled)."""
        ...


class DriverMissing(RuntimeError):
    """pg8000 is not installed."""


def load_driver() -> Any:
    """pg8000's native API, or DriverMissing naming the extra to install."""
    try:
        import pg8000.native
    except ImportError as error:
        raise DriverMissing(
            "the PostgreSQL driver pg8000 is missing: pip install 'orthanc-dicom-events[cluster]'"
        ) from error
    return pg8000.native


class AdvisoryLock:
    """`pg_try_advisory_lock(key)` on a connection of its own to Orthanc's database."""

    def __init__(self, config: ClusterConfig, driver: Any | None = None) -> None:
        self._config = config
        self._driver = driver if driver is not None else load_driver()
        self._connection: Any | None = None
        self._held = False
        self._table_ready = False
        self.last_error: str | None = None
        self.idle_timeout_supported = True

    def describe(self) -> str:
        c = self._config
        return f"postgresql://{c.host}:{c.port}/{c.database} advisory lock {c.lock_key}"

    def acquire(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self._connect()
                self._held = False
            if self._held:
                # A round trip: a session the server ended (and so the lock) shows here.
                self._connection.run("SELECT 1")
            else:
                rows = self._connection.run(
                    "SELECT pg_try_advisory_lock(:key)", key=self._config.lock_key
                )
                self._held = bool(rows and rows[0][0])
            self.last_error = None
        except Exception as error:  # any failure: not held, a new session next time
            self.last_error = f"{type(error).__name__}: {error}"
            self._drop()
        return self._held

    def release(self) -> None:
        self._drop()

    def get_state(self, name: str) -> str | None:
        rows = self._session().run(_SELECT_STATE, name=name)
        return str(rows[0][0]) if rows else None

    def set_state(self, name: str, value: str) -> None:
        self._session().run(_UPSERT_STATE, name=name, value=value)

    def remember_parents(self, links: list[tuple[str, str, int]]) -> None:
        if links:
            self._session().run(
                _INSERT_PARENTS,
                ids=[link[0] for link in links],
                parents=[link[1] for link in links],
                levels=[link[2] for link in links],
            )

    def parents_of(self, resource_ids: list[str]) -> list[tuple[str, str, int]]:
        found: list[tuple[str, str, int]] = []
        wanted = list(dict.fromkeys(resource_ids))
        for _ in range(3):  # instance -> series -> study -> patient
            if not wanted:
                break
            rows = self._session().run(_SELECT_PARENTS, ids=wanted)
            links = [(str(row[0]), str(row[1]), int(row[2])) for row in rows]
            found.extend(links)
            wanted = list(dict.fromkeys(link[1] for link in links))
        return found

    def forget_parents(self, resource_ids: list[str]) -> None:
        if resource_ids:
            self._session().run(_DELETE_PARENTS, ids=resource_ids)

    def _session(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
            self._held = False
        if not self._table_ready:
            self._connection.run(_CREATE_STATE)
            self._connection.run(_CREATE_PARENTS)
            self._table_ready = True
        return self._connection

    def _connect(self) -> Any:
        c = self._config
        connection = self._driver.Connection(
            c.username,
            host=c.host,
            port=c.port,
            database=c.database,
            password=c.password or None,
            ssl_context=ssl.create_default_context() if c.ssl else None,
            timeout=c.connect_timeout_seconds,
            tcp_keepalive=True,
            application_name=APPLICATION_NAME,
        )
        if c.idle_session_timeout_seconds:
            try:
                # SET takes no parameters: the value is an integer from the configuration.
                connection.run(
                    f"SET idle_session_timeout = {int(c.idle_session_timeout_seconds)}000"
                )
            except Exception:
                # Before PostgreSQL 14 there is no such setting: a hung holder keeps the lock.
                self.idle_timeout_supported = False
        return connection

    def _drop(self) -> None:
        self._held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a dead session: nothing to close
                connection.close()
