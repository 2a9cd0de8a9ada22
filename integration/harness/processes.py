"""Child processes the harness owns: own session, own log file, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class HarnessError(RuntimeError):
    """A server of the harness could not be started or driven."""


# Below the kernel's ephemeral range (32768-60999 by default): a server restarted on "its" port
# must not find it taken by some client's outgoing connection in the meantime.
_SERVER_PORTS = range(20000, 32000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range."""
    for _ in range(200):
        port = random.choice(_SERVER_PORTS)
        if port_is_free(port):
            return port
    raise HarnessError(f"no free TCP port found on 127.0.0.1 in {_SERVER_PORTS}")


def port_is_free(port: int) -> bool:
    """True when nothing is bound to `port` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free (RabbitMQ takes its dist port at p + 1)."""
    for _ in range(50):
        port = free_port()
        if port_is_free(port + 1):
            return port
    raise HarnessError("no two consecutive free TCP ports found on 127.0.0.1")


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns a truthy value, which is returned.

    Exceptions listed in `retry_on` count as "not yet". On timeout, raise TimeoutError naming
    `what`, the last exception seen and, when given, `details()` (a log tail, say).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except retry_on as error:
            last_error = error
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:.1f} s waiting for {what}"
            if last_error is not None:
                message += f" (last error: {type(last_error).__name__}: {last_error})"
            if details is not None:
                message += "\n" + details()
            raise TimeoutError(message)
        time.sleep(interval)


def tail(text: str, lines: int) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One server process: own session (so its children can be reached), own log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return self._popen.poll() if self._popen is not None else None

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        if self.is_running():
            raise HarnessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Appending keeps the log of earlier runs readable after a restart.
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; the exit status (None if never started)."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                popen.wait(10)
        # Children left in the session (the leader is gone) would otherwise hold ports.
        self._kill_group(signal.SIGKILL)
        return popen.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the process only (a crash, say); use wait() or stop() afterwards."""
        if self._popen is None or self._popen.poll() is not None:
            raise HarnessError(f"{self.name} is not running")
        os.kill(self._popen.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for the process to end and return its exit status."""
        if self._popen is None:
            raise HarnessError(f"{self.name} was never started")
        return self._popen.wait(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        return tail(self.log_text(), lines)

    def _kill_group(self, sig: int) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)
