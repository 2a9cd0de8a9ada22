"""Orthanc flavours: which Orthanc, Python plugin and Python the end-to-end suites run against.

HARNESS_FLAVOUR selects one (the suites do not change with it):
- `debian-12` (default): the host's Debian packages, Orthanc 1.10.1 with Python plugin 4.0;
- `debian-13`, `debian-sid`: a Debian root filesystem of that suite, built here by `ensure_rootfs`
  into a cache directory (HARNESS_FLAVOUR_CACHE, default
  `~/.cache/orthanc-python-plugins/flavours/<flavour>/`), in which Orthanc runs chrooted.
`ensure_rootfs("debian-12")` builds a bookworm one the same way, for container images.

A root filesystem holds Debian's `orthanc`, `orthanc-python` and `orthanc-postgresql`, and a venv
of its own Python at /opt/orthanc-plugins with this checkout's wheels installed by pip, plus the
entry composed for all the plugins at /etc/orthanc/python/__init__.py. It is rebuilt when its
recipe changes (suite, packages, `ROOTFS_RECIPE`), its venv when the plugins' sources change.
Every step that mounts something (debootstrap, apt, pip, Orthanc itself) runs in a mount namespace
of its own, so a mount never outlives the process that needed it, however that process ends.

    python -m integration.harness.flavours build debian-sid   # prints the root filesystem's path
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..processes import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[3]
FLAVOUR_VARIABLE = "HARNESS_FLAVOUR"
CACHE_VARIABLE = "HARNESS_FLAVOUR_CACHE"
MIRROR_VARIABLE = "HARNESS_DEBIAN_MIRROR"
DEFAULT_FLAVOUR = "debian-12"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Bump when build_rootfs or install_plugins_venv changes what it produces: caches are rebuilt.
ROOTFS_RECIPE = 1
VENV_RECIPE = 2

ROOTFS_PACKAGES = (
    "orthanc",
    "orthanc-python",
    "orthanc-postgresql",
    "python3-venv",
    "python3-pip",
    "ca-certificates",
)
# Paths inside a root filesystem.
ORTHANC_BINARY = PurePosixPath("/usr/sbin/Orthanc")
PYTHON_PLUGIN = PurePosixPath("/usr/share/orthanc/plugins/libOrthancPython.so")
PLUGINS_VENV = PurePosixPath("/opt/orthanc-plugins")
COMPOSED_ENTRY = PurePosixPath("/etc/orthanc/python/__init__.py")
ROOTFS_STAMP = PurePosixPath("/etc/orthanc-python-plugins/flavour.json")
VENV_STAMP = PLUGINS_VENV / "harness-stamp.json"

# The distributions installed into a flavour's venv, built from this checkout, and the
# composer's names of the plugins among them.
WHEEL_SOURCES = (
    "packages/dicom-events",
    "packages/series-private-tags",
    "packages/series-thumbnail",
    "tools/composer",
)
PLUGIN_NAMES = ("dicom-events", "series-private-tags", "series-thumbnail")

_ROOT = PurePosixPath("/")
_CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Flavour:
    """A Debian release and the versions it is known to ship (major.minor prefixes)."""

    name: str
    suite: str
    orthanc: str
    plugin: str
    python: str
    on_host: bool = False  # the local provider runs the host's own packages, no root filesystem


FLAVOURS: dict[str, Flavour] = {
    flavour.name: flavour
    for flavour in (
        Flavour("debian-12", "bookworm", orthanc="1.10", plugin="4.0", python="3.11", on_host=True),
        Flavour("debian-13", "trixie", orthanc="1.12", plugin="5.0", python="3.13"),
        Flavour("debian-sid", "sid", orthanc="1.13", plugin="7.1", python="3.14"),
    )
}


def selected_flavour(environ: Mapping[str, str] | None = None) -> str:
    """The flavour HARNESS_FLAVOUR names (`debian-12` when unset)."""
    source = os.environ if environ is None else environ
    name = source.get(FLAVOUR_VARIABLE, "").strip().lower() or DEFAULT_FLAVOUR
    if name not in FLAVOURS:
        raise HarnessError(f"{FLAVOUR_VARIABLE}={name!r}: expected one of {', '.join(FLAVOURS)}")
    return name


def runs_chrooted(flavour: str) -> bool:
    """True when the local provider runs this flavour's Orthanc in its root filesystem."""
    return not FLAVOURS[flavour].on_host


