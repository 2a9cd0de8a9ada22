"""The /with-private-tags/ routes over the fake Orthanc."""

from __future__ import annotations

import json

import pytest
from spt_testing import body, instance

from orthanc_fake.module import FakeOrthanc
from orthanc_series_private_tags.plugin import SeriesPrivateTagsPlugin

Pair = tuple[FakeOrthanc, SeriesPrivateTagsPlugin]


@pytest.fixture
def archive(orthanc_and_plugin: Pair) -> Pair:
    """Two patients; patient A has two studies (three series), patient B one series."""
    fake, plugin = orthanc_and_plugin
    files = [
        instance("2.1.1", "2.1.1.1", {0x11: ("UT", "a1")}, patient="A", study="2.1"),
        instance("2.1.2", "2.1.2.1", {0x12: ("LO", "a2")}, patient="A", study="2.1"),
        instance("2.2.1", "2.2.1.1", None, patient="A", study="2.2"),
        instance("3.1.1", "3.1.1.1", {0x13: ("CS", "Y")}, patient="B", study="3.1"),
    ]
    for data in files:
        fake.store(data)
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    return fake, plugin


def get(fake: FakeOrthanc, uri: str) -> object:
    answer = fake.call_route("GET", uri)
    assert answer.status == 200, (uri, answer.status, answer.body)
    return body(answer)


def test_each_series_is_orthancs_own_object_plus_its_private_tags(archive: Pair) -> None:
    fake, _ = archive
    listed = get(fake, "/with-private-tags/series")
    assert isinstance(listed, list)
    orthanc_own = json.loads(fake.RestApiGet("/series?expand"))
    assert [{k: v for k, v in s.items() if k != "MainPrivateDicomTags"} for s in listed] == (
        orthanc_own
    )
    by_uid = {s["MainDicomTags"]["SeriesInstanceUID"]: s["MainPrivateDicomTags"] for s in listed}
    assert by_uid == {
        "2.1.1": {"QueueID": "a1"},
        "2.1.2": {"SourceSeries": "a2"},
        "2.2.1": {},
        "3.1.1": {"OutputFlag": "EXISTS"},
    }


def test_one_series(archive: Pair) -> None:
    fake, _ = archive
    series_id = json.loads(fake.RestApiGet("/series"))[0]
    one = get(fake, f"/with-private-tags/series/{series_id}")
    assert one == {
        **json.loads(fake.RestApiGet(f"/series/{series_id}")),
        "MainPrivateDicomTags": {"QueueID": "a1"},
    }


def test_patient_and_study_routes(archive: Pair) -> None:
    fake, _ = archive
    patient_a = json.loads(fake.RestApiGet("/patients?expand"))[0]
    assert patient_a["MainDicomTags"]["PatientID"] == "A"
    of_patient = get(fake, f"/with-private-tags/patients/{patient_a['ID']}/series")
    assert isinstance(of_patient, list)
    assert sorted(s["MainDicomTags"]["SeriesInstanceUID"] for s in of_patient) == [
        "2.1.1",
        "2.1.2",
        "2.2.1",
    ]
    study = patient_a["Studies"][0]
    of_study = get(fake, f"/with-private-tags/studies/{study}/series")
    assert isinstance(of_study, list)
    assert {
        s["MainDicomTags"]["SeriesInstanceUID"]: s["MainPrivateDicomTags"] for s in of_study
    } == {
        "2.1.1": {"QueueID": "a1"},
        "2.1.2": {"SourceSeries": "a2"},
    }


def test_paging_follows_orthanc(archive: Pair) -> None:
    fake, _ = archive
    pages = [get(fake, f"/with-private-tags/series?since={since}&limit=3") for since in (0, 3, 6)]
    ids = [s["ID"] for page in pages for s in page]  # type: ignore[attr-defined]
    assert ids == json.loads(fake.RestApiGet("/series"))
    assert [len(page) for page in pages] == [3, 1, 0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        "since=1",
        "limit=1",
        "since=x&limit=1",
        "since=1&limit=-1",
        "since=&limit=2",
        "since=1.5&limit=2",
    ],
)
def test_invalid_paging_is_400_with_json(archive: Pair, query: str) -> None:
    fake, _ = archive
    answer = fake.call_route("GET", f"/with-private-tags/series?{query}")
    assert answer.status == 400
    assert body(answer)["HttpStatus"] == 400


@pytest.mark.parametrize(
    "uri",
    [
        "/with-private-tags/series/nope",
        "/with-private-tags/patients/nope/series",
        "/with-private-tags/studies/nope/series",
    ],
)
def test_unknown_ids_are_404_with_json(archive: Pair, uri: str) -> None:
    fake, _ = archive
    answer = fake.call_route("GET", uri)
    assert answer.status == 404
    assert "nope" in body(answer)["Message"]


def test_an_id_of_another_level_is_404(archive: Pair) -> None:
    fake, _ = archive
    study = json.loads(fake.RestApiGet("/studies"))[0]
    answer = fake.call_route("GET", f"/with-private-tags/patients/{study}/series")
    assert answer.status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "uri",
    [
        "/with-private-tags/series",
        "/with-private-tags/series/x",
        "/with-private-tags/patients/x/series",
        "/with-private-tags/studies/x/series",
    ],
)
def test_other_methods_are_405_allowing_get(archive: Pair, method: str, uri: str) -> None:
    fake, _ = archive
    answer = fake.call_route(method, uri)
    assert answer.status == 405
    assert answer.headers.get("Allow") == "GET"


def test_an_empty_archive_lists_nothing(orthanc_and_plugin: Pair) -> None:
    fake, _ = orthanc_and_plugin
    assert get(fake, "/with-private-tags/series") == []


def test_status_reports_configuration_and_progress(archive: Pair) -> None:
    fake, _ = archive
    status = get(fake, "/series-private-tags/status")
    assert isinstance(status, dict)
    assert status["Tags"] == ["QueueID", "SourceSeries", "!!OutputFlag"]
    assert status["InstancesRead"] == 4
