"""`python -m integration.stack` leaves nothing running however it ends.

The stack's stdout goes into `tee`, both in one process group as a shell runs `./dev stack | tee
stack.log`, and the signal goes to the whole group, as Ctrl-C (SIGINT), a closed terminal (SIGHUP)
or `kill` do: `tee` ends first, so the stack cleans up with stdout a broken pipe. SIGKILL leaves no
clean-up to run at all: the kernel's parent-death signal (local processes) or testcontainers'
reaper (containers) must do it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration.harness.interfaces import Provider
from integration.harness.processes import free_port

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 120.0  # both brokers and Orthanc, on a machine busy with other suites
STOP_TIMEOUT = 45.0  # Orthanc, then each broker: SIGTERM, up to 15 s each before SIGKILL
BANNER_END = "Ctrl-C stops everything."


@dataclass(frozen=True)
class ProcessIdentity:
    """A PID and its start time: a PID reused by a new process is not the one we saw."""

    pid: int
    start_time: int
    command: str

    def is_alive(self) -> bool:
        stat = _read_stat(self.pid)
        # A zombie has ended; one reparented to a PID 1 that never reaps stays a zombie.
        return stat is not None and stat.start_time == self.start_time and stat.state != "Z"


@dataclass(frozen=True)
class _Stat:
    state: str
    session: int
    start_time: int


def _read_stat(pid: int) -> _Stat | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return _Stat(state=fields[0], session=int(fields[3]), start_time=int(fields[19]))


def _command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def processes_in_sessions(session_ids: Iterable[int]) -> list[ProcessIdentity]:
    """Every process whose session is one of `session_ids` (each managed server leads its own
    session, so this is each server and whatever it started)."""
    wanted = set(session_ids)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _read_stat(pid)
        if stat is not None and stat.session in wanted and stat.state != "Z":
            found.append(ProcessIdentity(pid, stat.start_time, _command_of(pid)))
    return found


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{details()}")
        time.sleep(0.2)


def as_a_terminal_job() -> None:
    """preexec_fn: the dispositions a shell gives a foreground job, even if pytest runs with some
    signals ignored (nohup, a background job), so `tee` dies of the signal as it would there."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@dataclass