# -- the Python plugin's configuration ---------------------------------------------------------


@dataclass(frozen=True)
class PythonPluginApi:
    """What a version of Orthanc's Python plugin reads from Orthanc's configuration."""

    version: tuple[int, int]

    @property
    def reads_python_path(self) -> bool:
        # Plugin 4.0 silently ignores a `Python` section: Orthanc then starts without the script.
        return self.version >= (4, 1)

    @property
    def reads_allow_threads(self) -> bool:
        return self.version >= (4, 3)

    def script_settings(self, script: str) -> dict[str, Any]:
        """The configuration that runs `script` (a path as Orthanc sees it)."""
        if not self.reads_python_path:
            return {"PythonScript": script}
        python: dict[str, Any] = {"Path": script}
        if self.reads_allow_threads:
            # Calls into Orthanc's SDK release the GIL: the plugins' worker threads keep running
            # while another thread waits in one.
            python["AllowThreads"] = True
        return {"Python": python}


def plugin_api(flavour: str) -> PythonPluginApi:
    """The Python plugin API of a flavour: for a root filesystem, the installed version once
    built (the version the suite is known to ship before); for the host's, 4.0."""
    installed = None if FLAVOURS[flavour].on_host else read_rootfs_stamp(flavour)
    version = installed["versions"]["plugin"] if installed else FLAVOURS[flavour].plugin
    return PythonPluginApi(major_minor(version))


def major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise HarnessError(f"not a version: {version!r}")
    return int(match.group(1)), int(match.group(2))


# -- where things are --------------------------------------------------------------------------


def cache_dir(flavour: str, environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding a flavour's root filesystem (`<cache>/<flavour>/rootfs`)."""
    source = os.environ if environ is None else environ
    base = source.get(CACHE_VARIABLE, "").strip()
    if base:
        return Path(base).expanduser() / flavour
    xdg = source.get("XDG_CACHE_HOME", "").strip()
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "orthanc-python-plugins" / "flavours" / flavour


def rootfs_path(flavour: str) -> Path:
    return cache_dir(flavour) / "rootfs"


def inside(rootfs: Path, path: PurePosixPath) -> Path:
    """The host path of `path` as seen inside `rootfs`."""
    return rootfs / path.relative_to("/")


def venv_site_packages(python_version: str) -> PurePosixPath:
    """The plugins venv's site-packages inside a root filesystem with that Python."""
    return PLUGINS_VENV / "lib" / f"python{python_version}" / "site-packages"


def read_rootfs_stamp(flavour: str) -> dict[str, Any] | None:
    """What the build of a flavour's root filesystem recorded (None when not built)."""
    try:
        stamp: dict[str, Any] = json.loads(
            inside(rootfs_path(flavour), ROOTFS_STAMP).read_text(encoding="utf-8")
        )
    except (FileNotFoundError, ValueError):
        return None
    return stamp


@dataclass(frozen=True)
class ChrootedOrthanc:
    """A built flavour as the local provider runs it: paths inside its root filesystem."""

    flavour: str
    rootfs: Path
    python_version: str
    api: PythonPluginApi
    view: Path  # see chroot_command

    @property
    def site_packages(self) -> PurePosixPath:
        return venv_site_packages(self.python_version)

    def standalone_entry(self, package: str) -> PurePosixPath:
        """A plugin's own `orthanc_entry.py`, as installed in the flavour's venv."""
        return self.site_packages / package / "orthanc_entry.py"

    def compose(self, plugins: Sequence[str], output: Path) -> None:
        """Write the composed entry for `plugins` to `output` with the venv's composer, run
        chrooted (`output`'s folder is shared at the same path)."""
        output.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            str(PLUGINS_VENV / "bin" / "orthanc-plugins-compose"),
            *plugins,
            "--site-packages",
            str(self.site_packages),
            "--output",
            str(output),
        ]
        command = chroot_command(self.rootfs, argv, shared=[output.parent], view=self.view)
        _run(command, timeout=120, env=chroot_environment())

    def command(self, argv: Sequence[str], *, needs: Iterable[Path], cwd: Path) -> list[str]:
        """The host command that runs `argv` chrooted, with the host paths it `needs` visible at
        the same paths (see `folders_to_share`)."""
        shared = folders_to_share(self.rootfs, needs)
        return chroot_command(self.rootfs, argv, shared=shared, cwd=cwd, view=self.view)


