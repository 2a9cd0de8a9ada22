"""The default thumbnail kept as an attachment of its series (`UserContentType`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from thumbnail_testing import (
    METADATA_NAME,
    RestSpy,
    Series,
    Thumbnails,
    configuration,
    ct_slice,
    grey_at_centre,
    store,
    stored_choice,
)

from orthanc_fake import FakeOrthanc
from orthanc_series_thumbnail.attachment import MAGIC, decode, encode
from orthanc_series_thumbnail.plugin import create

NAME = "SeriesThumbnail"


def with_attachment(**section: object) -> dict[str, object]:
    return {**configuration(**section), "UserContentType": {NAME: 2001}}


@pytest.fixture
def storing(fake_orthanc_factory: Callable[..., FakeOrthanc]) -> Thumbnails:
    fake = fake_orthanc_factory(with_attachment())
    rest = RestSpy(fake)
    plugin = create(fake, fake.configuration)
    fake.RegisterOnChangeCallback(plugin.on_change)
    fake.start()
    return Thumbnails(fake, plugin, rest)


def restarted(before: Thumbnails) -> Thumbnails:
    """A new plugin on the same archive: what Orthanc holds after a restart, nothing in memory."""
    before.plugin.worker.stop()
    fake = before.fake
    fake.routes.clear()  # the new plugin's routes answer, not the old one's
    plugin = create(fake, fake.configuration)
    fake.on_change_callback = plugin.on_change
    plugin.worker.start()
    return Thumbnails(fake, plugin, before.rest)


def ct(series: Series, k: int, value: int) -> bytes:
    return ct_slice(series, k, value, z=5.0 * k, number=100 - k, rows=8, columns=16)


def stored_bytes(fake: FakeOrthanc, series_id: str) -> bytes | None:
    try:
        return fake.RestApiGet(f"/series/{series_id}/attachments/{NAME}/data")
    except fake.OrthancException:
        return None


def stable_series(thumbnails: Thumbnails, values: list[int], series: Series) -> str:
    fake = thumbnails.fake
    series_id = store(fake, [ct(series, k, v) for k, v in enumerate(values)]).series_id
    fake.mark_all_stable()
    assert thumbnails.plugin.worker.wait_idle(5)
    return series_id


def renderings(thumbnails: Thumbnails) -> int:
    return sum("/rendered" in call for call in thumbnails.rest.calls)


def test_the_header_names_what_the_bytes_were_rendered_for() -> None:
    stored = encode("abc", b"\xff\xd8image")
    assert stored.startswith(MAGIC) and decode(stored, "abc") == b"\xff\xd8image"
    assert decode(stored, "abd") is None
    assert decode(b"\xff\xd8image", "abc") is None


def test_a_stable_series_stores_its_default_thumbnail(storing: Thumbnails) -> None:
    series_id = stable_series(storing, [10, 20, 30], Series())
    stored = stored_bytes(storing.fake, series_id)
    answer = storing.fake.call_route("GET", f"/series/{series_id}/thumbnail")
    assert stored == encode(answer.headers["ETag"].strip('"'), answer.body)
    status = storing.fake.call_route("GET", "/series-thumbnail/status").json()["Attachment"]
    assert status == {
        "Enabled": True,
        "Name": NAME,
        "Index": 2001,
        "Loaded": 0,
        "Stored": 1,
        "Removed": 0,
        "Ignored": 0,
    }


def test_a_series_created_while_running_is_not_looked_up_before_its_first_store(
    storing: Thumbnails,
) -> None:
    series_id = stable_series(storing, [10, 20, 30], Series())
    attachment = f"/series/{series_id}/attachments/{NAME}"
    assert [c for c in storing.rest.calls if attachment in c] == [f"PUT {attachment}"]


def test_after_a_restart_the_first_request_reads_it_and_renders_nothing(
    storing: Thumbnails,
) -> None:
    series_id = stable_series(storing, [10, 20, 30], Series())
    before = storing.fake.call_route("GET", f"/series/{series_id}/thumbnail")
    after_restart = restarted(storing)
    after_restart.rest.clear()
    first = after_restart.fake.call_route("GET", f"/series/{series_id}/thumbnail")
    assert (first.body, first.headers["ETag"]) == (before.body, before.headers["ETag"])
    assert renderings(after_restart) == 0
    assert after_restart.plugin.service.renderings() == 0
    # Only the default size and format are stored: others are rendered and kept in memory.
    png = after_restart.fake.call_route(
        "GET", f"/series/{series_id}/thumbnail", get={"format": "png"}
    )
    assert png.status == 200 and renderings(after_restart) == 1
    assert stored_bytes(after_restart.fake, series_id) == encode(
        first.headers["ETag"].strip('"'), first.body
    )


def test_a_new_instance_removes_it_and_the_next_stable_stores_the_new_one(
    storing: Thumbnails,
) -> None:
    fake, plugin = storing.fake, storing.plugin
    series = Series()
    series_id = stable_series(storing, [10, 20, 30], series)
    old = stored_bytes(fake, series_id)
    fake.store(ct(series, 3, 200))
    fake.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    assert stored_bytes(fake, series_id) is None
    fake.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    new = stored_bytes(fake, series_id)
    assert new is not None and new != old
    answer = fake.call_route("GET", f"/series/{series_id}/thumbnail")
    assert new == encode(answer.headers["ETag"].strip('"'), answer.body)


def test_its_own_write_is_not_taken_for_a_change_of_the_series(storing: Thumbnails) -> None:
    series_id = stable_series(storing, [10, 20, 30], Series())
    storing.fake.deliver_pending_changes()  # UPDATED_ATTACHMENT of the series
    assert storing.plugin.worker.wait_idle(5)
    assert stored_bytes(storing.fake, series_id) is not None
    assert stored_choice(storing.fake, series_id) is not None
    assert not any(call.startswith("DELETE") for call in storing.rest.calls)


def test_deleting_the_shown_instance_removes_it(storing: Thumbnails) -> None:
    fake = storing.fake
    series = Series()
    stored = store(fake, [ct(series, k, v) for k, v in enumerate([10, 40, 70, 100])])
    fake.mark_all_stable()
    assert storing.plugin.worker.wait_idle(5)
    assert stored_bytes(fake, stored.series_id) is not None
    fake.RestApiDelete(f"/instances/{stored.instance_ids[2]}")
    fake.deliver_pending_changes()
    assert storing.plugin.worker.wait_idle(5)
    assert stored_bytes(fake, stored.series_id) is None


def test_a_stale_one_is_never_served(storing: Thumbnails) -> None:
    """Written for another choice (a change while Orthanc was stopped, another node): ignored,
    rendered again, and replaced by the worker since the series is stable."""
    fake = storing.fake
    series_id = stable_series(storing, [10, 20, 30], Series())
    uri = f"/series/{series_id}/attachments/{NAME}"
    fake.RestApiPut(uri, encode("0" * 32, b"old image"))
    after_restart = restarted(storing)
    answer = fake.call_route("GET", f"/series/{series_id}/thumbnail")
    assert answer.status == 200 and abs(grey_at_centre(answer.body) - 20) <= 3
    assert after_restart.plugin.service.renderings() == 1
    assert after_restart.plugin.worker.wait_idle(5)
    assert stored_bytes(fake, series_id) == encode(answer.headers["ETag"].strip('"'), answer.body)
    status = fake.call_route("GET", "/series-thumbnail/status").json()["Attachment"]
    assert (status["Ignored"], status["Stored"]) == (1, 1)


def test_a_series_stable_before_storing_began_is_stored_on_its_first_request(
    storing: Thumbnails,
) -> None:
    fake = storing.fake
    series_id = stable_series(storing, [10, 20, 30], Series())
    fake.RestApiDelete(f"/series/{series_id}/attachments/{NAME}")
    after_restart = restarted(storing)
    assert fake.call_route("GET", f"/series/{series_id}/thumbnail").status == 200
    assert after_restart.plugin.worker.wait_idle(5)
    assert stored_bytes(fake, series_id) is not None


def test_nothing_is_stored_without_the_declaration(running: Thumbnails) -> None:
    series_id = stable_series(running, [10, 20, 30], Series())
    assert not any(f"/attachments/{NAME}" in call for call in running.rest.calls)
    assert stored_bytes(running.fake, series_id) is None
    status = running.fake.call_route("GET", "/series-thumbnail/status").json()
    assert status["Attachment"] == {"Enabled": False}


def test_without_prerendering_or_cache_a_request_stores_it_once(
    fake_orthanc_factory: Callable[..., FakeOrthanc],
) -> None:
    fake = fake_orthanc_factory(with_attachment(PrerenderOnStable=False, CacheSizeMB=0))
    rest = RestSpy(fake)
    plugin = create(fake, fake.configuration)
    fake.RegisterOnChangeCallback(plugin.on_change)
    fake.start()
    thumbnails = Thumbnails(fake, plugin, rest)
    series_id = stable_series(thumbnails, [10, 20, 30], Series())
    assert stored_bytes(fake, series_id) is None  # nothing rendered at stable
    uri = f"/series/{series_id}/thumbnail"
    first = fake.call_route("GET", uri)
    assert plugin.worker.wait_idle(5)
    assert stored_bytes(fake, series_id) == encode(first.headers["ETag"].strip('"'), first.body)
    for _ in range(3):
        assert fake.call_route("GET", uri).body == first.body
    assert plugin.worker.wait_idle(5)
    status = fake.call_route("GET", "/series-thumbnail/status").json()
    # The request rendered, the worker read that back from nowhere (no cache) and rendered once
    # more to store it; later requests read the stored one.
    assert (status["Renderings"], status["Attachment"]["Stored"]) == (2, 1), status
    assert status["Attachment"]["Loaded"] == 3
    fake.stop()


def test_the_workers_own_writes_do_not_hold_the_next_stable_series(storing: Thumbnails) -> None:
    # The stable-series work waits for a pause in Orthanc's changes. Its own writes (the choice
    # in metadata, the thumbnail as an attachment) are changes too: counted, every series would
    # wait a whole pause after the previous one's writes.
    fake, worker = storing.fake, storing.plugin.worker
    series_ids = [
        store(fake, [ct(series, k, 10 * k) for k in range(3)]).series_id
        for series in (Series(), Series(), Series())
    ]
    fake.deliver_pending_changes()
    assert worker.wait_idle(5)
    for series_id in series_ids:
        fake.fire_change(fake.ChangeType.STABLE_SERIES, fake.ResourceType.SERIES, series_id)
    assert worker.wait_idle(5)
    assert all(stored_bytes(fake, series_id) for series_id in series_ids)
    last_activity = worker.last_activity()
    assert fake.deliver_pending_changes() == 6  # a choice and a thumbnail per series
    assert worker.last_activity() == last_activity
    # Someone else's update of another series is Orthanc's activity, as any other change is.
    other = store(fake, [ct(Series(), 0, 10)]).series_id
    fake.deliver_pending_changes()
    last_activity = worker.last_activity()
    fake.RestApiPut(f"/series/{other}/metadata/{METADATA_NAME}", b"someone else's")
    assert fake.deliver_pending_changes() == 1
    assert worker.last_activity() > last_activity
