"""The Orthanc glue, on the fake `orthanc` module: routes, change handling, worker life cycle."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from orthanc_fake import FakeOrthanc, OrthancException, make_instance
from orthanc_series_thumbnail import ConfigurationError
from orthanc_series_thumbnail.plugin import SeriesThumbnailPlugin, create

CONFIG: dict[str, Any] = {"UserMetadata": {"ThumbnailInstanceID": 2001}}


def ct(study: str, series: str, k: int, value: int) -> bytes:
    pixels = np.full((8, 16), value, dtype=np.uint16)
    return make_instance(
        "P",
        study,
        series,
        Modality="CT",
        Rows=8,
        Columns=16,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
        PixelRepresentation=0,
        WindowCenter=128,
        WindowWidth=256,
        ImagePositionPatient=[0, 0, 5.0 * k],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        InstanceNumber=100 - k,
        PixelData=pixels.tobytes(),
    )


@pytest.fixture
def orthanc(fake_orthanc_factory: Any) -> FakeOrthanc:
    fake: FakeOrthanc = fake_orthanc_factory(CONFIG)
    return fake


@pytest.fixture
def plugin(orthanc: FakeOrthanc) -> Any:
    created = create(orthanc, CONFIG)
    orthanc.RegisterOnChangeCallback(created.on_change)
    orthanc.start()
    yield created
    orthanc.stop()


def store_series(orthanc: FakeOrthanc, values: list[int], study: str, series: str) -> str:
    ids = {orthanc.store(ct(study, series, k, v)).series_id for k, v in enumerate(values)}
    assert len(ids) == 1
    return ids.pop()


def pixel(body: bytes) -> int:
    image = Image.open(io.BytesIO(body))
    value = image.convert("L").getpixel((image.width // 2, image.height // 2))
    assert isinstance(value, int)
    return value


def test_missing_metadata_declaration_refuses_to_start(orthanc: FakeOrthanc) -> None:
    with pytest.raises(ConfigurationError, match=r"UserMetadata\.ThumbnailInstanceID"):
        create(orthanc, {})


def test_route_serves_the_geometric_middle(
    orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin
) -> None:
    # Values rise with position; InstanceNumber falls: only geometry picks value 60 (slice 3).
    series_id = store_series(orthanc, [0, 20, 40, 60, 80, 100, 120], generate_uid(), generate_uid())
    answer = orthanc.call_route(
        "GET", f"/series/{series_id}/thumbnail", get={"size": "32", "format": "png"}
    )
    assert answer.status == 200 and answer.content_type == "image/png"
    assert Image.open(io.BytesIO(answer.body)).size == (32, 16)
    assert abs(pixel(answer.body) - 60) <= 2
    assert answer.headers["ETag"].startswith('"')


def test_304_405_404_and_status(orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin) -> None:
    series_id = store_series(orthanc, [10, 20, 30], generate_uid(), generate_uid())
    uri = f"/series/{series_id}/thumbnail"
    tag = orthanc.call_route("GET", uri).headers["ETag"]
    not_modified = orthanc.call_route("GET", uri, headers={"If-None-Match": tag})
    assert not_modified.status == 304 and not not_modified.body
    assert orthanc.call_route("DELETE", uri).status == 405
    missing = orthanc.call_route("GET", "/series/nope/thumbnail")
    assert missing.status == 404 and missing.json()["HttpStatus"] == 404
    bad = orthanc.call_route("GET", uri, get={"size": "2"})
    assert bad.status == 400 and bad.headers.get("Content-Type") == "application/json"
    status = orthanc.call_route("GET", "/series-thumbnail/status").json()
    assert status["Cache"]["Entries"] == 1 and status["DefaultSize"] == 256


def test_stable_series_gets_metadata_and_a_new_instance_clears_it(
    orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin
) -> None:
    study, series = generate_uid(), generate_uid()
    series_id = store_series(orthanc, [10, 20, 30], study, series)
    orthanc.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    metadata = f"/series/{series_id}/metadata/ThumbnailInstanceID"
    chosen = orthanc.RestApiGet(metadata)
    middle = [
        i
        for i in json.loads(orthanc.RestApiGet(f"/series/{series_id}/instances"))
        if i["MainDicomTags"]["InstanceNumber"] == "99"
    ]
    assert chosen == middle[0]["ID"].encode()
    assert plugin.service.cache.stats()["Entries"] == 1  # pre-rendered on STABLE_SERIES

    orthanc.store(ct(study, series, 3, 200))
    orthanc.deliver_pending_changes()  # NEW_CHILD_INSTANCE for the series
    assert plugin.worker.wait_idle(5)
    with pytest.raises(OrthancException):
        orthanc.RestApiGet(metadata)
    orthanc.mark_all_stable()
    assert plugin.worker.wait_idle(5)
    assert orthanc.RestApiGet(metadata) != chosen  # middle of 4 is slice 2


def test_deleting_a_series_is_handled(orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin) -> None:
    series_id = store_series(orthanc, [10, 20, 30], generate_uid(), generate_uid())
    assert orthanc.call_route("GET", f"/series/{series_id}/thumbnail").status == 200
    orthanc.RestApiDelete(f"/series/{series_id}")
    orthanc.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    assert orthanc.call_route("GET", f"/series/{series_id}/thumbnail").status == 404
    assert plugin.service.cache.stats()["Entries"] == 0


def test_no_image_is_415(orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin) -> None:
    series_id = orthanc.store(make_instance("P", generate_uid(), generate_uid())).series_id
    answer = orthanc.call_route("GET", f"/series/{series_id}/thumbnail")
    assert answer.status == 415
    assert "no thumbnail" in answer.json()["Message"]


def test_worker_stops_on_orthanc_stopped(orthanc: FakeOrthanc) -> None:
    created = create(orthanc, CONFIG)
    orthanc.RegisterOnChangeCallback(created.on_change)
    orthanc.start()
    assert created.worker._thread is not None
    orthanc.stop()
    assert created.worker._thread is None


def test_ingesting_a_series_wakes_the_worker_once_not_per_instance(
    orthanc: FakeOrthanc, plugin: SeriesThumbnailPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[str] = []
    real = plugin.worker.series_changed

    def series_changed(series_id: str) -> None:
        submitted.append(series_id)
        real(series_id)

    monkeypatch.setattr(plugin.worker, "series_changed", series_changed)
    study, series = generate_uid(), generate_uid()
    series_id = orthanc.store(ct(study, series, 0, 10)).series_id
    orthanc.deliver_pending_changes()
    assert plugin.worker.wait_idle(5)
    for k in range(1, 6):
        orthanc.store(ct(study, series, k, 10 * k))
        orthanc.deliver_pending_changes()
        assert plugin.worker.wait_idle(5)
    assert submitted == [series_id]
    # Once a thumbnail was chosen, the next instance resets it again.
    assert orthanc.call_route("GET", f"/series/{series_id}/thumbnail").status == 200
    orthanc.store(ct(study, series, 6, 60))
    orthanc.deliver_pending_changes()
    assert submitted == [series_id, series_id]
