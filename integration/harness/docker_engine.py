"""A Docker engine of the harness's own, for machines where none answers.

Debian's `dockerd` (package docker.io), started as root with no say over the host's network: no
iptables rules, no ip_forward, no default bridge (containers then run with `--network host`). Its
images, state and socket live under one directory (HARNESS_DOCKER_DIR), images kept between runs.
It is stopped by PID; what it leaves behind (its netns mount, the bind mount of its data root,
containerd's socket folder, a trust key) is removed, and the firewall state taken before the start
is compared with the state after the stop.

    python -m integration.harness.docker_engine start      # prints DOCKER_HOST=unix://...
    python -m integration.harness.docker_engine env        # the same, without starting anything
    python -m integration.harness.docker_engine stop       # exit status 1 if the firewall changed
    python -m integration.harness.docker_engine firewall   # the state the check compares
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .processes import HarnessError, wait_until

DEFAULT_SOCKET = "/var/run/docker.sock"
STARTUP_TIMEOUT = 60.0
# dockerd stops running containers first (10 s each, in parallel), then containerd.
SHUTDOWN_TIMEOUT = 45.0
# Files dockerd 20.10 creates outside its own directories whatever it is told: its trust key,
# the plugin discovery folder, and containerd's shim socket folder.
STRAY_PATHS = (Path("/etc/docker/key.json"), Path("/run/docker"), Path("/run/containerd"))
# Read-only commands whose output is the host's firewall and forwarding state. Both iptables
# back ends: a rule may land in either. The legacy ones are read first: on a host that never
# used them, reading makes the kernel create their (empty) tables, after which iptables-nft
# notes that legacy tables exist; read in this order, both snapshots carry the same note.
FIREWALL_COMMANDS: tuple[tuple[str, ...], ...] = tuple(
    (binary, "-t", table, "-S")
    for binary in ("iptables-legacy", "iptables-nft", "ip6tables-legacy", "ip6tables-nft")
    for table in ("filter", "nat")
)
FORWARDING_SYSCTLS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/ipv4/conf/all/route_localnet",
)


def engine_dir(environ: Mapping[str, str] | None = None) -> Path:
    """HARNESS_DOCKER_DIR, else `docker` in the cache folder the flavours use."""
    source = os.environ if environ is None else environ
    chosen = source.get("HARNESS_DOCKER_DIR", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    xdg = source.get("XDG_CACHE_HOME", "").strip()
    cache = Path(xdg) if xdg else Path.home() / ".cache"
    return cache / "orthanc-python-plugins" / "docker"


@dataclass(frozen=True)
class EnginePaths:
    """Everything of one engine, under `root`."""

    root: Path

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def config_file(self) -> Path:
        return self.root / "daemon.json"

    @property
    def firewall_before(self) -> Path:
        return self.root / "firewall-before.txt"

    @property
    def strays_before(self) -> Path:
        return self.root / "stray-paths-before.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def owner(self) -> Path:
        return self.root / "owner"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def dockerd_argv(paths: EnginePaths, dockerd: str = "dockerd") -> list[str]:
    """dockerd's command line: its own directories, nothing done to the host's network."""
    return [
        dockerd,
        # Without these dockerd sets the FORWARD policy to DROP, adds NAT rules and turns
        # ip_forward on (even with --iptables=false, unless --ip-forward=false).
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
        # An empty configuration of its own: /etc/docker/daemon.json must not undo the above.
        f"--config-file={paths.config_file}",
        f"--data-root={paths.data_root}",
        f"--exec-root={paths.exec_root}",
        f"--pidfile={paths.pidfile}",
        f"--host={paths.docker_host}",
    ]


# -- the host's state ----------------------------------------------------------------------------


def firewall_state() -> str:
    """The host's iptables rules (every back end and table) and forwarding switches, as text."""
    lines: list[str] = []
    for argv in FIREWALL_COMMANDS:
        lines.append(f"$ {' '.join(argv)}")
        if shutil.which(argv[0]) is None:
            lines.append("(not installed)")
            continue
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        # iptables-nft notes on stderr that legacy tables exist; that note is state too.
        lines += (result.stdout + result.stderr).splitlines()
        if result.returncode != 0:
            lines.append(f"(exit status {result.returncode})")
    for path in FORWARDING_SYSCTLS:
        try:
            value = Path(path).read_text().strip()
        except OSError as error:
            value = f"(unreadable: {error.strerror})"
        lines.append(f"{path} = {value}")
    return "\n".join(lines) + "\n"


def firewall_difference(before: str, after: str) -> str:
    """A unified diff of two firewall states; empty when they are identical."""
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile="before the engine started",
        tofile="after the engine stopped",
    )
    return "".join(diff)


