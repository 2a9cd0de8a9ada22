"""How Orthanc's exit status is judged: clean, or the one known crash of Python plugin 7.1.

Python plugin 7.1 (Debian sid's build, Python 3.14) makes Orthanc abort or segfault right after
it logs "Python plugin is finalizing" whenever a change callback was registered and instances were
stored, even with a script whose callback does nothing
(`test_flavours.py::test_python_plugin_shutdown_with_a_do_nothing_change_callback`). That crash
comes after every plugin of this project has stopped and Orthanc has closed its servers; any other
non-zero status fails the tests.
"""

from __future__ import annotations

import re
import signal

from integration.harness.interfaces import Orthanc

PLUGINS_THAT_CRASH_WHEN_FINALIZED = frozenset({"7.1"})
_PLUGIN_VERSION = re.compile(r"Registering plugin 'python' \(version ([0-9.]+)\)")
_FINALIZING = "Python plugin is finalizing"
_CLEAN = frozenset({0, -signal.SIGTERM})
# A process killed by a signal: -N from Popen, 128+N from a container runtime.
_CRASHES = frozenset({-signal.SIGSEGV, -signal.SIGABRT, 128 + signal.SIGSEGV, 128 + signal.SIGABRT})


def python_plugin_version(log: str) -> str | None:
    found = _PLUGIN_VERSION.search(log)
    return found.group(1) if found else None


def clean_exit(status: int | None) -> bool:
    return status in _CLEAN


def crashed_once_finalized(status: int | None, log: str) -> bool:
    """A crash status, and Orthanc's last log line is the Python plugin's finalization."""
    orthanc_lines = [line for line in log.splitlines() if re.match(r"^[IWE]\d{4} ", line)]
    return status in _CRASHES and bool(orthanc_lines) and _FINALIZING in orthanc_lines[-1]


def assert_stopped_cleanly(server: Orthanc, status: int | None) -> None:
    """Exit status 0 (or SIGTERM), or plugin 7.1's known crash once it is finalized."""
    if clean_exit(status):
        return
    log = server.log_text()
    known = python_plugin_version(log) in PLUGINS_THAT_CRASH_WHEN_FINALIZED
    assert known and crashed_once_finalized(status, log), (
        f"Orthanc exited with status {status}:\n{server.log_tail(20)}"
    )
