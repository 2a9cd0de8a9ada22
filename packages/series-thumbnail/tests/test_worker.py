"""The change worker (`plugin.worker`): coalescing, order, failures, life cycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from thumbnail_testing import Thumbnails

from orthanc_series_thumbnail.service import ThumbnailService
from orthanc_series_thumbnail.worker import MOST_WAIT_SECONDS

# What the worker calls on the service, by the kind of task.
SERVICE_HANDLERS = {
    "changed": "series_changed",
    "stable": "prepare",
    "deleted": "instance_deleted",
}


class Recorder:
    """Stands in for the service's handlers, to see what the worker runs and in which order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def make(self, kind: str) -> Callable[[ThumbnailService, str], None]:
        def handler(service: ThumbnailService, resource_id: str) -> None:
            self.gate.wait(5)
            self.events.append((kind, resource_id))
            if resource_id == "boom":
                raise RuntimeError("boom")

        return handler


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    for kind, name in SERVICE_HANDLERS.items():
        monkeypatch.setattr(ThumbnailService, name, recorder.make(kind))
    return recorder


@pytest.fixture
def recorded(
    recorder: Recorder, thumbnails_factory: Callable[..., Thumbnails]
) -> tuple[Thumbnails, Recorder]:
    """The plugin, created after the service's handlers were replaced by the recorder's."""
    return thumbnails_factory(), recorder


def test_changes_are_coalesced_per_series_and_ordered(
    recorded: tuple[Thumbnails, Recorder],
) -> None:
    thumbnails, recorder = recorded
    worker = thumbnails.plugin.worker
    for _ in range(50):
        worker.series_changed("s1")
    worker.series_stable("s1")
    worker.series_stable("s1")
    worker.series_stable("s2")
    worker.series_changed("s2")  # unstable again: the pending "stable" is dropped
    worker.instance_deleted("i1")
    assert worker.pending() == 3
    thumbnails.fake.start()  # ORTHANC_STARTED starts the worker
    assert worker.wait_idle(5)
    thumbnails.fake.stop()
    assert recorder.events == [
        ("deleted", "i1"),
        ("changed", "s1"),
        ("stable", "s1"),
        ("changed", "s2"),
    ]


def test_a_failing_task_is_logged_and_the_worker_goes_on(
    recorded: tuple[Thumbnails, Recorder],
) -> None:
    thumbnails, recorder = recorded
    worker = thumbnails.plugin.worker
    thumbnails.fake.start()
    worker.series_stable("boom")
    worker.series_stable("fine")
    assert worker.wait_idle(5)
    thumbnails.fake.stop()
    assert ("stable", "fine") in recorder.events
    assert any("boom" in message for message in thumbnails.fake.log_messages("warning"))


def test_stop_is_bounded_and_idempotent(recorded: tuple[Thumbnails, Recorder]) -> None:
    thumbnails, _ = recorded
    worker = thumbnails.plugin.worker
    worker.stop()  # never started
    worker.start()
    worker.start()
    worker.stop()
    worker.stop()
    assert worker.pending() == 0


def test_stable_series_work_waits_for_a_pause_in_orthancs_changes(
    recorded: tuple[Thumbnails, Recorder],
) -> None:
    # Orthanc 1.12+ delivers queued changes before ORTHANC_STOPPED: the stable-series work,
    # which writes to Orthanc, must not slow that down. It waits for a pause, bounded.
    thumbnails, recorder = recorded
    worker = thumbnails.plugin.worker
    thumbnails.fake.start()
    flowing = threading.Event()

    def changes_keep_coming() -> None:
        while not flowing.wait(0.005):
            worker.note_change()

    source = threading.Thread(target=changes_keep_coming)
    worker.note_change()
    source.start()
    queued = time.monotonic()
    worker.series_stable("s1")
    time.sleep(MOST_WAIT_SECONDS / 2)
    assert recorder.events == []  # changes still coming: not yet
    flowing.set()
    source.join()
    assert worker.wait_idle(5)
    waited = time.monotonic() - queued
    thumbnails.fake.stop()
    assert recorder.events == [("stable", "s1")]
    assert MOST_WAIT_SECONDS / 2 <= waited < MOST_WAIT_SECONDS + 2  # bounded: work goes on
