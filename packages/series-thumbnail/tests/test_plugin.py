"""The Orthanc glue, on orthanc-fake: routes, change handling, worker life cycle."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from thumbnail_testing import (
    METADATA_NAME,
    SECONDARY_CAPTURE,
    Series,
    Thumbnails,
    ct_slice,
    grey_at_centre,
    mark_series_stable,
    store,
    stored_choice,
)

from orthanc_fake import FakeOrthanc, OrthancException
from orthanc_series_thumbnail import ConfigurationError
from orthanc_series_thumbnail.plugin import create


def ct(series: Series, k: int, value: int) -> bytes:
    """Slice k at z = 5 k; InstanceNumber runs the other way (100 - k)."""
    return ct_slice(series, k, value, z=5.0 * k, number=100 - k, rows=8, columns=16)


def store_series(fake: FakeOrthanc, values: list[int], series: Series | None = None) -> str:
    series = series or Series()
    return store(fake, [ct(series, k, value) for k, value in enumerate(values)]).series_id


def test_missing_metadata_declaration_refuses_to_start(fake_orthanc: FakeOrthanc) -> None:
    with pytest.raises(ConfigurationError, match=r"UserMetadata\.ThumbnailInstanceID"):
        create(fake_orthanc, fake_orthanc.configuration)


def test_route_serves_the_geometric_middle(running: Thumbnails) -> None:
    # Values rise with position; InstanceNumber falls: geometry picks value 60 (slice 3 of 6),
    # InstanceNumber would pick 40.
    series_id = store_series(running.fake, [0, 20, 40, 60, 80, 100])
    answer = running.fake.call_route(
        "GET", f"/series/{series_id}/thumbnail", get={"size": "32", "format": "png"}
    )
    assert answer.status == 200 and answer.content_type == "image/png"
    assert Image.open(io.BytesIO(answer.body)).size == (32, 16)
    assert abs(grey_at_centre(answer.body) - 60) <= 2
    assert answer.headers["ETag"].startswith('"')


def test_304_405_404_and_status(running: Thumbnails) -> None:
    fake = running.fake
    series_id = store_series(fake, [10, 20, 30])
    uri = f"/series/{series_id}/thumbnail"
    tag = fake.call_route("GET", uri).headers["ETag"]
    not_modified = fake.call_route("GET", uri, headers={"If-None-Match": tag})
    assert not_modified.status == 304 and not not_modified.body
    assert fake.call_route("DELETE", uri).status == 405
    missing = fake.call_route("GET", "/series/nope/thumbnail")
    assert missing.status == 404 and missing.json()["HttpStatus"] == 404
    bad = fake.call_route("GET", uri, get={"size": "2"})
    assert bad.status == 400 and bad.headers.get("Content-Type") == "application/json"
    status = fake.call_route("GET", "/series-thumbnail/status").json()
    assert status["Cache"]["Entries"] == 1 and status["DefaultSize"] == 256


def test_stable_series_gets_metadata_and_a_new_instance_clears_it(running: Thumbnails) -> None:
    fake, plugin = running.fake, running.plugin
    series = Series()
    series_id = store_series(fake, [10, 20, 30], series)
    fake.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    metadata = f"/series/{series_id}/metadata/ThumbnailInstanceID"
    chosen = fake.RestApiGet(metadata)
    middle = [
        i
        for i in json.loads(fake.RestApiGet(f"/series/{series_id}/instances"))
        if i["MainDicomTags"]["InstanceNumber"] == "99"
    ]
    assert chosen == middle[0]["ID"].encode()
    assert plugin.service.cache.stats()["Entries"] == 1  # pre-rendered on STABLE_SERIES

    added = fake.store(ct(series, 3, 200))
    fake.deliver_pending_changes()  # NEW_CHILD_INSTANCE for the series
    assert plugin.worker.wait_idle(5)
    with pytest.raises(OrthancException):
        fake.RestApiGet(metadata)
    fake.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    assert fake.RestApiGet(metadata) != chosen  # middle of 4 is slice 2
    assert added.series_id == series_id


def test_deleting_a_series_is_handled(running: Thumbnails) -> None:
    fake, plugin = running.fake, running.plugin
    series_id = store_series(fake, [10, 20, 30])
    assert fake.call_route("GET", f"/series/{series_id}/thumbnail").status == 200
    fake.RestApiDelete(f"/series/{series_id}")
    fake.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    assert fake.call_route("GET", f"/series/{series_id}/thumbnail").status == 404
    assert plugin.service.cache.stats()["Entries"] == 0


def test_deleting_the_chosen_instance_moves_the_thumbnail(running: Thumbnails) -> None:
    fake, plugin = running.fake, running.plugin
    series = Series()
    stored = store(fake, [ct(series, k, value) for k, value in enumerate([10, 40, 70, 100])])
    fake.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    chosen = stored_choice(fake, stored.series_id)
    assert chosen == stored.instance_ids[2]
    fake.RestApiDelete(f"/instances/{chosen}")
    fake.deliver_pending_changes()  # DELETED for the instance only: the series stays
    assert plugin.worker.wait_idle(5)
    assert stored_choice(fake, stored.series_id) is None
    answer = fake.call_route("GET", f"/series/{stored.series_id}/thumbnail")
    assert answer.status == 200 and abs(grey_at_centre(answer.body) - 40) <= 3  # slice 1 of 3


def test_no_image_is_415(running: Thumbnails) -> None:
    # A secondary capture without pixel data.
    series_id = store(running.fake, [Series().instance(0, SECONDARY_CAPTURE)]).series_id
    answer = running.fake.call_route("GET", f"/series/{series_id}/thumbnail")
    assert answer.status == 415
    assert "no thumbnail" in answer.json()["Message"]


def test_worker_runs_from_orthanc_started_to_orthanc_stopped(thumbnails: Thumbnails) -> None:
    fake, worker = thumbnails.fake, thumbnails.plugin.worker
    stable, series = fake.ChangeType.STABLE_SERIES, fake.ResourceType.SERIES
    fake.fire_change(stable, series, "deleted-meanwhile")
    assert not worker.wait_idle(0.1)  # before ORTHANC_STARTED, work only queues
    fake.start()
    assert worker.wait_idle(5)
    fake.stop()
    fake.fire_change(stable, series, "after-stop")
    assert not worker.wait_idle(0.1) and worker.pending() == 1


def test_ingesting_a_series_wakes_the_worker_once_not_per_instance(
    running: Thumbnails, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = running.fake, running.plugin
    submitted: list[str] = []
    real = plugin.worker.series_changed

    def series_changed(series_id: str) -> None:
        submitted.append(series_id)
        real(series_id)

    monkeypatch.setattr(plugin.worker, "series_changed", series_changed)
    series = Series()
    series_id = fake.store(ct(series, 0, 10)).series_id
    fake.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    for k in range(1, 6):
        fake.store(ct(series, k, 10 * k))
        fake.deliver_pending_changes()
        assert plugin.worker.wait_idle(5)
    assert submitted == []  # a new series has nothing to reset
    # Once a thumbnail was chosen, the next instance resets it.
    assert fake.call_route("GET", f"/series/{series_id}/thumbnail").status == 200
    fake.store(ct(series, 6, 60))
    fake.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    assert submitted == [series_id]
    fake.store(ct(series, 7, 70))
    fake.deliver_pending_changes()
    assert submitted == [series_id]


def test_a_new_series_costs_no_metadata_delete_nor_read_back(running: Thumbnails) -> None:
    fake, rest = running.fake, running.rest
    series = Series()
    series_id = store_series(fake, [10, 20, 30], series)
    fake.deliver_pending_changes()
    mark_series_stable(fake, series_id)
    assert running.plugin.worker.wait_idle(5)
    metadata = f"/series/{series_id}/metadata/{METADATA_NAME}"
    assert stored_choice(fake, series_id) is not None  # chosen and stored all the same
    assert rest.count(f"DELETE {metadata}") == 0
    assert rest.count(f"GET {metadata}") == 1  # stored_choice's own read
    store(fake, [ct(series, 3, 40)])  # the series changes after its choice was stored
    fake.deliver_pending_changes()
    assert running.plugin.worker.wait_idle(5)
    assert rest.count(f"DELETE {metadata}") == 1
    assert stored_choice(fake, series_id) is None
