"""pytest plugin: a run in which an end-to-end test skipped fails (`-p integration.no_skips`).

An end-to-end suite that skips proves nothing, so CI must not pass with one. Every skip under the
watched directory (this package by default, `--no-skips-root DIR` to change it) is listed at the
end of the run with its reason, and the exit status becomes "tests failed".
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips-root",
        default=str(Path(__file__).resolve().parent),
        help="fail the run if a test under this directory skipped (default: integration/)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipWatcher(config), "integration-no-skips-watcher")


class SkipWatcher:
    """Records the skips under the watched directory and turns them into a failed run."""

    def __init__(self, config: pytest.Config) -> None:
        self.rootpath = config.rootpath
        self.watched = Path(config.getoption("--no-skips-root")).resolve()
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        path = (self.rootpath / report.nodeid.split("::", 1)[0]).resolve()
        if path.is_relative_to(self.watched):
            self.skips.append((report.nodeid, _reason(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skips and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skips:
            return
        terminalreporter.section("end-to-end tests skipped: the run fails", sep="=", red=True)
        for nodeid, reason in self.skips:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}", red=True)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
