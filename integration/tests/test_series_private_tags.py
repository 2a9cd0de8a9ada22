"""orthanc-series-private-tags on a real Orthanc, alone (its own entry) and composed with the
other two plugins: capture, creators, long values, routes, paging, errors, deletion, backfill.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc, RabbitMQ
from integration.harness.processes import wait_until
from integration.tests.answers import error_content_type
from orthanc_fake.dicom import PrivateBlock, make_instance

pytestmark = pytest.mark.e2e

CREATOR = "MATTERHORN_Prvt_Tags"
OTHER_CREATOR = "ACME_Other_Tags"
PRIVATE_GROUP = 0x0055
CAPTURE_TIMEOUT = 20.0

# GE's sequences in PrivateTags.dcm: one before, one after the pixel data.
SAMPLE_SEQUENCES = {
    "6003,1010": ["SQ", "GEMSImageGroupSequence", 1, 1, "GEMS_Ultrasound_ImageGroup_001"],
    "7fe1,1001": ["SQ", "GEMSMovieGroupSequence", 1, 1, "GEMS_Ultrasound_MovieGroup_001"],
}
SYNTHETIC = {
    "0055,1011": ["UT", "QueueID", 1, 1, CREATOR],
    "0055,1012": ["LO", "SourceSeriesUID", 1, 1, CREATOR],
    "0055,1013": ["CS", "OutputFlag", 1, 1, CREATOR],
}
TAGS = [
    "QueueID",
    "SourceSeriesUID",
    "!!OutputFlag",
    "OriginalImageFileName",
    "PET-CT-MultiModalityName",
    "!!GEMSImageGroupSequence",
    "!!GEMSMovieGroupSequence",
]

_DCMTK_PRIVATE_ENTRY = re.compile(
    r'^\((?P<group>[0-9A-Fa-f]{4}),"(?P<creator>[^"]+)",\s*(?P<offset>[0-9A-Fa-f]{2})\)\s+'
    r"(?P<vr>[A-Z]{2})\s+(?P<name>\S+)\s+(?P<vm>\S+)"
)


def dictionary_from_dcmtk(text: str) -> dict[str, list[Any]]:
    """Orthanc `Dictionary` entries for the private lines of a DCMTK data dictionary.

    DCMTK names a private tag by group, creator and element offset; Orthanc by a full tag, whose
    block is only a placeholder (its creator is looked up wherever the file reserved it).
    """
    entries: dict[str, list[Any]] = {}
    for line in text.splitlines():
        match = _DCMTK_PRIVATE_ENTRY.match(line.strip())
        if match is None:
            continue
        minimum, _, maximum = match["vm"].partition("-")
        tag = f"{match['group'].lower()},10{match['offset'].lower()}"
        entries[tag] = [
            match["vr"],
            match["name"],
            int(minimum),
            int(maximum or minimum) if (maximum or minimum) != "n" else 0,
            match["creator"],
        ]
    return entries


def configuration(samples_dir: Path, tags: list[str] | None = None) -> dict[str, Any]:
    dcmtk = dictionary_from_dcmtk((samples_dir / "PrivateMDNTags.dic").read_text())
    return {
        "StableAge": 1,
        "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
        "Dictionary": {**dcmtk, **SAMPLE_SEQUENCES, **SYNTHETIC},
        "SeriesMainPrivateDicomTags": tags if tags is not None else TAGS,
    }


def composed_configuration(broker: RabbitMQ) -> dict[str, Any]:
    """What the other two plugins need to run beside this one."""
    return {
        "DicomEvents": {
            "Broker": {
                "Type": "rabbitmq",
                "RabbitConfig": {"URL": broker.url_for_orthanc, "Exchange": "series-private-tags"},
            }
        }
    }


StartOrthanc = Callable[..., Orthanc]


@pytest.fixture(params=["standalone", "composed"])
def start_orthanc(
    request: pytest.FixtureRequest, orthanc_factory: OrthancFactory, samples_dir: Path
) -> StartOrthanc:
    """Starts an Orthanc running this plugin alone, or composed with the other two."""

    def start(tags: list[str] | None = None, **config: Any) -> Orthanc:
        settings = {**configuration(samples_dir, tags), **config}
        if request.param == "standalone":
            return orthanc_factory(
                plugins=["series-private-tags"], config=settings, entry="standalone"
            )
        broker: RabbitMQ = request.getfixturevalue("rabbitmq")
        return orthanc_factory(
            plugins=["dicom-events", "series-private-tags", "series-thumbnail"],
            config={**settings, **composed_configuration(broker)},
            entry="composed",
        )

    return start


@pytest.fixture
def orthanc(start_orthanc: StartOrthanc) -> Orthanc:
    return start_orthanc()


def synthetic(
    series_uid: str,
    elements: dict[int, tuple[str, Any]],
    *,
    creator: str = CREATOR,
    block: int = 0x10,
    extra_blocks: tuple[PrivateBlock, ...] = (),
    patient: str = "SPT",
    study_uid: str | None = None,
) -> bytes:
    blocks = [PrivateBlock(PRIVATE_GROUP, creator, elements, block)] if elements else []
    # The study UID derives from the series UID, so the instances of one series agree on it.
    return make_instance(
        patient,
        study_uid or f"{series_uid}.0",
        series_uid,
        generate_uid(),
        private_blocks=[*blocks, *extra_blocks],
    )


def new_series_uid() -> str:
    # Short enough for the derived study UID to stay within the 64 characters of a UI.
    return generate_uid(prefix="1.2.826.0.1.3680043.10.1082.")[:58].rstrip(".")


def private_tags(orthanc: Orthanc, series_id: str) -> dict[str, str]:
    answer: dict[str, Any] = orthanc.client.get_json(f"/with-private-tags/series/{series_id}")
    tags: dict[str, str] = answer["MainPrivateDicomTags"]
    return tags


def wait_for_tags(orthanc: Orthanc, series_id: str, *names: str) -> dict[str, str]:
    """Poll until the series shows every named tag; returns all its private tags."""

    def captured() -> dict[str, str] | None:
        tags = private_tags(orthanc, series_id)
        return tags if all(name in tags for name in names) else None

    return wait_until(
        captured,
        timeout=CAPTURE_TIMEOUT,
        what=f"series {series_id} to show {names}",
        interval=0.1,
        details=lambda: orthanc.log_tail(40),
    )


def test_sample_files_with_their_dictionary(orthanc: Orthanc, samples_dir: Path) -> None:
    pet = orthanc.upload_file(samples_dir / "PrivateMDNTags.dcm")["ParentSeries"]
    ultrasound = orthanc.upload_file(samples_dir / "PrivateTags.dcm")["ParentSeries"]
    assert wait_for_tags(orthanc, pet, "OriginalImageFileName") == {
        "OriginalImageFileName": "p37s0_na_ctac.img",
        "PET-CT-MultiModalityName": "1.2.840.113704.1.111.6320.1342451261.21",
    }
    assert wait_for_tags(orthanc, ultrasound, "GEMSImageGroupSequence") == {
        "GEMSImageGroupSequence": "EXISTS",
        "GEMSMovieGroupSequence": "EXISTS",
    }


def test_a_10_kB_value_comes_back_whole_and_existence_only_gives_exists(orthanc: Orthanc) -> None:
    long_value = "".join(chr(ord("A") + index % 26) for index in range(10_240))
    series = orthanc.upload_file(
        synthetic(new_series_uid(), {0x11: ("UT", long_value), 0x13: ("CS", "NO")})
    )["ParentSeries"]
    tags = wait_for_tags(orthanc, series, "QueueID")
    assert tags == {"QueueID": long_value, "OutputFlag": "EXISTS"}
    assert len(tags["QueueID"]) == 10_240


def test_private_creators_are_honoured(orthanc: Orthanc) -> None:
    # Block 0x10 belongs to another creator (same element offsets); ours is reserved at 0x11.
    theirs = PrivateBlock(
        PRIVATE_GROUP, OTHER_CREATOR, {0x11: ("UT", "theirs"), 0x12: ("LO", "theirs")}, 0x10
    )
    series = orthanc.upload_file(
        synthetic(new_series_uid(), {0x12: ("LO", "ours")}, block=0x11, extra_blocks=(theirs,))
    )["ParentSeries"]
    assert wait_for_tags(orthanc, series, "SourceSeriesUID") == {"SourceSeriesUID": "ours"}


def test_a_tag_only_in_the_third_instance_is_captured(orthanc: Orthanc) -> None:
    series_uid = new_series_uid()
    files = [
        synthetic(series_uid, {0x11: ("UT", "from the first")}),
        synthetic(series_uid, {0x11: ("UT", "not the second")}),
        synthetic(series_uid, {0x11: ("UT", "nor the third"), 0x12: ("LO", "third only")}),
    ]
    reads_before = orthanc.client.get_json("/series-private-tags/status")["DirectFileReads"]
    series_ids = {orthanc.upload_file(data)["ParentSeries"] for data in files}
    assert len(series_ids) == 1
    series = series_ids.pop()
    assert wait_for_tags(orthanc, series, "SourceSeriesUID") == {
        "QueueID": "from the first",
        "SourceSeriesUID": "third only",
    }
    # Orthanc's built-in storage: the files were read from its folder, not through its REST API.
    status = orthanc.client.get_json("/series-private-tags/status")
    assert status["DirectFileReads"] >= reads_before + 3


def test_listings_are_orthancs_own_objects_with_private_tags(orthanc: Orthanc) -> None:
    study_a, study_b = generate_uid(), generate_uid()
    uploads = [
        synthetic(new_series_uid(), {0x11: ("UT", "a1")}, patient="P1", study_uid=study_a),
        synthetic(new_series_uid(), {}, patient="P1", study_uid=study_a),
        synthetic(new_series_uid(), {0x11: ("UT", "b1")}, patient="P2", study_uid=study_b),
    ]
    answers = [orthanc.upload_file(data) for data in uploads]
    wait_for_tags(orthanc, answers[2]["ParentSeries"], "QueueID")
    wait_for_tags(orthanc, answers[0]["ParentSeries"], "QueueID")

    listed = orthanc.client.get_json("/with-private-tags/series")
    own = orthanc.client.get_json("/series?expand")
    assert [_without_private(series) for series in listed] == own
    assert {series["ID"]: series["MainPrivateDicomTags"] for series in listed} == {
        answers[0]["ParentSeries"]: {"QueueID": "a1"},
        answers[1]["ParentSeries"]: {},
        answers[2]["ParentSeries"]: {"QueueID": "b1"},
    }
    one = orthanc.client.get_json(f"/with-private-tags/series/{answers[0]['ParentSeries']}")
    assert _without_private(one) == orthanc.client.get_json(f"/series/{answers[0]['ParentSeries']}")

    of_patient = orthanc.client.get_json(
        f"/with-private-tags/patients/{answers[0]['ParentPatient']}/series"
    )
    assert sorted(series["ID"] for series in of_patient) == sorted(
        [answers[0]["ParentSeries"], answers[1]["ParentSeries"]]
    )
    of_study = orthanc.client.get_json(
        f"/with-private-tags/studies/{answers[2]['ParentStudy']}/series"
    )
    assert [(s["ID"], s["MainPrivateDicomTags"]) for s in of_study] == [
        (answers[2]["ParentSeries"], {"QueueID": "b1"})
    ]


def test_paging_matches_orthancs_own(orthanc: Orthanc) -> None:
    answers = [
        orthanc.upload_file(synthetic(new_series_uid(), {0x11: ("UT", f"q{index}")}))
        for index in range(7)
    ]
    wait_for_tags(orthanc, answers[-1]["ParentSeries"], "QueueID")
    paged: list[dict[str, Any]] = []
    for since in range(0, 9, 3):
        page = orthanc.client.get_json(f"/with-private-tags/series?since={since}&limit=3")
        own = orthanc.client.get_json(f"/series?expand&since={since}&limit=3")
        assert [_without_private(series) for series in page] == own
        paged += page
    assert [series["ID"] for series in paged] == orthanc.client.get_json("/series")


def test_bad_paging_unknown_ids_and_other_methods(orthanc: Orthanc) -> None:
    for query in ("since=1", "limit=1", "since=a&limit=1", "since=1&limit=-1", "since=0&limit=1e3"):
        response = orthanc.client.get(f"/with-private-tags/series?{query}")
        assert response.status_code == 400, query
        assert response.headers["Content-Type"] == error_content_type(orthanc)
        assert response.json()["HttpStatus"] == 400

    answer = orthanc.upload_file(synthetic(new_series_uid(), {0x11: ("UT", "x")}))
    for path in (
        "/with-private-tags/series/unknown",
        "/with-private-tags/patients/unknown/series",
        "/with-private-tags/studies/unknown/series",
        # A study's ID is not a patient's: Orthanc itself would answer [] here.
        f"/with-private-tags/patients/{answer['ParentStudy']}/series",
    ):
        response = orthanc.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == error_content_type(orthanc)
        assert "Message" in response.json()
    for path in (
        "/with-private-tags/series",
        f"/with-private-tags/series/{answer['ParentSeries']}",
        f"/with-private-tags/patients/{answer['ParentPatient']}/series",
        f"/with-private-tags/studies/{answer['ParentStudy']}/series",
    ):
        for method in ("POST", "PUT", "DELETE"):
            response = orthanc.client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["Allow"] == "GET"


def test_a_deleted_series_leaves_every_listing(orthanc: Orthanc) -> None:
    study, doomed_uid = generate_uid(), new_series_uid()
    kept, doomed = (
        orthanc.upload_file(synthetic(uid, {0x11: ("UT", uid)}, patient="DEL", study_uid=study))
        for uid in (new_series_uid(), doomed_uid)
    )
    wait_for_tags(orthanc, doomed["ParentSeries"], "QueueID")
    wait_for_tags(orthanc, kept["ParentSeries"], "QueueID")
    orthanc.client.delete(f"/series/{doomed['ParentSeries']}").raise_for_status()
    for path in (
        "/with-private-tags/series",
        f"/with-private-tags/patients/{kept['ParentPatient']}/series",
        f"/with-private-tags/studies/{kept['ParentStudy']}/series",
    ):
        assert [s["ID"] for s in orthanc.client.get_json(path)] == [kept["ParentSeries"]], path
    assert orthanc.client.get(
        f"/with-private-tags/series/{doomed['ParentSeries']}"
    ).status_code == (404)
    # Stored again, the series starts from its new instances only.
    again = orthanc.upload_file(
        synthetic(doomed_uid, {0x12: ("LO", "new")}, patient="DEL", study_uid=study)
    )
    assert again["ParentSeries"] == doomed["ParentSeries"]
    assert wait_for_tags(orthanc, doomed["ParentSeries"], "SourceSeriesUID") == {
        "SourceSeriesUID": "new"
    }
    # Deleting the whole study (or patient) drops its series too.
    orthanc.client.delete(f"/studies/{again['ParentStudy']}").raise_for_status()
    assert orthanc.client.get_json("/with-private-tags/series") == []
    last = orthanc.upload_file(
        synthetic(doomed_uid, {0x13: ("CS", "")}, patient="DEL", study_uid=study)
    )
    assert last["ParentSeries"] == doomed["ParentSeries"]
    assert wait_for_tags(orthanc, doomed["ParentSeries"], "OutputFlag") == {"OutputFlag": "EXISTS"}


def test_reconstruct_after_adding_a_tag_and_restarting(start_orthanc: StartOrthanc) -> None:
    first = start_orthanc(tags=["QueueID"])
    series_ids = [
        first.upload_file(
            synthetic(new_series_uid(), {0x11: ("UT", f"q{n}"), 0x12: ("LO", f"s{n}")})
        )["ParentSeries"]
        for n in range(3)
    ]
    for series_id in series_ids:
        wait_for_tags(first, series_id, "QueueID")
    first.stop()

    storage = {key: first.config[key] for key in ("StorageDirectory", "IndexDirectory")}
    second = start_orthanc(tags=["QueueID", "SourceSeriesUID"], **storage)
    assert private_tags(second, series_ids[0]) == {"QueueID": "q0"}

    started = second.client.post("/with-private-tags/reconstruct")
    assert started.status_code == 202
    assert started.json()["Total"] == 3

    def finished() -> dict[str, Any] | None:
        progress: dict[str, Any] = second.client.get_json("/with-private-tags/reconstruct")
        return progress if progress["State"] == "Done" else None

    progress = wait_until(finished, timeout=CAPTURE_TIMEOUT, what="the reconstruction to finish")
    assert (progress["Done"], progress["Total"], progress["ErrorCount"]) == (3, 3, 0)
    for n, series_id in enumerate(series_ids):
        assert private_tags(second, series_id) == {"QueueID": f"q{n}", "SourceSeriesUID": f"s{n}"}

    # Idempotent: a second run changes nothing.
    second.client.post("/with-private-tags/reconstruct", json={"Series": series_ids[1]})
    wait_until(finished, timeout=CAPTURE_TIMEOUT, what="the second reconstruction")
    assert private_tags(second, series_ids[1]) == {"QueueID": "q1", "SourceSeriesUID": "s1"}


def _without_private(series: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in series.items() if key != "MainPrivateDicomTags"}


def test_one_unreadable_instance_of_a_capture_batch_costs_only_itself_and_is_retried(
    orthanc_factory: OrthancFactory, samples_dir: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    settings = {
        **configuration(samples_dir, ["QueueID"]),
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "MaximumStorageCacheSize": 0,  # every read goes to the file
    }
    orthanc = orthanc_factory(["series-private-tags"], settings, entry="standalone")
    files = [synthetic(new_series_uid(), {0x11: ("UT", f"q{n}")}) for n in range(8)]
    # Stored together, so one capture batch (0.1 s window) holds them; the first one's file is
    # moved away as soon as Orthanc has it, before the worker reads it.
    with ThreadPoolExecutor(len(files)) as pool:
        uploads = [pool.submit(orthanc.upload_file, data) for data in files]
        broken = uploads[0].result()
        file_uuid = orthanc.client.get_json(f"/instances/{broken['ID']}")["FileUuid"]
        (path,) = storage.rglob(file_uuid)
        aside = path.rename(tmp_path / "moved-away")
        stored = [upload.result() for upload in uploads]
    wait_until(
        lambda: "1 instance(s) to capture again" in orthanc.log_text(),
        timeout=CAPTURE_TIMEOUT,
        what="the unreadable instance to be put back for later",
        details=lambda: orthanc.log_tail(40),
    )
    assert private_tags(orthanc, broken["ParentSeries"]) == {}
    aside.rename(path)  # readable again: the retry captures it
    for n, answer in enumerate(stored):
        assert wait_for_tags(orthanc, answer["ParentSeries"], "QueueID") == {"QueueID": f"q{n}"}
    log = orthanc.log_text()
    assert "not captured after" not in log
    assert len(re.findall(r"instance\(s\) to capture again", log)) >= 1