class PipedStack:
    stack: subprocess.Popen[bytes]
    tee: subprocess.Popen[bytes]
    output: Path  # what tee wrote
    errors: Path  # the stack's stderr
    pid_file: Path
    dicom_port: int

    def stderr_text(self) -> str:
        return self.errors.read_text(errors="replace")

    def listed_pids(self) -> dict[int, str]:
        """The stack's PID file: each process it started, by PID."""
        lines = self.pid_file.read_text().splitlines()
        return {int(pid): name for pid, name in (line.split(" ", 1) for line in lines)}

    def announced_ports(self) -> set[int]:
        """Every loopback port the banner names, and Orthanc's DICOM port."""
        banner = self.output.read_text(errors="replace")
        return {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", banner)} | {self.dicom_port}


@pytest.fixture
def piped_stack(provider: Provider, tmp_path: Path) -> Iterator[PipedStack]:
    """`python -m integration.stack ... | tee output`, one process group, started and up."""
    samples = tmp_path / "no-samples"  # uploading is not what is tested here
    samples.mkdir()
    dicom_port = free_port()
    errors = tmp_path / "stack.stderr"
    pid_file = tmp_path / "stack.pids"
    argv = [
        sys.executable,
        "-m",
        "integration.stack",
        "--workdir",
        str(tmp_path / "stack"),
        "--http-port",
        str(free_port()),
        "--dicom-port",
        str(dicom_port),
        "--samples",
        str(samples),
        "--pid-file",
        str(pid_file),
    ]
    env = {**os.environ, "HARNESS_PROVIDER": provider.name}
    # Brokers of its own: one from RABBITMQ_URL or AWS_ENDPOINT_URL is not the stack's to stop.
    env.pop("RABBITMQ_URL", None)
    env.pop("AWS_ENDPOINT_URL", None)
    with errors.open("wb") as stderr:
        stack = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=env,
            process_group=0,
            preexec_fn=as_a_terminal_job,
        )
    assert stack.stdout is not None
    output = tmp_path / "stack.log"
    tee = subprocess.Popen(
        ["tee", str(output)],
        stdin=stack.stdout,
        stdout=subprocess.DEVNULL,
        process_group=stack.pid,
        preexec_fn=as_a_terminal_job,
    )
    stack.stdout.close()  # tee is the pipe's only reader: when it ends, writes fail
    piped = PipedStack(stack, tee, output, errors, pid_file, dicom_port)
    try:
        wait_for(
            lambda: pid_file.exists() or stack.poll() is not None,
            STARTUP_TIMEOUT,
            "the stack to write its PID file",
        )
        assert stack.poll() is None, f"the stack exited early:\n{piped.stderr_text()}"
        wait_for(lambda: BANNER_END in output.read_text(), 10, "tee to write the banner")
        yield piped
    finally:
        # Whatever the test did, no group member outlives it (the processes the stack started
        # are the test's assertions, not this clean-up's).
        for process in (stack, tee):
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
    ids=lambda sig: signal.Signals(sig).name,
)
def test_the_stack_leaves_nothing_running_however_it_ends(
    piped_stack: PipedStack, provider: Provider, sig: signal.Signals
) -> None:
    listed = piped_stack.listed_pids()
    if provider.name == "local":
        names = set(listed.values())
        assert {"epmd", "rabbitmq", "orthanc-stack"} <= names, listed
        assert names & {"localstack", "moto"}, listed
    started = processes_in_sessions(listed)
    assert {process.pid for process in started} >= set(listed), "a listed process is not running"
    ports = piped_stack.announced_ports()
    assert all(accepts_connections(port) for port in ports), ports

    signalled = time.monotonic()
    os.killpg(piped_stack.stack.pid, sig)

    # The reader of the stack's stdout is gone: from here on, stdout is a broken pipe.
    assert piped_stack.tee.wait(10) == -sig
    status = piped_stack.stack.wait(STOP_TIMEOUT)
    wait_for(
        lambda: not any(process.is_alive() for process in started),
        STOP_TIMEOUT - (time.monotonic() - signalled),
        "the stack's processes to end",
        lambda: (
            "; still running: " + ", ".join(f"{p.pid} {p.command}" for p in started if p.is_alive())
        ),
    )
    wait_for(
        lambda: not any(accepts_connections(port) for port in ports),
        STOP_TIMEOUT - (time.monotonic() - signalled),
        "the stack's ports to close",
        lambda: f"; still open: {sorted(p for p in ports if accepts_connections(p))}",
    )
    stopped_after = time.monotonic() - signalled
    print(f"{sig.name}: {len(started)} processes gone {stopped_after:.1f} s after the signal")

    if sig == signal.SIGKILL:
        assert status == -signal.SIGKILL
        return
    stderr = piped_stack.stderr_text()
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr  # e.g. a failed flush of stdout at exit
    assert "Stopping:" in stderr
    assert not piped_stack.pid_file.exists(), "the clean-up did not finish"


KILLED_HARNESS = textwrap.dedent(
    """
    import sys
    import threading
    import time
    from pathlib import Path

    from integration.harness.processes import ManagedProcess

    child = ManagedProcess(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(600)"],
        log_path=Path(sys.argv[1]) / "sleeper.log",
    )
    # Started from a thread that ends right away, as the stack starts its brokers.
    starter = threading.Thread(target=child.start)
    starter.start()
    starter.join()
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def test_a_managed_child_outlives_the_thread_that_started_it_but_not_the_harness(
    tmp_path: Path,
) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", KILLED_HARNESS, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    child: ProcessIdentity | None = None
    try:
        assert harness.stdout is not None
        child_pid = int(harness.stdout.readline())
        stat = _read_stat(child_pid)
        assert stat is not None
        child = ProcessIdentity(child_pid, stat.start_time, _command_of(child_pid))
        time.sleep(1)
        assert child.is_alive(), "the child ended with the thread that started it"
        harness.kill()
        harness.wait(10)
        wait_for(lambda: not child.is_alive(), 10, "the child to end with the harness")
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
        if child is not None and child.is_alive():  # the start time tells a reused PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
