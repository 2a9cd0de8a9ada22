from __future__ import annotations

from orthanc_dicom_events.batch_window import BUSY_ROUND_CHANGES, BatchWindow


def test_a_trickle_keeps_the_minimum() -> None:
    window = BatchWindow(50, 400)
    for _ in range(5):
        window.read(BUSY_ROUND_CHANGES - 1)
        assert window.next_seconds() == 0.05


def test_a_busy_log_doubles_the_window_up_to_the_maximum_and_one_quiet_round_resets_it() -> None:
    window = BatchWindow(50, 400)
    seen = []
    for _ in range(5):
        window.read(BUSY_ROUND_CHANGES)
        seen.append(window.next_seconds())
    assert seen == [0.1, 0.2, 0.4, 0.4, 0.4]
    window.read(3)
    assert window.next_seconds() == 0.05


def test_changes_of_several_pages_count_together_until_the_wait() -> None:
    window = BatchWindow(50, 400)
    window.read(BUSY_ROUND_CHANGES // 2)
    window.read(BUSY_ROUND_CHANGES // 2)
    assert window.next_seconds() == 0.1
    assert window.next_seconds() == 0.05  # nothing read since


def test_a_maximum_equal_to_the_minimum_never_grows_and_zero_never_waits() -> None:
    fixed = BatchWindow(50, 50)
    fixed.read(1000)
    assert fixed.next_seconds() == 0.05
    none = BatchWindow(0, 0)
    none.read(1000)
    assert none.next_seconds() == 0.0
