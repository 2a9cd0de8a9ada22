"""The fake answers like the recorded real Orthanc 1.10.1 for the same instance."""

import json
from typing import Any

import pytest
from fake_samples import (
    INSTANCE_ID,
    PATIENT_ID,
    SERIES_ID,
    STUDY_ID,
    get_json,
    recorded,
    rich_instance,
)

from orthanc_fake import FakeOrthanc, orthanc_id

# Values that depend on when and where the instance was stored.
VOLATILE = {"LastUpdate", "ReceptionDate", "FileUuid", "Date"}


def without_volatile(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if key not in VOLATILE}


def test_identifiers_are_sha1_of_the_dicom_identifiers() -> None:
    assert orthanc_id("P1") == PATIENT_ID
    assert orthanc_id("P1", "1.2.3", "1.2.3.4", "1.2.3.4.5") == INSTANCE_ID
    # An empty PatientID is allowed, as in Orthanc: the SHA-1 of "".
    assert orthanc_id("") == "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"


def test_store_gives_the_real_identifiers(orthanc: FakeOrthanc) -> None:
    result = orthanc.store(rich_instance())
    assert (result.patient_id, result.study_id, result.series_id, result.instance_id) == (
        PATIENT_ID,
        STUDY_ID,
        SERIES_ID,
        INSTANCE_ID,
    )
    assert result.status == "Success"


@pytest.mark.parametrize(
    ("uri", "recording"),
    [
        (f"/instances/{INSTANCE_ID}/tags", "rich-tags.json"),
        (f"/instances/{INSTANCE_ID}/tags?short", "rich-short-tags.json"),
        (f"/instances/{INSTANCE_ID}/simplified-tags", "rich-simplified-tags.json"),
        (f"/instances/{INSTANCE_ID}/tags?simplify", "rich-simplified-tags.json"),
    ],
)
def test_tags_match_the_real_rendering(orthanc: FakeOrthanc, uri: str, recording: str) -> None:
    orthanc.store(rich_instance())
    assert get_json(orthanc, uri) == recorded(recording)


@pytest.mark.parametrize(
    ("uri", "recording"),
    [
        (f"/patients/{PATIENT_ID}", "rich-patients.json"),
        (f"/studies/{STUDY_ID}", "rich-studies.json"),
        (f"/series/{SERIES_ID}", "rich-series.json"),
        (f"/instances/{INSTANCE_ID}", "rich-instances.json"),
    ],
)
def test_resources_match_the_real_rendering(orthanc: FakeOrthanc, uri: str, recording: str) -> None:
    orthanc.store(rich_instance())
    real = without_volatile(recorded(recording))
    if "IsStable" in real:
        # The recording was taken before StableAge elapsed, like this fake's state now.
        assert real["IsStable"] is False
    assert without_volatile(get_json(orthanc, uri)) == real


@pytest.mark.parametrize(
    ("uri", "recording"),
    [
        (f"/patients/{PATIENT_ID}/metadata?expand", "rich-patients-metadata.json"),
        (f"/studies/{STUDY_ID}/metadata?expand", "rich-studies-metadata.json"),
        (f"/series/{SERIES_ID}/metadata?expand", "rich-series-metadata.json"),
        (f"/instances/{INSTANCE_ID}/metadata?expand", "rich-instances-metadata.json"),
    ],
)
def test_metadata_match_the_real_ones(orthanc: FakeOrthanc, uri: str, recording: str) -> None:
    orthanc.store(rich_instance())
    real = without_volatile(recorded(recording))
    assert without_volatile(get_json(orthanc, uri)) == real


def test_change_log_matches_the_real_one(orthanc: FakeOrthanc) -> None:
    orthanc.store(rich_instance())
    changes = get_json(orthanc, "/changes")
    real = recorded("rich-changes.json")
    assert [without_volatile(c) for c in changes["Changes"]] == [
        without_volatile(c) for c in real["Changes"]
    ]
    assert (changes["Done"], changes["Last"]) == (real["Done"], real["Last"])


@pytest.mark.parametrize(
    ("body", "recording"),
    [
        (
            {"Resources": [INSTANCE_ID, SERIES_ID, "0000"], "Level": "Instance", "Metadata": True},
            "rich-bulk-content-instance-metadata.json",
        ),
        ({"Resources": [SERIES_ID, INSTANCE_ID]}, "rich-bulk-content-any-level.json"),
    ],
)
def test_bulk_content_matches_the_real_one(
    orthanc: FakeOrthanc, body: dict[str, Any], recording: str
) -> None:
    orthanc.store(rich_instance())
    answer = json.loads(orthanc.RestApiPost("/tools/bulk-content", json.dumps(body)))

    def comparable(item: dict[str, Any]) -> dict[str, Any]:
        return {**without_volatile(item), "Metadata": without_volatile(item["Metadata"])}

    assert [comparable(item) for item in answer] == [comparable(i) for i in recorded(recording)]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"Resources": "x"}, 15), ({"Level": "Instance"}, 15), ({"Resources": [], "Level": "No"}, 3)],
)
def test_bulk_content_refuses_what_orthanc_refuses(
    orthanc: FakeOrthanc, body: dict[str, Any], code: int
) -> None:
    with pytest.raises(Exception) as raised:
        orthanc.RestApiPost("/tools/bulk-content", json.dumps(body))
    assert raised.value.args[0] == code
