"""Child processes the harness owns: own session, own log file, stopped by PID, and (on Linux)
signalled by the kernel when the harness process dies, however it dies."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class HarnessError(RuntimeError):
    """A server of the harness could not be started or driven."""


# Below the kernel's ephemeral range (32768-60999 by default): a server restarted on "its" port
# must not find it taken by some client's outgoing connection in the meantime.
_SERVER_PORTS = range(20000, 32000)


# Ports this process has handed out. A port is free until its server binds it, so without this two
# calls made before either server starts (a stack's HTTP and DICOM ports, RabbitMQ's port and its
# dist port) could return the same number, and the second server would fail on "already in use".
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range,
    never handed out before by this process."""
    with _handed_out_lock:
        for _ in range(200):
            port = random.choice(_SERVER_PORTS)
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
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
    """A port p such that p and p + 1 are both free (RabbitMQ takes its dist port at p + 1);
    both are reserved against later calls."""
    for _ in range(50):
        port = free_port()
        with _handed_out_lock:
            if port + 1 not in _handed_out and port + 1 in _SERVER_PORTS and port_is_free(port + 1):
                _handed_out.add(port + 1)
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


# -- dying with the harness ------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def _die_with_parent(parent_pid: int, death_signal: int) -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to send `death_signal` to the child when the thread
    that forked it ends, even if the harness is SIGKILLed; None where that is not available."""
    prctl = _prctl
    if prctl is None:
        return None

    def arrange() -> None:
        # Runs in the child between fork and exec: no locks, no imports.
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the harness died before the request took effect

    return arrange


class _SpawningThread:
    """Forks every managed child from one thread that lasts as long as the harness process.

    The parent-death signal follows the *thread* that forked the child, not the process: a child
    started from a pool thread would be killed as soon as that thread ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid: int | None = None
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()

    def popen(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._owner_pid != os.getpid():  # first use, or a forked copy of the harness
                self._requests = queue.SimpleQueue()
                threading.Thread(
                    target=self._serve, args=(self._requests,), name="harness-spawner", daemon=True
                ).start()
                self._owner_pid = os.getpid()
            requests = self._requests
        started: Future[subprocess.Popen[bytes]] = Future()
        requests.put((start, started))
        return started.result()

    @staticmethod
    def _serve(
        requests: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ],
    ) -> None:
        while True:
            start, started = requests.get()
            try:
                started.set_result(start())
            except BaseException as error:
                started.set_exception(error)


_spawning_thread = _SpawningThread()
_all_processes: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


def running_processes() -> list[ManagedProcess]:
    """Every ManagedProcess of this harness process that is running now, in start order."""
    return sorted(
        (process for process in list(_all_processes) if process.is_running()),
        key=lambda process: process.started_at,
    )


class ManagedProcess:
    """One server process: own session (so its children can be reached), own log file.

    On Linux the kernel also sends it `parent_death_signal` when the harness process dies, so a
    harness killed with SIGKILL leaves no server behind (its children's own children are not
    covered: see integration/README.md). SIGTERM by default, so that a server can still stop
    what it runs itself (rabbitmq-server is a shell script that stops its Erlang VM on SIGTERM).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        parent_death_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.parent_death_signal = parent_death_signal
        self.started_at = 0.0
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
            die_with_harness = _die_with_parent(os.getpid(), int(self.parent_death_signal))

            def start() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=die_with_harness,
                )

            self._popen = start() if die_with_harness is None else _spawning_thread.popen(start)
        self.started_at = time.monotonic()
        _all_processes.add(self)

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