def folders_to_share(rootfs: Path, paths: Iterable[Path]) -> list[Path]:
    """The host folders that make `paths` visible inside `rootfs`: each path's folder, or its
    nearest existing one for a path still to be created. A folder where `rootfs` has files of
    its own (/usr/share/..., say) is never shared over them: that would hide them."""
    folders: list[Path] = []
    for path in paths:
        if not path.is_absolute():
            continue
        folder = path
        while not folder.is_dir():
            folder = folder.parent
        folder = folder.resolve()
        if any(folder.is_relative_to(system) for system in _MOUNTED_IN_EVERY_ROOTFS):
            continue  # e.g. a test naming /proc/version as a folder no plugin can create
        if _holds_nothing(inside(rootfs, PurePosixPath(folder))) and folder not in folders:
            folders.append(folder)
    return folders


# The chroot mounts its own there; the host's are never shared over them.
_MOUNTED_IN_EVERY_ROOTFS = (Path("/proc"), Path("/dev"), Path("/sys"))


def _holds_nothing(path: Path) -> bool:
    if not os.path.lexists(path):
        return True
    return path.is_dir() and not path.is_symlink() and next(path.iterdir(), None) is None


def paths_in(configuration: Any) -> list[Path]:
    """Every absolute path among the string values of an Orthanc configuration."""
    if isinstance(configuration, Mapping):
        return [path for value in configuration.values() for path in paths_in(value)]
    if isinstance(configuration, list):
        return [path for value in configuration for path in paths_in(value)]
    if isinstance(configuration, str) and configuration.startswith("/"):
        return [Path(configuration)]
    return []


_prepared: dict[str, ChrootedOrthanc] = {}


def chrooted_orthanc(flavour: str) -> ChrootedOrthanc:
    """The flavour ready to run (built on first use, once per process)."""
    if flavour not in _prepared:
        _require_root(f"running Orthanc chrooted ({FLAVOUR_VARIABLE}={flavour})")
        rootfs = ensure_rootfs(flavour)
        stamp = read_rootfs_stamp(flavour)
        if stamp is None:
            raise HarnessError(f"{rootfs}: no build stamp after the build")
        view = cache_dir(flavour) / "view"
        view.mkdir(exist_ok=True)
        _prepared[flavour] = ChrootedOrthanc(
            flavour,
            rootfs,
            python_version=stamp["versions"]["python_abi"],
            api=PythonPluginApi(major_minor(stamp["versions"]["plugin"])),
            view=view,
        )
    return _prepared[flavour]


# -- running things in a root filesystem -------------------------------------------------------

# Runs in a mount namespace of its own (unshare): the mounts below disappear with the process,
# whatever ends it. Arguments: ROOTFS CWD VIEW [SOURCE TARGET]... -- COMMAND...
# With a VIEW folder the command runs on a copy-on-write view of ROOTFS (overlay on a tmpfs), so
# neither what it writes nor the mount points of shared folders reach the cached tree.
_NAMESPACE_SCRIPT = """set -eu
root=$1 cwd=$2 view=$3
shift 3
if [ -n "$view" ]; then
  mount -t tmpfs tmpfs "$view"
  mkdir "$view/upper" "$view/work" "$view/root"
  mount -t overlay overlay \\
    -o "lowerdir=$root,upperdir=$view/upper,workdir=$view/work" "$view/root"
  root=$view/root
fi
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
while [ "$1" != -- ]; do
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  shift 2
done
shift
exec chroot "$root" /usr/bin/env --chdir="$cwd" "$@"
"""


