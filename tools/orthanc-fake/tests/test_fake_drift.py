"""The drift guard: the fake offers nothing the real module lacks, with the same values."""

import copy
from typing import Any

from fake_samples import recorded

from orthanc_fake import FakeOrthanc
from orthanc_fake.drift import compare, describe


def real_description() -> Any:
    return recorded("orthanc-1.10.1-module.json")


def test_fake_agrees_with_the_recorded_real_module() -> None:
    assert compare(real_description()) == []


def test_a_wrong_enum_value_is_reported() -> None:
    real = real_description()
    real["classes"]["ChangeType"]["constants"]["STABLE_SERIES"] = 99
    assert compare(real) == ["ChangeType.STABLE_SERIES is 8 in the fake but 99 in Orthanc"]


def test_missing_names_are_reported() -> None:
    real = copy.deepcopy(real_description())
    real["functions"].remove("RestApiGetAfterPlugins")
    real["classes"]["RestOutput"]["methods"].remove("SetHttpHeader")
    del real["classes"]["InstanceOrigin"]["constants"]["WEB_DAV"]
    assert sorted(compare(real)) == [
        "InstanceOrigin.WEB_DAV does not exist in the real orthanc module",
        "function RestApiGetAfterPlugins() does not exist in the real orthanc module",
        "method RestOutput.SetHttpHeader() does not exist in the real orthanc module",
    ]


def test_helpers_are_not_part_of_the_described_api() -> None:
    description = describe(FakeOrthanc())
    assert "store" not in description["functions"]
    assert "RestApiGet" in description["functions"]
    assert "AnswerBuffer" in description["classes"]["RestOutput"]["methods"]
    assert description["classes"]["ResourceType"]["constants"]["SERIES"] == 2
