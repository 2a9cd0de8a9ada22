"""The plugins on an Orthanc with `"CheckRevisions": true`, what multi-writer setups run: every
metadata write and delete carries the current revision, none is refused."""

from __future__ import annotations

import time

import pytest

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc
from integration.tests.test_series_private_tags import (
    SYNTHETIC,
    new_series_uid,
    synthetic,
    wait_for_tags,
)
from integration.tests.test_series_thumbnail import ct_slices, instance_of_slice, upload

pytestmark = pytest.mark.e2e

REFUSED = ("bad revision number", "If-Match is missing")


def wait_for_choice(orthanc: Orthanc, series_id: str, expected: str | None) -> None:
    deadline = time.monotonic() + 20
    seen: str | None = ""
    while time.monotonic() < deadline:
        answer = orthanc.client.get(f"/series/{series_id}/metadata/ThumbnailInstanceID")
        seen = answer.text if answer.status_code == 200 else None
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"stored choice of {series_id} is {seen!r}, expected {expected!r}")


def test_captures_and_stored_choices_follow_changes_without_revision_errors(
    orthanc_factory: OrthancFactory,
) -> None:
    config = {
        "CheckRevisions": True,
        "StableAge": 1,
        "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
        "Dictionary": SYNTHETIC,
        "SeriesMainPrivateDicomTags": ["QueueID", "SourceSeriesUID"],
    }
    orthanc = orthanc_factory(["series-private-tags", "series-thumbnail"], config)

    # series-thumbnail: stored choice written, then cleared and rewritten as the series changes
    files = ct_slices(5)
    series = upload(orthanc, files[:3])
    wait_for_choice(orthanc, series, instance_of_slice(orthanc, series, 1))
    upload(orthanc, files[3:])  # the middle moves: the stored choice is deleted, then rewritten
    wait_for_choice(orthanc, series, instance_of_slice(orthanc, series, 2))
    orthanc.client.delete(f"/instances/{instance_of_slice(orthanc, series, 4)}").raise_for_status()
    orthanc.client.delete(f"/instances/{instance_of_slice(orthanc, series, 3)}").raise_for_status()
    assert orthanc.client.get(f"/series/{series}/thumbnail").status_code == 200
    wait_for_choice(orthanc, series, instance_of_slice(orthanc, series, 1))

    # series-private-tags: the series' metadata is written again by a later instance
    series_uid = new_series_uid()
    first = orthanc.upload_file(synthetic(series_uid, {0x11: ("UT", "first")}))["ParentSeries"]
    wait_for_tags(orthanc, first, "QueueID")
    orthanc.upload_file(synthetic(series_uid, {0x11: ("UT", "x"), 0x12: ("LO", "later")}))
    assert wait_for_tags(orthanc, first, "QueueID", "SourceSeriesUID") == {
        "QueueID": "first",
        "SourceSeriesUID": "later",
    }
    reconstruct = orthanc.client.post("/with-private-tags/reconstruct", json={"Series": first})
    assert reconstruct.status_code == 202, reconstruct.text
    wait_for_tags(orthanc, first, "QueueID", "SourceSeriesUID")

    log = orthanc.log_text()
    assert not [line for line in log.splitlines() if any(text in line for text in REFUSED)]