def chroot_command(
    rootfs: Path,
    argv: Sequence[str],
    *,
    shared: Sequence[Path] = (),
    binds: Sequence[tuple[Path, PurePosixPath]] = (),
    cwd: PurePosixPath | Path = _ROOT,
    view: Path | None = None,
) -> list[str]:
    """A host command running `argv` chrooted in `rootfs`, with /proc, /dev and a private /tmp
    mounted, the host folders `shared` at the same paths and each (host folder, path inside) of
    `binds`. With `view` (an empty folder, any number of commands may share it), the command
    runs on a throw-away copy-on-write view of `rootfs` instead of `rootfs` itself.

    The command keeps one PID from `unshare` to the program itself (each step execs the next),
    so a signal sent to it reaches the program.
    """
    mounts: list[tuple[Path, PurePosixPath]] = list(binds)
    covered: list[Path] = []
    # Outermost first, and once: a folder inside an already shared one is visible already.
    for folder in sorted({path.resolve() for path in shared}, key=lambda path: len(path.parts)):
        if not any(folder.is_relative_to(outer) for outer in covered):
            covered.append(folder)
            mounts.append((folder, PurePosixPath(folder)))
    pairs = [str(part) for source, target in mounts for part in (source, target)]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        _NAMESPACE_SCRIPT,
        "flavour-chroot",
        str(rootfs),
        str(cwd),
        str(view or ""),
        *pairs,
        "--",
        *argv,
    ]


