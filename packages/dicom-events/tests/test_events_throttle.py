from __future__ import annotations

from dicom_events_testing import FakeClock

from orthanc_dicom_events.throttle import SeriesThrottle


def test_disabled_throttle_publishes_everything(clock: FakeClock) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(0, clock)
    assert [throttle.offer("s", item) for item in "abc"] == ["a", "b", "c"]
    assert throttle.next_due_in() is None


def test_burst_publishes_first_then_latest_after_the_interval(clock: FakeClock) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(1.0, clock)
    assert throttle.offer("s", "i1") == "i1"
    for item in ("i2", "i3", "i4"):
        clock.advance(0.2)
        assert throttle.offer("s", item) is None
    assert throttle.due() == []
    due_in = throttle.next_due_in()
    assert due_in is not None and abs(due_in - 0.4) < 1e-9
    clock.advance(0.4)
    assert throttle.due() == ["i4"]
    assert throttle.due() == []


def test_instance_after_the_interval_goes_out_at_once_and_replaces_waiting(
    clock: FakeClock,
) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(1.0, clock)
    throttle.offer("s", "i1")
    clock.advance(0.5)
    assert throttle.offer("s", "i2") is None
    clock.advance(0.6)
    assert throttle.offer("s", "i3") == "i3"
    assert throttle.waiting() == []


def test_series_are_throttled_independently(clock: FakeClock) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(1.0, clock)
    assert throttle.offer("a", "a1") == "a1"
    assert throttle.offer("b", "b1") == "b1"
    assert throttle.offer("a", "a2") is None
    assert throttle.series_waiting() == ["a"]


def test_take_and_take_where_release_waiting_items(clock: FakeClock) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(5.0, clock)
    for series in ("a", "b", "c"):
        throttle.offer(series, series + "1")
        throttle.offer(series, series + "2")
    assert throttle.take("a") == "a2"
    assert throttle.take("a") is None
    assert throttle.take_where(lambda item: item.startswith("b")) == ["b2"]
    assert throttle.waiting() == ["c2"]


def test_idle_series_are_forgotten(clock: FakeClock) -> None:
    throttle: SeriesThrottle[str] = SeriesThrottle(1.0, clock)
    throttle.offer("s", "i1")
    clock.advance(2)
    throttle.due()
    assert throttle.next_due_in() is None
    assert throttle.offer("s", "i2") == "i2"
