"""A real Orthanc for the suites: Debian's binary, the Python plugin, temp storage, free ports."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

import requests

from . import flavours
from .flavours import ChrootedOrthanc
from .processes import HarnessError, ManagedProcess, free_port, tail, wait_until

ORTHANC_BINARY = Path(os.environ.get("ORTHANC_BINARY", "/usr/sbin/Orthanc"))
PYTHON_PLUGIN = Path(
    os.environ.get("ORTHANC_PYTHON_PLUGIN", "/usr/share/orthanc/plugins/libOrthancPython.so")
)
ORTHANC_AET = "ORTHANC"

Entry = Literal["composed", "standalone"]
# DCMTK (in storescu and in Orthanc's DICOM server) leaves Nagle's algorithm on unless told: each
# C-STORE then waits for a delayed ACK (about 11 instances/s instead of several hundred).
DCMTK_NO_DELAY = {"TCP_NODELAY": "1"}


@dataclass(frozen=True)
class PluginInfo:
    """What the harness knows about one plugin of the repository."""

    name: str  # the composer's name for it
    package: str  # its import package
    status_route: str  # a route its script registers: proof the script really loaded


PLUGINS: dict[str, PluginInfo] = {
    info.name: info
    for info in (
        PluginInfo("dicom-events", "orthanc_dicom_events", "/dicom-events/status"),
        PluginInfo(
            "series-private-tags", "orthanc_series_private_tags", "/series-private-tags/status"
        ),
        PluginInfo("series-thumbnail", "orthanc_series_thumbnail", "/series-thumbnail/status"),
    )
}


def check_selection(plugins: Sequence[str], entry: Entry, script: Path | None) -> None:
    """Refuse a plugin selection no Orthanc of the harness can run."""
    unknown = [plugin for plugin in plugins if plugin not in PLUGINS]
    if unknown:
        raise HarnessError(f"unknown plugin(s) {unknown}: expected some of {sorted(PLUGINS)}")
    if entry == "standalone" and len(plugins) != 1:
        raise HarnessError("a standalone entry runs exactly one plugin")
    if script is not None and plugins:
        raise HarnessError("give either plugins or a script, not both")


def send_with_storescu(
    called_aet: str, port: int, paths: Sequence[Path], calling_aet: str, timeout: float
) -> None:
    """C-STORE files to 127.0.0.1:port in one association with DCMTK's storescu."""
    storescu = shutil.which("storescu")
    if storescu is None:
        raise HarnessError("storescu not found: install dcmtk")
    argv = [storescu, "-aec", called_aet, "-aet", calling_aet, "127.0.0.1", str(port)]
    argv += [str(path) for path in paths]
    env = {**os.environ, **DCMTK_NO_DELAY}
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if result.returncode != 0:
        raise HarnessError(
            f"storescu failed with status {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def site_packages() -> Path:
    """The site-packages of the interpreter running the harness (the dev venv)."""
    return Path(sysconfig.get_paths()["purelib"])


def composer_command() -> list[str]:
    """How to run `orthanc-plugins-compose` from the dev venv."""
    beside = Path(sys.executable).parent / "orthanc-plugins-compose"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("orthanc-plugins-compose")
    if found is None:
        raise HarnessError("orthanc-plugins-compose not found: install tools/composer")
    return [found]


def compose_entry(plugins: Sequence[str], output: Path, flavour: str) -> None:
    """Write the composed entry of `plugins` to `output`, for the Orthanc of `flavour`."""
    if flavours.runs_chrooted(flavour):
        # The composer installed in the flavour's venv, as a user of that Orthanc runs it.
        flavours.chrooted_orthanc(flavour).compose(plugins, output)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *composer_command(),
        *plugins,
        "--site-packages",
        str(site_packages()),
        "--output",
        str(output),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 or not output.exists():
        raise HarnessError(
            f"{' '.join(argv)} failed with status {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )


def standalone_entry(plugin: str) -> Path:
    """The `orthanc_entry.py` shipped inside the plugin's package."""
    spec = importlib.util.find_spec(PLUGINS[plugin].package)
    if spec is None or spec.origin is None:
        raise HarnessError(f"package {PLUGINS[plugin].package} is not installed")
    return Path(spec.origin).parent / "orthanc_entry.py"


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; nested objects merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_COLLECTIONS = {
    "patient": "patients",
    "patients": "patients",
    "study": "studies",
    "studies": "studies",
    "series": "series",
}


# Orthanc 1.10's file storage checks whether a file's folder exists, then creates it: two
# uploads landing in the same new folder at once make one of them fail with 2001 ("Unable to
# create a subdirectory or a file in the file storage"), nothing stored. Concurrent uploads into
# a fresh storage meet it now and then; the client a user would write tries again, as this does.
STORAGE_RACE_ATTEMPTS = 3
_STORAGE_CANNOT_WRITE = 2001


def _succeeded(method: str, path: str, response: requests.Response) -> Any:
    """The JSON answer of a request that must succeed; HarnessError otherwise."""
    if not response.ok:
        raise HarnessError(
            f"{method} {path} answered HTTP {response.status_code}: {response.text[:500]}"
        )
    return response.json()


def _lost_storage_race(response: requests.Response) -> bool:
    if response.status_code != 500:
        return False
    try:
        return bool(response.json().get("OrthancStatus") == _STORAGE_CANNOT_WRITE)
    except ValueError:
        return False


class OrthancClient:
    """A small REST client for one Orthanc."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a request that must succeed."""
        return _succeeded(method, path, self.request(method, path, **kwargs))

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.json("GET", path, **kwargs)

    def upload_file(self, dicom: Path | bytes) -> dict[str, Any]:
        """POST one DICOM file to /instances; returns Orthanc's answer (ID, ParentSeries, ...)."""
        data = dicom.read_bytes() if isinstance(dicom, Path) else dicom
        headers = {"Content-Type": "application/dicom"}
        for _ in range(STORAGE_RACE_ATTEMPTS):
            response = self.request("POST", "/instances", data=data, headers=headers)
            if not _lost_storage_race(response):
                break
        answer: dict[str, Any] = _succeeded("POST", "/instances", response)
        return answer

    def wait_stable(self, level: str, resource_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll a patient, study or series until Orthanc reports it stable; returns its JSON."""
        collection = _COLLECTIONS.get(level.lower())
        if collection is None:
            raise HarnessError(f"level {level!r}: expected patient, study or series")

        def stable() -> dict[str, Any] | None:
            resource: dict[str, Any] = self.get_json(f"/{collection}/{resource_id}")
            return resource if resource.get("IsStable") else None

        return wait_until(
            stable,
            timeout=timeout,
            what=f"{level} {resource_id} to become stable",
            interval=0.25,
        )


class OrthancOperations:
    """What every harness Orthanc offers on top of its client, whoever runs it (process or
    container): subclasses set `client`, `aet` and `dicom_port` and implement `log_text`."""

    client: OrthancClient
    aet: str
    dicom_port: int

    def log_text(self) -> str:
        raise NotImplementedError

    def log_tail(self, lines: int = 200) -> str:
        return tail(self.log_text(), lines)

    def upload_file(self, dicom: Path | bytes) -> dict[str, Any]:
        return self.client.upload_file(dicom)

    def wait_stable(self, level: str, resource_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.client.wait_stable(level, resource_id, timeout)

    def cstore(
        self, paths: Sequence[Path], calling_aet: str = "HARNESS", timeout: float = 60.0
    ) -> None:
        """Send files to Orthanc with DCMTK's storescu (a DICOM C-STORE association)."""
        send_with_storescu(self.aet, self.dicom_port, paths, calling_aet, timeout)


class OrthancServer(OrthancOperations):
    """One Orthanc process with the Python plugin running a chosen entry script.

    `plugins` selects this repository's plugins; `entry` says whether they run from an entry
    written by the composer or (one plugin only) from the plugin's own `orthanc_entry.py`.
    `script` runs any other file instead; `ready_routes` then names routes it registers.
    `config` is deep-merged over the harness's defaults. `flavour` (default: HARNESS_FLAVOUR)
    says which Orthanc runs: the host's, or one chrooted in a flavour's root filesystem.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        name: str = "harness",
        startup_timeout: float = 30.0,
        flavour: str | None = None,
    ) -> None:
        check_selection(plugins, entry, script)
        self.workdir = workdir
        self.flavour = flavour or flavours.selected_flavour()
        self.plugins = list(plugins)
        self.entry = entry
        self.script = script
        self.name = name
        self.startup_timeout = startup_timeout
        self.ready_routes = [PLUGINS[p].status_route for p in self.plugins] + list(ready_routes)
        self.ready_statuses = {200}
        overrides = config or {}
        # Fixed ports are for `python -m integration.stack`; the suites always get free ones.
        self.http_port = int(overrides.get("HttpPort") or free_port())
        self.dicom_port = int(overrides.get("DicomPort") or free_port())
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.client = OrthancClient(self.url)
        self.storage = workdir / "storage"
        self.config_path = workdir / "orthanc.json"
        self.config = deep_merge(self._default_config(), overrides)
        self.aet: str = self.config["DicomAet"]
        self._extra_env = dict(env or {})
        self._process: ManagedProcess | None = None

    # -- configuration -------------------------------------------------------------------------

    def _default_config(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "StorageDirectory": str(self.storage),
            "IndexDirectory": str(self.storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": ORTHANC_AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StableAge": 2,
            "SaveJobs": False,
            "SyncStorageArea": False,  # test data need not survive a power cut
            "Plugins": [],
            "PythonVerbose": False,
        }

    def _chrooted(self) -> ChrootedOrthanc | None:
        """The flavour's root filesystem (built on first use), None for the host's Orthanc."""
        if not flavours.runs_chrooted(self.flavour):
            return None
        return flavours.chrooted_orthanc(self.flavour)

    def _entry_script(self) -> PurePath | None:
        if self.script is not None:
            return self.script
        if not self.plugins:
            return None
        if self.entry == "standalone":
            chrooted = self._chrooted()
            if chrooted is not None:
                return chrooted.standalone_entry(PLUGINS[self.plugins[0]].package)
            return standalone_entry(self.plugins[0])
        return self._compose()

    def _compose(self) -> Path:
        output = self.workdir / "composed" / "__init__.py"
        compose_entry(self.plugins, output, self.flavour)
        return output

    def _write_config(self) -> None:
        config = dict(self.config)
        script = self._entry_script()
        if script is not None:
            # The keys this plugin version reads (`PythonScript` on 4.0, `Python.Path` from
            # 4.1); a test naming its script itself keeps its keys.
            if "PythonScript" not in config and "Path" not in config.get("Python", {}):
                settings = flavours.plugin_api(self.flavour).script_settings(str(script))
                config = deep_merge(settings, config)
            plugin = PYTHON_PLUGIN if self._chrooted() is None else flavours.PYTHON_PLUGIN
            config["Plugins"] = [*config.get("Plugins", []), str(plugin)]
        self.config_path.write_text(json.dumps(config, indent=2))

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # A standalone entry imports its dependencies from the dev venv (the flavour's venv when
        # chrooted); a composed entry adds the directories it was given itself.
        chrooted = self._chrooted()
        env["PYTHONPATH"] = str(site_packages() if chrooted is None else chrooted.site_packages)
        env.update(DCMTK_NO_DELAY)
        env.update(self._extra_env)
        return env

    # -- life cycle ----------------------------------------------------------------------------

    def _command(self) -> list[str]:
        chrooted = self._chrooted()
        if chrooted is None:
            if not ORTHANC_BINARY.exists():
                raise HarnessError(
                    f"{ORTHANC_BINARY} not found: install orthanc and orthanc-python"
                )
            return [str(ORTHANC_BINARY), str(self.config_path)]
        # Chrooted, Orthanc sees its work folder, a script's folder and the paths of its
        # configuration (storage, a plugin's state folder, ...) at the same paths.
        needs = [self.workdir, *([self.script] if self.script else [])]
        return chrooted.command(
            [str(flavours.ORTHANC_BINARY), str(self.config_path)],
            needs=[*needs, *flavours.paths_in(self.config)],
            cwd=self.workdir,
        )

    def _launch(self) -> ManagedProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        if self._process is None:
            command = self._command()
            self._write_config()
            self._process = ManagedProcess(
                f"orthanc-{self.name}",
                command,
                log_path=self.workdir / "orthanc.log",
                env=self._environment(),
                cwd=self.workdir,
            )
        self._process.start()
        return self._process

    def start(self) -> OrthancServer:
        """Start Orthanc and wait for its REST API and the status route of every plugin."""
        process = self._launch()
        started = time.monotonic()
        for path in ["/system", *self.ready_routes]:
            self._wait_for_route(process, path, self.startup_timeout - (time.monotonic() - started))
        return self

    def _wait_for_route(self, process: ManagedProcess, path: str, timeout: float) -> None:
        def answered() -> bool:
            if not process.is_running():
                raise HarnessError(
                    f"Orthanc exited with status {process.returncode} before {path} answered:\n"
                    + self.log_tail(80)
                )
            return self.client.get(path, timeout=2).status_code in self.ready_statuses

        try:
            wait_until(
                answered,
                timeout=max(timeout, 1.0),
                what=f"GET {self.url}{path} to answer 200",
                retry_on=(requests.RequestException,),
                interval=0.1,
                details=lambda: "Orthanc log (tail):\n" + self.log_tail(80),
            )
        except BaseException:
            process.stop()
            raise

    def start_expecting_failure(self, timeout: float = 20.0) -> tuple[int, str]:
        """Start Orthanc when it is expected to refuse to start; returns (exit status, log).

        Raise if it is still running after `timeout` seconds with its plugins' routes answering.
        """
        process = self._launch()
        try:
            returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.stop()
            raise HarnessError(
                f"Orthanc was expected to exit but still ran after {timeout} s:\n"
                + self.log_tail(80)
            ) from None
        return returncode, self.log_text()

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop by PID (SIGTERM, then SIGKILL after `timeout`); returns the exit status."""
        return self._process.stop(timeout) if self._process is not None else None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to Orthanc (a crash, say); the storage is kept for restart()."""
        if self._process is None:
            raise HarnessError("Orthanc was never started")
        self._process.kill(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._process.wait(30)

    def restart(self) -> OrthancServer:
        """Stop (if running) and start again on the same ports with the same storage."""
        self.stop()
        return self.start()

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log_text(self) -> str:
        return self._process.log_text() if self._process is not None else ""
