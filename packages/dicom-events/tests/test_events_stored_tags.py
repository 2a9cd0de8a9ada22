"""The cache of event tags taken while Orthanc stores an instance."""

from __future__ import annotations

import json
from typing import Any

from orthanc_dicom_events.stored_tags import StoredInstanceTags, origin_codes
from orthanc_fake import FakeOrthanc
from orthanc_fake.enums import InstanceOrigin

FULL = {
    "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "P1"},
    "0008,1030": {"Name": "StudyDescription", "Type": "TooLong", "Value": None},
}


class Instance:
    """What Orthanc's on-stored-instance callback receives, reduced to what the cache reads."""

    def __init__(self, full: dict[str, Any], origin: int = InstanceOrigin.DICOM_PROTOCOL):
        self._full = full
        self._origin = origin

    def GetInstanceOrigin(self) -> int:
        return self._origin

    def GetInstanceJson(self) -> str:
        return json.dumps(self._full)


class Broken(Instance):
    def GetInstanceJson(self) -> str:
        raise RuntimeError("Orthanc could not serialise the instance")


def test_the_configured_tags_are_kept_per_instance_and_survive_a_read() -> None:
    cache = StoredInstanceTags(["PatientID", "Modality"])
    cache.on_stored_instance(Instance(FULL), "i1")
    assert cache.get("i1") == {"PatientID": "P1"}
    first = cache.get("i1")
    assert first is not None
    first["PatientID"] = "changed by a caller"
    assert cache.get("i1") == {"PatientID": "P1"}  # a page built again finds the same
    cache.forget("i1")
    assert cache.get("i1") is None


def test_a_value_too_long_for_orthancs_json_leaves_the_instance_to_the_rest_path() -> None:
    cache = StoredInstanceTags(["PatientID", "StudyDescription"])
    cache.on_stored_instance(Instance(FULL), "i1")
    assert cache.get("i1") is None
    assert cache.captured == 0


def test_skipped_origins_and_failures_capture_nothing_and_never_raise() -> None:
    cache = StoredInstanceTags(["PatientID"], skipped_origins=[InstanceOrigin.REST_API])
    cache.on_stored_instance(Instance(FULL, origin=InstanceOrigin.REST_API), "rest")
    cache.on_stored_instance(Broken(FULL), "broken")
    assert (cache.get("rest"), cache.get("broken"), len(cache)) == (None, None, 0)


def test_the_oldest_entries_go_first_and_a_store_again_is_the_newest() -> None:
    cache = StoredInstanceTags(["PatientID"], capacity=2)
    for name in ("a", "b"):
        cache.on_stored_instance(Instance(FULL), name)
    cache.on_stored_instance(Instance(FULL), "a")  # stored again: now the newest
    cache.on_stored_instance(Instance(FULL), "c")
    assert (cache.get("a") is not None, cache.get("b"), cache.get("c") is not None) == (
        True,
        None,
        True,
    )
    assert len(cache) == 2


def test_origin_names_are_read_from_the_orthanc_module() -> None:
    fake = FakeOrthanc({}, started=False)
    assert origin_codes(fake, ["REST_API", "DICOM_PROTOCOL"]) == {
        InstanceOrigin.REST_API,
        InstanceOrigin.DICOM_PROTOCOL,
    }
