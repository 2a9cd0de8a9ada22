from __future__ import annotations

from pathlib import Path

from orthanc_dicom_events.spool import DeletedNotice, Spool


def test_deletions_survive_a_reopen_in_order(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.add([DeletedNotice(3, "i1", "t1"), DeletedNotice(2, "s1", "t2")], after_seq=10)
    identity = spool.identity
    spool.close()
    reopened = Spool(str(tmp_path))
    assert reopened.identity == identity
    pending = reopened.pending(10)
    rows = [(d.level, d.resource_id, d.after_seq) for d in pending]
    assert rows == [(3, "i1", 10), (2, "s1", 10)]
    reopened.done(pending[:1])
    assert [d.resource_id for d in reopened.pending(10)] == ["s1"]
    assert reopened.count() == 1


def test_deletions_carry_the_ancestors_known_at_the_time(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.remember_parents([("i1", "s1", 3), ("s1", "st1", 2), ("st1", "p1", 1)])
    spool.add([DeletedNotice(3, "i1", "t"), DeletedNotice(2, "s1", "t")], after_seq=0)
    instance, series = spool.pending(10)
    assert (instance.patient_id, instance.study_id, instance.series_id) == ("p1", "st1", "s1")
    assert (series.patient_id, series.study_id, series.series_id) == ("p1", "st1", None)
    spool.done([instance])
    assert spool.ancestors("i1") == []
    assert spool.ancestors("s1") == ["st1", "p1"]


def test_pending_can_stop_at_a_change(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path))
    spool.add([DeletedNotice(3, "a", "t")], after_seq=5)
    spool.add([DeletedNotice(3, "b", "t")], after_seq=50)
    assert [d.resource_id for d in spool.pending(10, up_to_seq=20)] == ["a"]
