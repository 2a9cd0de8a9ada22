import threading

from conftest import StubHost

from orthanc_series_thumbnail.worker import ChangeWorker


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def make(self, kind: str):  # type: ignore[no-untyped-def]
        def handler(resource_id: str) -> None:
            self.gate.wait(5)
            self.events.append((kind, resource_id))
            if resource_id == "boom":
                raise RuntimeError("boom")

        return handler


def worker(host: StubHost, recorder: Recorder) -> ChangeWorker:
    return ChangeWorker(
        host, recorder.make("changed"), recorder.make("stable"), recorder.make("deleted")
    )


def test_changes_are_coalesced_per_series_and_ordered(host: StubHost) -> None:
    recorder = Recorder()
    w = worker(host, recorder)
    for _ in range(50):
        w.series_changed("s1")
    w.series_stable("s1")
    w.series_stable("s1")
    w.series_stable("s2")
    w.series_changed("s2")  # unstable again: the pending "stable" is dropped
    w.instance_deleted("i1")
    assert w.pending() == 3
    w.start()
    assert w.wait_idle(5)
    w.stop()
    assert recorder.events == [
        ("deleted", "i1"),
        ("changed", "s1"),
        ("stable", "s1"),
        ("changed", "s2"),
    ]


def test_a_failing_task_is_logged_and_the_worker_goes_on(host: StubHost) -> None:
    recorder = Recorder()
    w = worker(host, recorder)
    w.start()
    w.series_stable("boom")
    w.series_stable("fine")
    assert w.wait_idle(5)
    w.stop()
    assert ("stable", "fine") in recorder.events
    assert any("boom" in message for message in host.warnings)


def test_stop_is_bounded_and_idempotent(host: StubHost) -> None:
    recorder = Recorder()
    w = worker(host, recorder)
    w.stop()  # never started
    w.start()
    w.start()
    w.stop()
    w.stop()
    assert w.pending() == 0