def mounts_under(directories: Sequence[Path], mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below any of `directories`, deepest first (the order to unmount)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    prefixes = [str(directory) for directory in directories]
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        # Field 5 is the mount point, with spaces and the like written as octal escapes.
        point = fields[4].encode().decode("unicode_escape")
        if any(point == prefix or point.startswith(prefix + "/") for prefix in prefixes):
            found.append(Path(point))
    return sorted(set(found), key=lambda path: (len(path.parts), str(path)), reverse=True)


def processes_using(directories: Sequence[Path]) -> dict[int, str]:
    """PID -> command line of every process whose command line names one of `directories`
    (dockerd, its containerd, containerd's shims)."""
    needles = [str(directory) for directory in directories]
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if command and any(needle in command for needle in needles):
            found[int(entry.name)] = command
    return found


# -- talking to an engine ------------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def engine_answers(docker_host: str, timeout: float = 3.0) -> bool:
    """True when the engine at `docker_host` (unix:// only) answers its ping."""
    if not docker_host.startswith("unix://"):
        return False
    connection = _UnixHTTPConnection(docker_host.removeprefix("unix://"), timeout)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def answering_engine(paths: EnginePaths, environ: Mapping[str, str] | None = None) -> str | None:
    """DOCKER_HOST of an engine that answers: DOCKER_HOST's, the default socket's, or ours."""
    source = os.environ if environ is None else environ
    candidates = [source.get("DOCKER_HOST", ""), f"unix://{DEFAULT_SOCKET}", paths.docker_host]
    for candidate in candidates:
        if candidate and engine_answers(candidate):
            return candidate
    return None


# -- the engine ----------------------------------------------------------------------------------


class DockerEngine:
    """Our dockerd under `paths.root`: start() when none answers, stop() by PID, then clean up."""

    def __init__(self, paths: EnginePaths | None = None) -> None:
        self.paths = paths or EnginePaths(engine_dir())
        self._child: subprocess.Popen[bytes] | None = None
        # True once start() started dockerd (rather than finding an engine that answers).
        self.started_here = False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two test sessions on one machine share the engine; only one starts or stops it.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with self.paths.lock.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pid(self) -> int | None:
        """The PID of our dockerd when it runs (the pidfile's, checked against its command)."""
        try:
            pid = int(self.paths.pidfile.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if "dockerd" in command and str(self.paths.pidfile) in command else None

    def start(self, owner: str | None = None) -> str:
        """DOCKER_HOST of an answering engine, starting ours first when none answers.

        `owner` (a PID, default this process's) is who stops it: `started_here` then says this
        caller should. Our engine left running by an owner that died without stopping it (a test
        process that was killed) is taken over the same way. The command line's `start` passes
        `cli`: whoever ran it runs `stop`.
        """
        with self._locked():
            found = answering_engine(self.paths)
            if found == self.paths.docker_host and self.pid() is not None:
                if not _owner_alive(self._read_owner()):
                    self._write_owner(owner)
                    self.started_here = True
                return found
            if found is not None:
                return found
            self._start()
            self._write_owner(owner)
            self.started_here = True
            return self.paths.docker_host

    def owner_of_running_engine(self) -> str | None:
        """Who is to stop our dockerd (a PID, or `cli`), when it runs."""
        return self._read_owner() if self.pid() is not None else None

    def _read_owner(self) -> str:
        try:
            return self.paths.owner.read_text().strip()
        except OSError:
            return ""

    def _write_owner(self, owner: str | None) -> None:
        self.paths.owner.write_text(f"{owner or os.getpid()}\n")

    def _start(self) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise HarnessError(
                "no Docker engine answers and dockerd is not installed: "
                "apt-get install --no-install-recommends docker.io"
            )
        if os.geteuid() != 0:
            raise HarnessError("no Docker engine answers, and starting dockerd needs root")
        if self.pid() is not None:
            raise HarnessError(
                f"dockerd (pid {self.pid()}) runs but does not answer on {self.paths.socket}; "
                f"see {self.paths.log}"
            )
        # Leftovers of an engine that was killed: they would make this one fail or be lost.
        self._clean_up()
        self.paths.firewall_before.write_text(firewall_state())
        strays = {str(path): path.exists() for path in STRAY_PATHS}
        self.paths.strays_before.write_text(json.dumps(strays))
        self.paths.config_file.write_text("{}\n")
        self.paths.socket.unlink(missing_ok=True)
        with self.paths.log.open("ab") as log:
            process = subprocess.Popen(
                dockerd_argv(self.paths, dockerd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._child = process

        def ready() -> bool:
            if process.poll() is not None:
                raise HarnessError(
                    f"dockerd exited with status {process.returncode}:\n{self._log_tail()}"
                )
            return engine_answers(self.paths.docker_host, timeout=2)

        try:
            wait_until(
                ready,
                timeout=STARTUP_TIMEOUT,
                what=f"dockerd to answer on {self.paths.socket}",
                interval=0.2,
                details=self._log_tail,
            )
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            self._clean_up()
            raise

    def stop(self) -> StopReport:
        """Stop our dockerd by PID and remove what it leaves; compare the firewall state."""
        with self._locked():
            pid = self.pid()
            if pid is not None:
                _terminate(pid, SHUTDOWN_TIMEOUT)
            if self._child is not None:
                # Started by this process: collect its exit status (it is gone by now).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._child.wait(10)
                self._child = None
            killed = self._clean_up()
            difference = ""
            if self.paths.firewall_before.exists():
                difference = firewall_difference(
                    self.paths.firewall_before.read_text(), firewall_state()
                )
                self.paths.firewall_before.unlink()
            return StopReport(
                stopped_pid=pid,
                killed=killed,
                mounts_left=mounts_under([self.paths.data_root, self.paths.exec_root]),
                processes_left=processes_using([self.paths.root]),
                firewall_difference=difference,
            )

    def _clean_up(self) -> dict[int, str]:
        """Kill what still runs from our directories (containerd, shims), unmount what is
        mounted under them, remove the stray files dockerd created. Returns what was killed."""
        leftovers = processes_using([self.paths.root])
        for pid in leftovers:
            _terminate(pid, 10.0)
        for point in mounts_under([self.paths.data_root, self.paths.exec_root]):
            result = subprocess.run(
                ["umount", str(point)], capture_output=True, text=True, timeout=30, check=False
            )
            if result.returncode != 0:
                # Busy: detach it now, the kernel frees it once the last user is gone.
                subprocess.run(["umount", "--lazy", str(point)], timeout=30, check=False)
        self._remove_strays()
        for path in (self.paths.socket, self.paths.pidfile, self.paths.owner):
            path.unlink(missing_ok=True)
        return leftovers

    def _remove_strays(self) -> None:
        try:
            existed: dict[str, bool] = json.loads(self.paths.strays_before.read_text())
        except (OSError, ValueError):
            return
        for name, was_there in existed.items():
            path = Path(name)
            if was_there or not path.exists():
                continue
            if path.is_dir():
                # Only folders that hold nothing but empty folders: a socket left there is in use.
                if not any(child.is_file() or child.is_socket() for child in path.rglob("*")):
                    shutil.rmtree(path)
            else:
                path.unlink()
        self.paths.strays_before.unlink()

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.paths.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class StopReport:
    stopped_pid: int | None
    killed: dict[int, str]
    mounts_left: list[Path]
    processes_left: dict[int, str]
    firewall_difference: str

    @property
    def clean(self) -> bool:
        return not (self.mounts_left or self.processes_left or self.firewall_difference)

    def describe(self) -> str:
        lines = [
            f"dockerd {self.stopped_pid} stopped"
            if self.stopped_pid is not None
            else "no dockerd of ours was running"
        ]
        lines += [f"killed leftover {pid}: {command}" for pid, command in self.killed.items()]
        lines += [f"still mounted: {point}" for point in self.mounts_left]
        lines += [f"still running {pid}: {command}" for pid, command in self.processes_left.items()]
        if self.firewall_difference:
            lines.append("the host's firewall changed:\n" + self.firewall_difference)
        else:
            lines.append("firewall and forwarding identical before and after")
        return "\n".join(lines)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait up to `timeout` for the PID to go, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            return
        time.sleep(0.1)


def _owner_alive(owner: str) -> bool:
    """True for the command line's `cli` (never taken over) and for a PID that still runs."""
    if owner == "cli":
        return True
    return owner.isdigit() and process_alive(int(owner))


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone, and is reaped when it is our child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":  # a zombie of ours: reap it
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integration.harness.docker_engine",
        description="A Docker engine for the harness that leaves the host's network alone.",
    )
    parser.add_argument("command", choices=["start", "stop", "env", "firewall"])
    parser.add_argument(
        "--dir", type=Path, default=None, help="the engine's directory (HARNESS_DOCKER_DIR)"
    )
    arguments = parser.parse_args(argv)
    engine = DockerEngine(EnginePaths(arguments.dir or engine_dir()))
    try:
        if arguments.command == "start":
            print(f"DOCKER_HOST={engine.start(owner='cli')}")
        elif arguments.command == "env":
            found = answering_engine(engine.paths)
            if found is None:
                print("no Docker engine answers", file=sys.stderr)
                return 1
            print(f"DOCKER_HOST={found}")
        elif arguments.command == "firewall":
            print(firewall_state(), end="")
        else:
            report = engine.stop()
            print(report.describe(), file=sys.stderr)
            return 0 if report.clean else 1
    except HarnessError as error:
        print(f"docker_engine: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
