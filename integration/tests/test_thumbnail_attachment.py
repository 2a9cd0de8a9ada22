"""The default thumbnail kept as an Orthanc attachment of its series: it survives a restart, is
invalidated with the choice, and its writes are not taken for a change of the series."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc, RabbitMQ
from integration.harness.rabbitmq import consume
from integration.tests.test_dicom_events import ALL_EVENTS, rabbit_config
from integration.tests.test_series_thumbnail import (
    CONFIG,
    ct_slices,
    instance_of_slice,
    slice_shown,
    thumbnail,
    upload,
    wait_for_metadata,
)

pytestmark = pytest.mark.e2e

ATTACHMENT = "SeriesThumbnail"
STABLE_AGE = 1
ATTACHMENT_CONFIG: dict[str, Any] = {**CONFIG, "UserContentType": {ATTACHMENT: 2001}}


@pytest.fixture
def orthanc(orthanc_factory: OrthancFactory) -> Orthanc:
    return orthanc_factory(
        plugins=["series-thumbnail"], config=ATTACHMENT_CONFIG, entry="standalone"
    )


def attachment_uri(series_id: str) -> str:
    return f"/series/{series_id}/attachments/{ATTACHMENT}"


def has_attachment(orthanc: Orthanc, series_id: str) -> bool:
    return ATTACHMENT in orthanc.client.get_json(f"/series/{series_id}/attachments")


def wait_until_true(what: str, check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def changes_of(orthanc: Orthanc, resource_id: str) -> list[str]:
    listed = orthanc.client.get_json("/changes", params={"limit": 1000})["Changes"]
    return [c["ChangeType"] for c in listed if c["ID"] == resource_id]


def persistence(orthanc: Orthanc) -> dict[str, Any]:
    status: dict[str, Any] = orthanc.client.get_json("/series-thumbnail/status")
    return dict(status["Attachment"])


def test_a_user_attachment_written_to_a_stable_series_or_instance_leaves_it_stable(
    orthanc: Orthanc,
) -> None:
    """Measured on each Orthanc of the harness: an attachment write logs `UpdatedAttachment` and
    nothing else; the series stays stable and no second `StableSeries` comes."""
    series_id = upload(orthanc, ct_slices(3))
    orthanc.wait_stable("series", series_id)
    instance_id = orthanc.client.get_json(f"/series/{series_id}")["Instances"][0]
    wait_until_true("the plugin's attachment", lambda: has_attachment(orthanc, series_id))
    for uri in (f"/series/{series_id}", f"/instances/{instance_id}"):
        answer = orthanc.client.put(f"{uri}/attachments/{ATTACHMENT}", data=b"by the test")
        assert answer.status_code == 200, answer.text
        assert orthanc.client.get_json(f"/series/{series_id}")["IsStable"] is True
    time.sleep(STABLE_AGE + 2.5)  # Orthanc checks stability about once a second
    assert orthanc.client.get_json(f"/series/{series_id}")["IsStable"] is True
    changes = changes_of(orthanc, series_id)
    assert changes.count("StableSeries") == 1, changes
    # The plugin's own write and the test's one.
    assert changes.count("UpdatedAttachment") == 2, changes


def stored_key(orthanc: Orthanc, series_id: str) -> str | None:
    """The ETag the stored thumbnail was rendered for (its header line), None when absent."""
    answer = orthanc.client.get(attachment_uri(series_id) + "/data")
    if answer.status_code != 200:
        return None
    _magic, key, _image = answer.content.split(b"\n", 2)
    return '"' + key.decode() + '"'


def test_the_first_request_after_a_restart_is_served_from_the_stored_attachment(
    orthanc: Orthanc,
) -> None:
    series_id = upload(orthanc, ct_slices(5))
    orthanc.wait_stable("series", series_id)
    wait_until_true("the stored thumbnail", lambda: has_attachment(orthanc, series_id))
    before = thumbnail(orthanc, series_id)
    assert stored_key(orthanc, series_id) == before.headers["ETag"]

    orthanc.restart()
    first = thumbnail(orthanc, series_id)
    assert first.status_code == 200
    assert (first.content, first.headers["ETag"]) == (before.content, before.headers["ETag"])
    assert slice_shown(first.content) == 2
    status = orthanc.client.get_json("/series-thumbnail/status")
    assert status["Renderings"] == 0, status
    assert (status["Attachment"]["Loaded"], status["Attachment"]["Ignored"]) == (1, 0), status
    # Only the default size and format are stored: another size is rendered.
    assert thumbnail(orthanc, series_id, params={"size": "64"}).status_code == 200
    assert orthanc.client.get_json("/series-thumbnail/status")["Renderings"] == 1


def test_a_new_instance_replaces_the_stored_thumbnail_and_a_stale_one_is_never_served(
    orthanc: Orthanc,
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    series_id = upload(orthanc, ct_slices(5, study_uid=study_uid, series_uid=series_uid))
    orthanc.wait_stable("series", series_id)
    wait_until_true("the stored thumbnail", lambda: has_attachment(orthanc, series_id))
    old = orthanc.client.get(attachment_uri(series_id) + "/data").content
    old_tag = thumbnail(orthanc, series_id).headers["ETag"]

    more = ct_slices(2, study_uid=study_uid, series_uid=series_uid, first_index=5)
    assert upload(orthanc, more) == series_id
    # The change removes the stored thumbnail at once; the series stable again stores the new one.
    wait_until_true("the old thumbnail removed", lambda: stored_key(orthanc, series_id) != old_tag)
    assert persistence(orthanc)["Removed"] >= 1
    orthanc.wait_stable("series", series_id)
    wait_for_metadata(orthanc, series_id, instance_of_slice(orthanc, series_id, 3))
    current = thumbnail(orthanc, series_id)
    assert slice_shown(current.content) == 3
    wait_until_true(
        "the new thumbnail stored",
        lambda: stored_key(orthanc, series_id) == current.headers["ETag"],
    )

    # An old thumbnail written back behind the plugin's back (as a node that missed the change
    # could) is recognised by its header and not served after a restart.
    answer = orthanc.client.put(attachment_uri(series_id), data=old)
    assert answer.status_code == 200, answer.text
    orthanc.restart()
    after = thumbnail(orthanc, series_id)
    assert (slice_shown(after.content), after.headers["ETag"]) == (3, current.headers["ETag"])
    status = orthanc.client.get_json("/series-thumbnail/status")
    assert (status["Attachment"]["Ignored"], status["Renderings"]) == (1, 1), status
    # The request stored the current thumbnail again (the series is stable).
    wait_until_true(
        "the thumbnail stored again",
        lambda: stored_key(orthanc, series_id) == current.headers["ETag"],
    )


def test_deleting_the_shown_instance_removes_the_stored_thumbnail(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(5))
    orthanc.wait_stable("series", series_id)
    wait_until_true("the stored thumbnail", lambda: has_attachment(orthanc, series_id))
    assert slice_shown(thumbnail(orthanc, series_id).content) == 2
    orthanc.client.delete(f"/instances/{instance_of_slice(orthanc, series_id, 2)}")
    wait_until_true("the thumbnail removed", lambda: not has_attachment(orthanc, series_id))
    assert slice_shown(thumbnail(orthanc, series_id).content) in (1, 3)


def test_storing_is_off_until_the_attachment_is_declared(orthanc_factory: OrthancFactory) -> None:
    orthanc = orthanc_factory(plugins=["series-thumbnail"], config=CONFIG, entry="standalone")
    series_id = upload(orthanc, ct_slices(3))
    orthanc.wait_stable("series", series_id)
    wait_for_metadata(orthanc, series_id, instance_of_slice(orthanc, series_id, 1))
    assert orthanc.client.get_json(f"/series/{series_id}/attachments") == []
    assert orthanc.client.get_json("/series-thumbnail/status")["Attachment"] == {"Enabled": False}


def test_an_undeclared_attachment_name_stops_orthanc_naming_the_key(
    orthanc_factory: OrthancFactory,
) -> None:
    config = {**CONFIG, "SeriesThumbnail": {"AttachmentName": "Thumbs"}}
    orthanc = orthanc_factory(
        plugins=["series-thumbnail"], config=config, entry="standalone", start=False
    )
    status, log = orthanc.start_expecting_failure()
    assert status != 0
    assert "UserContentType.Thumbs: declare the attachment 'Thumbs'" in log


def test_the_three_plugins_take_no_stored_thumbnail_for_a_change_of_its_series(
    orthanc_factory: OrthancFactory, rabbitmq: RabbitMQ
) -> None:
    """dicom-events publishes one `series.stable` and nothing for `UpdatedAttachment`;
    series-private-tags captures once; series-thumbnail keeps its stored thumbnail."""
    exchange = f"thumbnail-attachment-{uuid.uuid4().hex[:8]}"
    config = {
        **rabbit_config(rabbitmq.url_for_orthanc, exchange, ALL_EVENTS),
        **ATTACHMENT_CONFIG,
        "SeriesMainPrivateDicomTags": ["QueueID"],
        "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
    }
    orthanc = orthanc_factory(
        plugins=["dicom-events", "series-private-tags", "series-thumbnail"], config=config
    )
    with consume(rabbitmq.url, exchange, "dicom.#") as events:
        series_id = upload(orthanc, ct_slices(3))
        orthanc.wait_stable("series", series_id)
        wait_until_true("the stored thumbnail", lambda: has_attachment(orthanc, series_id))
        stored_at = stored_key(orthanc, series_id)
        time.sleep(STABLE_AGE + 2.5)  # a second StableSeries would have come by now
        types = [m.body["type"] for m in events.messages if series_id in json.dumps(m.body)]
    assert types.count("dicom.series.stable") == 1, types
    assert types.count("dicom.instance.stored") == 3, types
    assert set(types) == {"dicom.instance.stored", "dicom.series.stable"}, types
    assert stored_key(orthanc, series_id) == stored_at
    assert persistence(orthanc)["Removed"] == 0
    changes = changes_of(orthanc, series_id)
    assert changes.count("UpdatedAttachment") == 1, changes
    assert changes.count("StableSeries") == 1, changes