def chroot_environment() -> dict[str, str]:
    """A clean environment for commands run in a root filesystem (plus the host's proxies)."""
    env = {
        "PATH": _CHROOT_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name, value in os.environ.items():
        if name.lower() in ("http_proxy", "https_proxy", "no_proxy"):
            env[name] = value
    return env


def run_chrooted(
    rootfs: Path,
    argv: Sequence[str],
    *,
    shared: Sequence[Path] = (),
    binds: Sequence[tuple[Path, PurePosixPath]] = (),
    timeout: float,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `argv` chrooted (see `chroot_command`); its output, or HarnessError with it."""
    command = chroot_command(rootfs, argv, shared=shared, binds=binds)
    return _run(command, timeout=timeout, env={**chroot_environment(), **(env or {})}, log=log)


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> str:
    try:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as timed_out:
        raise HarnessError(f"{_shown(argv)} still ran after {timeout:.0f} s") from timed_out
    output = result.stdout + result.stderr
    if log is not None:
        with log.open("a", encoding="utf-8") as file:
            file.write(f"$ {_shown(argv)}\n{output}\n")
    if result.returncode != 0:
        raise HarnessError(
            f"{_shown(argv)} failed with status {result.returncode}:\n{_last_lines(output, 40)}"
        )
    return output


def _shown(argv: Sequence[str]) -> str:
    # The namespace script is noise in a message: show what runs chrooted.
    parts = list(argv)
    if "--" in parts and parts[:1] == ["unshare"]:
        return f"(chroot {parts[8]}) " + " ".join(parts[parts.index("--") + 1 :])
    return " ".join(parts)


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[-count:])


# -- building a root filesystem ----------------------------------------------------------------


def rootfs_inputs(flavour: str) -> dict[str, Any]:
    """What a root filesystem is built from: a change in any of these rebuilds it."""
    return {
        "flavour": flavour,
        "suite": FLAVOURS[flavour].suite,
        "packages": list(ROOTFS_PACKAGES),
        "recipe": ROOTFS_RECIPE,
    }


def digest_of(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def debian_mirror(environ: Mapping[str, str] | None = None) -> str:
    """HARNESS_DEBIAN_MIRROR, else the Debian mirror named in the host's APT sources."""
    source = os.environ if environ is None else environ
    chosen = source.get(MIRROR_VARIABLE, "").strip()
    if chosen:
        return chosen
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for file in files:
        with contextlib.suppress(OSError):
            mirror = mirror_in_sources(file.read_text(encoding="utf-8", errors="replace"))
            if mirror:
                return mirror
    return DEFAULT_MIRROR


def mirror_in_sources(text: str) -> str | None:
    """The first Debian archive URI of an APT sources file (one-line or deb822 format)."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["deb"]:
            # deb [options] URI SUITE COMPONENTS...
            rest = [word for word in words[1:] if not word.startswith("[") and "=" not in word]
            rest = [word for word in rest if not word.endswith("]")]
            if rest and _is_debian_archive(rest[0]):
                return rest[0]
        elif line.startswith("URIs:"):
            for uri in line.split(":", 1)[1].split():
                if _is_debian_archive(uri):
                    return uri
    return None


def _is_debian_archive(uri: str) -> bool:
    return uri.rstrip("/").endswith("/debian")


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HarnessError(f"{what} needs root (debootstrap, mount, chroot)")


def _debootstrap() -> str:
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    _log("installing debootstrap on the host (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"]
    try:
        _run(install, timeout=600, env=env)
    except HarnessError:
        _run(["apt-get", "update", "-q"], timeout=600, env=env)
        _run(install, timeout=600, env=env)
    found = shutil.which("debootstrap", path="/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise HarnessError("debootstrap is still missing after apt-get install debootstrap")
    return found


def build_rootfs(flavour: str, target: Path, log: Path) -> dict[str, Any]:
    """Build a flavour's root filesystem in `target` (an empty folder); returns its stamp."""
    _require_root("building a root filesystem")
    suite = FLAVOURS[flavour].suite
    mirror = debian_mirror()
    started = time.monotonic()
    # debootstrap mounts /proc and /sys in the target itself: in a namespace they cannot leak.
    _run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            _debootstrap(),
            "--variant=minbase",
            suite,
            str(target),
            mirror,
        ],
        timeout=1800,
        log=log,
    )
    # The build machine's clock may be ahead of the suite's index dates.
    (target / "etc/apt/apt.conf.d/99orthanc-harness").write_text(
        'Acquire::Check-Valid-Until "false";\n'
    )
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# No service starts while packages are installed.\nexit 101\n")
    policy.chmod(0o755)
    resolv = target / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_bytes(Path("/etc/resolv.conf").read_bytes())

    def apt(*args: str) -> None:
        run_chrooted(target, ["apt-get", "-q", *args], timeout=1800, log=log)

    apt("update")
    apt("install", "-y", "--no-install-recommends", *ROOTFS_PACKAGES)
    # The venv must be made by the Python the plugin embeds, which need not be python3's default.
    python_abi = embedded_python(inside(target, PYTHON_PLUGIN))
    if not inside(target, PurePosixPath(f"/usr/lib/python{python_abi}/venv")).exists():
        apt("install", "-y", "--no-install-recommends", f"python{python_abi}-venv")
    versions = installed_versions(target, python_abi)
    apt("clean")
    for leftover in ("var/lib/apt/lists", "var/cache/apt"):
        for path in (target / leftover).glob("*"):
            if path.is_file() and path.name != "lock":
                path.unlink()
            elif path.is_dir() and path.name != "partial":
                shutil.rmtree(path)
    stamp = {
        "inputs": rootfs_inputs(flavour),
        "digest": digest_of(rootfs_inputs(flavour)),
        "mirror": mirror,
        "versions": versions,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    stamp_path = inside(target, ROOTFS_STAMP)
    stamp_path.parent.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return stamp


def embedded_python(plugin: Path) -> str:
    """The Python version (e.g. 3.14) that the Python plugin links to."""
    match = re.search(rb"libpython(3\.\d+)", plugin.read_bytes())
    if match is None:
        raise HarnessError(f"{plugin} names no libpython3.x")
    return match.group(1).decode()


def installed_versions(rootfs: Path, python_abi: str) -> dict[str, Any]:
    """Upstream versions of Orthanc, its Python plugin and the embedded Python in `rootfs`."""
    packages = ["orthanc", "orthanc-python", f"libpython{python_abi}"]
    output = run_chrooted(
        rootfs,
        ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n", *packages],
        timeout=60,
    )
    found = dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)
    return {
        "orthanc": upstream_version(found["orthanc"]),
        "plugin": upstream_version(found["orthanc-python"]),
        "python": upstream_version(found[f"libpython{python_abi}"]),
        "python_abi": python_abi,
        "debian": {name: found[name] for name in packages},
    }


