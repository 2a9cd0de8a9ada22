"""PostgreSQL for the cluster suites: the server on 127.0.0.1:5432 when one answers, else a private
one (Debian's `postgresql` binaries, `initdb` in a temp folder, a loopback port, stopped by PID).

Each test run gets a database of its own (`create_database()`), dropped at the end.
HARNESS_POSTGRES chooses: `auto` (default), `private` (always a private server) or `HOST:PORT`
(that server, user `postgres`, trust authentication).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .processes import HarnessError, ManagedProcess, free_port, port_is_free, wait_until

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432
USER = "postgres"
# postgres refuses to run as root: the private server runs as this system user.
SYSTEM_USER = os.environ.get("HARNESS_POSTGRES_SYSTEM_USER", "postgres")


def _pg8000() -> Any:
    try:
        import pg8000.native
    except ImportError as error:  # pragma: no cover - the dev venv has it
        raise HarnessError("pg8000 is not installed: install requirements-dev.txt") from error
    return pg8000.native


def connect(host: str, port: int, database: str = "postgres", timeout: float = 5.0) -> Any:
    """A pg8000 connection (autocommit) as the superuser `postgres`."""
    return _pg8000().Connection(
        USER, host=host, port=port, database=database, timeout=timeout, application_name="harness"
    )


def answers(host: str, port: int) -> bool:
    """True when a PostgreSQL server accepts the superuser on host:port without a password."""
    try:
        connect(host, port, timeout=2.0).close()
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class Database:
    """One database of a server: what Orthanc's `PostgreSQL` section needs."""

    host: str
    port: int
    name: str
    user: str = USER

    def orthanc_section(self, **overrides: Any) -> dict[str, Any]:
        """Orthanc's `PostgreSQL` section for this database (the index only; Lock off)."""
        return {
            "EnableIndex": True,
            "EnableStorage": False,
            "Host": self.host,
            "Port": self.port,
            "Database": self.name,
            "Username": self.user,
            "Password": "",
            "EnableSsl": False,
            "Lock": False,
            **overrides,
        }

    def connect(self) -> Any:
        return connect(self.host, self.port, self.name)


class PostgresServer:
    """The server the suites use; `close()` stops it when it is the harness's own."""

    def __init__(self, host: str, port: int, process: ManagedProcess | None = None) -> None:
        self.host = host
        self.port = port
        self._process = process
        self._datadir: Path | None = None

    @property
    def private(self) -> bool:
        return self._process is not None

    def create_database(self, prefix: str = "harness") -> Database:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        connection = connect(self.host, self.port)
        try:
            connection.run(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return Database(self.host, self.port, name)

    def drop_database(self, database: Database) -> None:
        connection = connect(self.host, self.port)
        try:
            # FORCE (PostgreSQL 13+): an Orthanc left running must not keep the database.
            connection.run(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        finally:
            connection.close()

    @contextlib.contextmanager
    def database(self, prefix: str = "harness") -> Iterator[Database]:
        database = self.create_database(prefix)
        try:
            yield database
        finally:
            self.drop_database(database)

    def log_tail(self, lines: int = 200) -> str:
        return self._process.log_tail(lines) if self._process else "(shared server: no log)"

    def close(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._datadir is not None:
            shutil.rmtree(self._datadir, ignore_errors=True)
            self._datadir = None


def postgres_binaries() -> Path:
    """The folder of Debian's `postgres` and `initdb` (the newest version installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version_key)
    if not found:
        raise HarnessError(
            "no PostgreSQL answers on 127.0.0.1:5432 and Debian's postgresql is not installed"
            " (apt-get install postgresql)"
        )
    return Path(found[-1]).parent


def _version_key(path: str) -> int:
    with contextlib.suppress(ValueError):
        return int(Path(path).parent.parent.name)
    return 0


def _as_system_user() -> list[str]:
    """Run a command as SYSTEM_USER when we are root (exec, no extra process); as is otherwise."""
    if os.geteuid() != 0:
        return []
    entry = pwd.getpwnam(SYSTEM_USER)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]


def start_private(startup_timeout: float = 30.0) -> PostgresServer:
    """initdb in a temp folder, then `postgres` on a free loopback port, as a ManagedProcess."""
    binaries = postgres_binaries()
    # Outside pytest's temp tree: that one is private to root and the server is not root.
    datadir = Path(tempfile.mkdtemp(prefix="harness-postgres-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    data = datadir / "data"
    initdb = [
        *_as_system_user(),
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-U",
        USER,
        "--auth=trust",
        "--encoding=UTF8",
        "--no-sync",
    ]
    result = subprocess.run(initdb, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        raise HarnessError(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    port = free_port()
    argv = [
        *_as_system_user(),
        str(binaries / "postgres"),
        "-D",
        str(data),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(datadir),  # its Unix socket, out of /var/run/postgresql
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    process = ManagedProcess("postgres", argv, log_path=datadir / "postgres.log", cwd=datadir)
    server = PostgresServer("127.0.0.1", port, process)
    server._datadir = datadir
    process.start()

    def ready() -> bool:
        if not process.is_running():
            raise HarnessError(
                f"postgres exited with status {process.returncode}:\n" + process.log_tail(40)
            )
        return answers("127.0.0.1", port)

    try:
        wait_until(
            ready,
            timeout=startup_timeout,
            what=f"the private PostgreSQL on port {port}",
            interval=0.2,
            details=lambda: process.log_tail(40),
        )
    except BaseException:
        server.close()
        raise
    return server


def open_server(choice: str | None = None) -> PostgresServer:
    """The server HARNESS_POSTGRES names (see the module's docstring)."""
    choice = choice or os.environ.get("HARNESS_POSTGRES", "auto")
    if choice == "private":
        return start_private()
    if choice != "auto":
        host, _, port = choice.rpartition(":")
        if not host or not port.isdigit():
            raise HarnessError(f"HARNESS_POSTGRES={choice!r}: expected auto, private or HOST:PORT")
        if not answers(host, int(port)):
            raise HarnessError(f"no PostgreSQL accepts user {USER} on {choice} (HARNESS_POSTGRES)")
        return PostgresServer(host, int(port))
    if not port_is_free(SHARED_PORT) and answers(SHARED_HOST, SHARED_PORT):
        return PostgresServer(SHARED_HOST, SHARED_PORT)
    return start_private()
