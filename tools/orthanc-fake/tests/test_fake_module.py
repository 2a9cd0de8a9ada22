"""Module-level functions of the fake `orthanc`."""

import json

import pytest

from orthanc_fake import FakeOrthanc, OrthancException
from orthanc_fake.enums import ErrorCode, MetricsType


def test_configuration_is_a_json_string() -> None:
    orthanc = FakeOrthanc({"DicomEvents": {"Enabled": True}})
    assert json.loads(orthanc.GetConfiguration()) == {"DicomEvents": {"Enabled": True}}


def test_logs_are_recorded_by_level(orthanc: FakeOrthanc) -> None:
    orthanc.LogInfo("one")
    orthanc.LogWarning("two")
    orthanc.LogError("three")
    assert orthanc.log_messages() == ["one", "two", "three"]
    assert orthanc.log_messages("warning") == ["two"]


def test_metrics_need_their_type_like_plugin_4_0(orthanc: FakeOrthanc) -> None:
    with pytest.raises(TypeError):
        orthanc.SetMetricsValue("queued", 3)  # type: ignore[call-arg]
    orthanc.SetMetricsValue("queued", 3, MetricsType.DEFAULT)
    assert orthanc.metrics == {"queued": (3.0, MetricsType.DEFAULT)}


def test_global_properties(orthanc: FakeOrthanc) -> None:
    assert orthanc.GetGlobalProperty(5000, "default") == "default"
    orthanc.SetGlobalProperty(5000, "value")
    assert orthanc.GetGlobalProperty(5000, "default") == "value"


def test_one_on_change_and_one_on_stored_callback() -> None:
    orthanc = FakeOrthanc()
    orthanc.RegisterOnChangeCallback(lambda *change: None)
    orthanc.RegisterOnStoredInstanceCallback(lambda dicom, instance_id: None)
    with pytest.raises(RuntimeError, match="Can only register one Python on-changes callback"):
        orthanc.RegisterOnChangeCallback(lambda *change: None)
    with pytest.raises(RuntimeError, match="on-stored-instance"):
        orthanc.RegisterOnStoredInstanceCallback(lambda dicom, instance_id: None)


def test_rest_api_fails_during_initialisation() -> None:
    orthanc = FakeOrthanc(started=False)
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiGet("/system")
    assert raised.value.args == (
        ErrorCode.DATABASE_NOT_INITIALIZED,
        "Plugin trying to call the database during its initialization",
    )
    orthanc.start()
    assert json.loads(orthanc.RestApiGet("/system"))["Version"] == "1.10.1"


def test_generate_uuid_is_unique(orthanc: FakeOrthanc) -> None:
    assert len({orthanc.GenerateUuid() for _ in range(3)}) == 3


def test_fixture_gives_a_fresh_fake(fake_orthanc: FakeOrthanc) -> None:
    assert fake_orthanc.routes == [] and fake_orthanc.RestApiGet("/patients") == b"[]"