def upstream_version(debian_version: str) -> str:
    """`1:1.13.0+dfsg-1` -> `1.13.0`."""
    version = debian_version.split(":", 1)[-1]
    version = version.rsplit("-", 1)[0] if "-" in version else version
    return re.split(r"[+~]", version, maxsplit=1)[0]


# -- the plugins' venv -------------------------------------------------------------------------


def sources_digest(repo_root: Path = REPO_ROOT) -> str:
    """A hash of what the wheels are built from (pyproject.toml, README, LICENSE, src/)."""
    digest = hashlib.sha256(f"venv recipe {VENV_RECIPE}".encode())
    for source in WHEEL_SOURCES:
        folder = repo_root / source
        files = [folder / name for name in ("pyproject.toml", "README.md", "LICENSE")]
        files += [
            path
            for path in sorted((folder / "src").rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        ]
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(repo_root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_wheels(output: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """`python -m build --wheel` of each distribution of WHEEL_SOURCES into `output`."""
    for source in WHEEL_SOURCES:
        # The dev venv has the build backend (hatchling): no isolated environment to download.
        _run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--no-isolation",
                "--outdir",
                str(output),
                str(repo_root / source),
            ],
            timeout=300,
        )
    wheels = sorted(output.glob("*.whl"))
    if len(wheels) != len(WHEEL_SOURCES):
        raise HarnessError(f"expected {len(WHEEL_SOURCES)} wheels in {output}, found {wheels}")
    return wheels


# Extras installed with a distribution's wheel: what several nodes on one PostgreSQL need.
WHEEL_EXTRAS = {"orthanc_dicom_events": "cluster"}


def with_extras(wheel: Path) -> str:
    """The pip requirement for a wheel file, with its extras (`x.whl[cluster]`)."""
    extra = WHEEL_EXTRAS.get(wheel.name.split("-", 1)[0])
    return f"{wheel}[{extra}]" if extra else str(wheel)


def host_ca_bundle() -> Path | None:
    """The certificates the host's pip trusts: PIP_CERT, else the system bundle."""
    for candidate in (os.environ.get("PIP_CERT", ""), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def read_venv_stamp(rootfs: Path) -> dict[str, Any] | None:
    try:
        stamp: dict[str, Any] = json.loads(inside(rootfs, VENV_STAMP).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return stamp


def install_plugins_venv(rootfs: Path, python_abi: str, digest: str, log: Path) -> dict[str, Any]:
    """(Re)create /opt/orthanc-plugins in `rootfs` the way a user would: a venv of the rootfs's
    Python, `pip install` of this checkout's wheels, then the composer for all the plugins.

    The venv is built aside (bound at its final path, so its scripts name that path) and then
    renamed into place: an Orthanc running from the previous one never sees a half venv.
    """
    started = time.monotonic()
    final = inside(rootfs, PLUGINS_VENV)
    final.mkdir(parents=True, exist_ok=True)  # the mount point of the first build
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.build-", dir=final.parent))
    python = f"/usr/bin/python{python_abi}"
    with tempfile.TemporaryDirectory(prefix="orthanc-flavour-wheels-") as wheel_dir:
        wheels = build_wheels(Path(wheel_dir))
        pip_env: dict[str, str] = {}
        host_bundle = host_ca_bundle()
        if host_bundle is not None:
            # pip trusts what the host's pip trusts (a proxy's CA, say), without the rootfs
            # keeping it.
            shutil.copyfile(host_bundle, Path(wheel_dir) / "host-ca.pem")
            pip_env["PIP_CERT"] = str(Path(wheel_dir) / "host-ca.pem")
        script = (
            f"{python} -m venv {PLUGINS_VENV} && "
            f"{PLUGINS_VENV}/bin/pip install -q --no-cache-dir "
            + " ".join(shlex.quote(with_extras(wheel)) for wheel in wheels)
        )
        try:
            run_chrooted(
                rootfs,
                ["/bin/sh", "-c", script],
                shared=[Path(wheel_dir)],
                binds=[(staging, PLUGINS_VENV)],
                timeout=1200,
                log=log,
                env=pip_env,
            )
        except BaseException:
            _remove_tree(staging)
            raise
    _replace(final, staging, rootfs.parent / "replaced")
    composed = inside(rootfs, COMPOSED_ENTRY)
    composed.parent.mkdir(parents=True, exist_ok=True)
    run_chrooted(
        rootfs,
        [
            str(PLUGINS_VENV / "bin" / "orthanc-plugins-compose"),
            *PLUGIN_NAMES,
            "--site-packages",
            str(venv_site_packages(python_abi)),
            "--output",
            str(COMPOSED_ENTRY),
        ],
        timeout=120,
        log=log,
    )
    stamp = {
        "sources_digest": digest,
        "wheels": [wheel.name for wheel in wheels],
        "python": python,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    inside(rootfs, VENV_STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return stamp


# -- the cache ---------------------------------------------------------------------------------


def ensure_rootfs(flavour: str) -> Path:
    """The flavour's root filesystem, built or brought up to date first when needed: Orthanc,
    its Python plugin, the plugins' venv (/opt/orthanc-plugins, this checkout's wheels) and the
    composed entry (/etc/orthanc/python/__init__.py). Holds a lock while it checks and builds,
    so concurrent runs build once."""
    if flavour not in FLAVOURS:
        raise HarnessError(f"unknown flavour {flavour!r}: expected one of {', '.join(FLAVOURS)}")
    folder = cache_dir(flavour)
    folder.mkdir(parents=True, exist_ok=True)
    rootfs = folder / "rootfs"
    log = folder / "build.log"
    with _locked(folder / "lock"):
        _remove_leftovers(folder)
        stamp = read_rootfs_stamp(flavour)
        if stamp is None or stamp.get("digest") != digest_of(rootfs_inputs(flavour)):
            _require_root("building a root filesystem")
            log.write_text("")  # the log of the last build only
            building = Path(tempfile.mkdtemp(prefix="rootfs.build-", dir=folder))
            try:
                stamp = build_rootfs(flavour, building, log)
            except BaseException:
                _remove_tree(building)
                raise
            _replace(rootfs, building, folder / "replaced")
            versions = stamp["versions"]
            _log(
                f"{flavour}: root filesystem built in {stamp['build_seconds']} s "
                f"(Orthanc {versions['orthanc']}, Python plugin {versions['plugin']}, "
                f"Python {versions['python']}): {rootfs}{_unexpected_versions(flavour, versions)}"
            )
        digest = sources_digest()
        venv = read_venv_stamp(rootfs)
        if venv is None or venv.get("sources_digest") != digest:
            _require_root("installing the plugins into a root filesystem")
            if venv is not None:
                log.write_text("")  # a venv rebuild after a rootfs build keeps that build's log
            venv = install_plugins_venv(rootfs, stamp["versions"]["python_abi"], digest, log)
            _log(
                f"{flavour}: plugins venv {PLUGINS_VENV} built in {venv['build_seconds']} s "
                f"({len(venv['wheels'])} wheels of this checkout, sources {digest})"
            )
            _remove_leftovers(folder)  # what this build replaced may be one tree too many
    return rootfs


def _unexpected_versions(flavour: str, versions: Mapping[str, str]) -> str:
    expected = FLAVOURS[flavour]
    wrong = [
        f"{what} {versions[what]}, expected {prefix}"
        for what, prefix in (
            ("orthanc", expected.orthanc),
            ("plugin", expected.plugin),
            ("python", expected.python),
        )
        if not versions[what].startswith(prefix)
    ]
    return f" (the suite moved: {'; '.join(wrong)})" if wrong else ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# A replaced tree is kept this long (the most recent two at most): an Orthanc of another run may
# still import from it. It goes outside the root filesystem, which an image may copy whole.
REPLACED_KEPT_SECONDS = 3600
REPLACED_KEPT_COUNT = 2


def _replace(final: Path, built: Path, replaced: Path) -> None:
    """Put `built` at `final` by renames (`final` is always either the old or the new tree); the
    old tree goes into the folder `replaced`."""
    built.chmod(0o755)
    if final.is_dir() and next(final.iterdir(), None) is None:
        final.rmdir()  # the mount point of a first venv build
    elif final.exists():
        replaced.mkdir(exist_ok=True)
        final.rename(replaced / f"{final.name}-{time.time():.0f}-{os.getpid()}")
    built.rename(final)


def _remove_leftovers(folder: Path) -> None:
    """Remove unfinished builds (the lock is held: none is under way) and the replaced trees no
    longer kept."""
    venv = inside(folder / "rootfs", PLUGINS_VENV)
    for final in (folder / "rootfs", venv):
        for unfinished in [*final.parent.glob(f"{final.name}.build-*")]:
            _remove_tree(unfinished)
    replaced = sorted(
        (path for path in (folder / "replaced").glob("*-*-*") if path.is_dir()),
        key=lambda path: int(path.name.rsplit("-", 2)[-2]),
        reverse=True,
    )
    for index, tree in enumerate(replaced):
        replaced_at = int(tree.name.rsplit("-", 2)[-2])
        if index >= REPLACED_KEPT_COUNT or time.time() - replaced_at > REPLACED_KEPT_SECONDS:
            _remove_tree(tree)


def _remove_tree(path: Path) -> None:
    """rm -rf, refused when something is mounted below `path` (it would be emptied too)."""
    if not path.exists():
        return
    resolved = path.resolve()
    for mount_point in _mount_points():
        if mount_point == resolved or mount_point.is_relative_to(resolved):
            raise HarnessError(f"not removing {path}: {mount_point} is mounted inside it")
    shutil.rmtree(resolved)


def _mount_points() -> list[Path]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point, with spaces and the like escaped as octal.
            field = line.split()[4]
            points.append(Path(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), field)))
    return points


def _log(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr, flush=True)


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integration.harness.flavours",
        description="Build an Orthanc flavour's root filesystem (cached) and print its path.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build (or check) a flavour's root filesystem")
    build.add_argument("flavour", choices=sorted(FLAVOURS))
    commands.add_parser("list", help="the flavours and what each one's cache holds")
    hatch = commands.add_parser(
        "hatch-test", help="each package's `hatch test` on the flavour's Python, chrooted"
    )
    hatch.add_argument("flavour", choices=sorted(FLAVOURS))
    hatch.add_argument("packages", nargs="+", type=Path, help="distribution folders")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(ensure_rootfs(args.flavour))
        elif args.command == "hatch-test":
            from .hatch_tests import hatch_test  # imports this module: only when asked

            return hatch_test(args.flavour, args.packages)
        else:
            for name, flavour in FLAVOURS.items():
                stamp = read_rootfs_stamp(name)
                built = (
                    "built: Orthanc {orthanc}, plugin {plugin}, Python {python}".format(
                        **stamp["versions"]
                    )
                    if stamp
                    else "not built"
                )
                print(f"{name:<11} {flavour.suite:<9} {built}  {rootfs_path(name)}")
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
