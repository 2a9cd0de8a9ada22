"""The thumbnail logic (`plugin.service`) on orthanc-fake: slice choice, rendering, caching."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import NamedTuple

import pytest
from thumbnail_testing import (
    METADATA_NAME,
    SEGMENTATION,
    Series,
    Thumbnails,
    centre,
    ct_slice,
    decode,
    encapsulated_pdf,
    grey_at_centre,
    jpeg_2000_ct,
    mark_series_stable,
    multiframe,
    rgb_image,
    store,
    stored_choice,
    structured_report,
    without_pixel_data,
)

from orthanc_series_thumbnail.plugin import create

SLICES = 31
MIDDLE = SLICES // 2


def shade(index: int) -> int:
    """The grey level of slice `index`: 8 levels apart, so a JPEG still tells slices apart."""
    return 8 * index


class CtSeries(NamedTuple):
    series_id: str
    ids: dict[int, str]  # slice index (position along the normal) -> instance ID
    files: list[bytes]


def ct_series(thumbnails: Thumbnails, stable: bool = True) -> CtSeries:
    """31 axial slices; slice i lies at z = 2.5 i and has grey level shade(i).

    InstanceNumber, SOPInstanceUID and arrival order are shuffled independently, so only the
    geometric order makes slice 15 the middle one.
    """
    series = Series()
    uid_rank = [(11 * i) % SLICES for i in range(SLICES)]  # permutations: 11, 7 coprime with 31
    number = [(7 * i) % SLICES + 1 for i in range(SLICES)]
    arrival = list(range(SLICES))
    random.Random(7).shuffle(arrival)
    assert uid_rank[MIDDLE] != MIDDLE and number[MIDDLE] != MIDDLE + 1  # orders disagree
    files = [ct_slice(series, uid_rank[i], shade(i), z=2.5 * i, number=number[i]) for i in arrival]
    stored = store(thumbnails.fake, files)
    if stable:
        mark_series_stable(thumbnails.fake, stored.series_id)
    return CtSeries(stored.series_id, dict(zip(arrival, stored.instance_ids, strict=True)), files)


def metadata_uri(series_id: str) -> str:
    return f"/series/{series_id}/metadata/{METADATA_NAME}"


def test_geometric_middle_slice_scaled_keeping_aspect(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    response = thumbnails.plugin.service.handle("GET", ct.series_id, {"size": "128"}, {})
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    image = decode(response.body)
    assert (image.format, image.size) == ("JPEG", (128, 64))
    assert abs(grey_at_centre(response.body) - shade(MIDDLE)) <= 2


def test_png_by_accept_or_format_and_default_size(
    thumbnails_factory: Callable[..., Thumbnails],
) -> None:
    thumbnails = thumbnails_factory(Size=200)
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    by_accept = service.handle("GET", ct.series_id, {}, {"accept": "image/png"})
    by_query = service.handle("GET", ct.series_id, {"format": "png"}, {"accept": "image/jpeg"})
    for response in (by_accept, by_query):
        assert response.status == 200 and response.content_type == "image/png"
        image = decode(response.body)
        assert image.size == (200, 100) and image.getpixel((10, 10)) == shade(MIDDLE)


@pytest.mark.parametrize(
    "query", [{"size": "15"}, {"size": "1025"}, {"size": "abc"}, {"size": "-20"}, {"format": "gif"}]
)
def test_invalid_parameters_are_400_json(thumbnails: Thumbnails, query: dict[str, str]) -> None:
    ct = ct_series(thumbnails)
    response = thumbnails.plugin.service.handle("GET", ct.series_id, query, {})
    assert response.status == 400 and response.content_type == "application/json"
    assert json.loads(response.body)["HttpStatus"] == 400


def test_unknown_series_404_and_other_methods_405(thumbnails: Thumbnails) -> None:
    service = thumbnails.plugin.service
    assert service.handle("GET", "nope", {}, {}).status == 404
    assert service.handle("POST", "nope", {}, {}).status == 405


def test_etag_and_304(thumbnails_factory: Callable[..., Thumbnails]) -> None:
    thumbnails = thumbnails_factory()
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    first = service.handle("GET", ct.series_id, {}, {})
    tag = first.headers["ETag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert "private" in first.headers["Cache-Control"]
    again = service.handle("GET", ct.series_id, {}, {"if-none-match": f'"other", {tag}'})
    assert (again.status, again.body, again.headers["ETag"]) == (304, b"", tag)
    assert service.handle("GET", ct.series_id, {}, {"if-none-match": '"other"'}).status == 200
    others = [
        service.handle("GET", ct.series_id, q, {}).headers["ETag"]
        for q in ({"size": "64"}, {"format": "png"})
    ]
    assert len({tag, *others}) == 3
    # Another Orthanc with the same files: same IDs, so only the JPEG quality changes the tag.
    same, lower_quality = thumbnails_factory(), thumbnails_factory(JpegQuality=50)
    for other in (same, lower_quality):
        store(other.fake, ct.files)
    assert same.plugin.service.handle("GET", ct.series_id, {}, {}).headers["ETag"] == tag
    assert lower_quality.plugin.service.handle("GET", ct.series_id, {}, {}).headers["ETag"] != tag


def test_cached_requests_render_nothing(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    service.handle("GET", ct.series_id, {}, {})
    thumbnails.rest.clear()
    assert service.handle("GET", ct.series_id, {}, {}).status == 200
    assert thumbnails.rest.calls == [f"GET /series/{ct.series_id}"]


def test_the_work_of_a_stable_series_reads_its_instance_listing_once(
    thumbnails: Thumbnails,
) -> None:
    ct = ct_series(thumbnails, stable=False)
    thumbnails.rest.clear()
    thumbnails.plugin.service.prepare(ct.series_id)
    calls = thumbnails.rest.calls
    assert f"GET /series/{ct.series_id}" not in calls
    assert calls.count(f"GET /series/{ct.series_id}/instances") == 1
    assert stored_choice(thumbnails.fake, ct.series_id) == ct.ids[MIDDLE]


def test_choice_is_persisted_when_stable_and_reused_after_restart(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    thumbnails.plugin.service.handle("GET", ct.series_id, {}, {})
    assert stored_choice(thumbnails.fake, ct.series_id) == ct.ids[MIDDLE]
    restarted = create(thumbnails.fake, thumbnails.fake.configuration)  # a new plugin process
    thumbnails.rest.clear()
    assert restarted.service.handle("GET", ct.series_id, {}, {}).status == 200
    assert f"GET /series/{ct.series_id}/instances" not in thumbnails.rest.calls  # trusted


def test_on_a_shared_index_a_stored_choice_is_never_read_back(thumbnails: Thumbnails) -> None:
    """Several nodes on one PostgreSQL index: the metadata may hold a choice another node made
    for an older instance list, so a node that knows nothing of the series computes it."""
    ct = ct_series(thumbnails)
    thumbnails.plugin.service.handle("GET", ct.series_id, {}, {})
    # What a node that received none of the series' newer instances left behind.
    thumbnails.fake.RestApiPut(metadata_uri(ct.series_id), ct.ids[0])
    config = dict(thumbnails.fake.configuration)
    config["PostgreSQL"] = {"EnableIndex": True, "Lock": False, "Database": "orthanc"}
    node = create(thumbnails.fake, config)
    assert node.config.shared_index
    thumbnails.rest.clear()
    answer = node.service.handle("GET", ct.series_id, {}, {})
    assert answer.status == 200
    assert f"GET /series/{ct.series_id}/instances" in thumbnails.rest.calls  # computed
    assert f"GET {metadata_uri(ct.series_id)}" not in thumbnails.rest.calls
    assert grey_at_centre(answer.body) == pytest.approx(shade(MIDDLE), abs=3)
    # With the database's lock on (one node), the stored choice is trusted as before.
    config["PostgreSQL"] = {"EnableIndex": True, "Database": "orthanc"}
    assert not create(thumbnails.fake, config).config.shared_index


def test_unstable_series_is_computed_per_request_and_not_persisted(
    thumbnails: Thumbnails,
) -> None:
    ct = ct_series(thumbnails, stable=False)
    assert thumbnails.plugin.service.handle("GET", ct.series_id, {}, {}).status == 200
    assert stored_choice(thumbnails.fake, ct.series_id) is None
    assert not [call for call in thumbnails.rest.calls if call.startswith("PUT ")]


def test_added_instance_changes_the_choice_even_before_notification(
    thumbnails_factory: Callable[..., Thumbnails],
) -> None:
    thumbnails = thumbnails_factory(Size=64)
    series = Series()
    first = store(thumbnails.fake, [ct_slice(series, i, 40 + 50 * i, z=10.0 * i) for i in range(3)])
    mark_series_stable(thumbnails.fake, first.series_id)
    service = thumbnails.plugin.service

    def shown() -> int:
        return grey_at_centre(service.handle("GET", first.series_id, {}, {}).body)

    before = shown()
    assert stored_choice(thumbnails.fake, first.series_id) == first.instance_ids[1]
    # Two slices below the others: the middle moves from slice 1 to slice 0. The changes reach
    # the plugin, but its worker is not running: nothing has processed them.
    store(thumbnails.fake, [ct_slice(series, i, 220, z=-10.0 * i) for i in (3, 4)])
    while_unstable = shown()
    mark_series_stable(thumbnails.fake, first.series_id)
    after = shown()
    assert abs(before - 90) <= 2
    assert abs(while_unstable - 40) <= 2 and abs(after - 40) <= 2
    assert stored_choice(thumbnails.fake, first.series_id) == first.instance_ids[0]


def test_series_changed_clears_metadata(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    service.handle("GET", ct.series_id, {}, {})
    service.series_changed(ct.series_id)
    assert stored_choice(thumbnails.fake, ct.series_id) is None
    for _ in range(5):  # one change per ingested instance: one DELETE is enough
        service.series_changed(ct.series_id)
    delete = f"DELETE {metadata_uri(ct.series_id)}"
    assert thumbnails.rest.count(delete) == 1
    service.prepare(ct.series_id)  # stable again: stored, and the next change clears it again
    assert stored_choice(thumbnails.fake, ct.series_id) == ct.ids[MIDDLE]
    service.series_changed(ct.series_id)
    assert thumbnails.rest.count(delete) == 2


def test_instance_number_fallback(thumbnails: Thumbnails) -> None:
    # No geometry. InstanceNumber runs opposite to the SOPInstanceUID: of 8 slices, the middle
    # by number is number 5, by UID number 4.
    series = Series()
    files = [ct_slice(series, k, 20 * (8 - k), number=8 - k, rows=32, columns=32) for k in range(8)]
    random.Random(1).shuffle(files)
    series_id = store(thumbnails.fake, files).series_id
    response = thumbnails.plugin.service.handle(
        "GET", series_id, {"format": "png", "size": "16"}, {}
    )
    assert decode(response.body).getpixel((3, 3)) == 100


def test_acquisition_time_fallback_reads_tags(thumbnails: Thumbnails) -> None:
    # Neither geometry nor InstanceNumber: 10:15 is the middle time (instance 0), whereas the
    # middle by SOPInstanceUID is instance 2.
    times = ["101500", "100000", "103000", "102000", "100500"]
    series = Series()
    files = [
        ct_slice(series, k, 40 + 40 * k, rows=32, columns=32, AcquisitionTime=t)
        for k, t in enumerate(times)
    ]
    series_id = store(thumbnails.fake, files).series_id
    response = thumbnails.plugin.service.handle("GET", series_id, {"format": "png"}, {})
    assert decode(response.body).getpixel((3, 3)) == 40
    assert any(call.endswith("/simplified-tags") for call in thumbnails.rest.calls)


def test_multiframe_instance_middle_frame(thumbnails: Thumbnails) -> None:
    stored = store(thumbnails.fake, [multiframe(Series(), 0, [30, 60, 90, 120, 150])])
    thumbnails.plugin.service.handle("GET", stored.series_id, {}, {})
    assert f"GET /instances/{stored.instance_ids[0]}/frames/2/rendered" in thumbnails.rest.calls


def test_multiframe_thumbnail_shows_the_middle_frame(thumbnails: Thumbnails) -> None:
    stored = store(thumbnails.fake, [multiframe(Series(), 0, [30, 60, 90, 120, 150])])
    response = thumbnails.plugin.service.handle("GET", stored.series_id, {"format": "png"}, {})
    assert response.status == 200, response.body
    assert grey_at_centre(response.body) == 90


def test_rgb_keeps_its_colour(thumbnails: Thumbnails) -> None:
    series_id = store(thumbnails.fake, [rgb_image(Series(), 0, (200, 40, 90))]).series_id
    service = thumbnails.plugin.service
    png = service.handle("GET", series_id, {"format": "png"}, {})
    assert png.status == 200
    assert decode(png.body).size == (256, 128) and centre(png.body) == (200, 40, 90)
    jpeg = service.handle("GET", series_id, {}, {})
    assert jpeg.status == 200 and decode(jpeg.body).mode == "RGB"
    colour = centre(jpeg.body)
    assert all(abs(got - want) <= 8 for got, want in zip(colour, (200, 40, 90), strict=True))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (structured_report, "Structured Report"),
        (encapsulated_pdf, "Encapsulated PDF"),
        (lambda series: without_pixel_data(series, SEGMENTATION), "no pixel data"),
        (jpeg_2000_ct, "transfer syntax 1.2.840.10008.1.2.4.90"),
    ],
    ids=["sr", "pdf", "no-pixel-data", "jpeg-2000"],
)
def test_no_image_is_415_with_reason(
    thumbnails: Thumbnails, build: Callable[[Series], bytes], reason: str
) -> None:
    series_id = store(thumbnails.fake, [build(Series())]).series_id
    service = thumbnails.plugin.service
    response = service.handle("GET", series_id, {}, {})
    assert response.status == 415 and reason in json.loads(response.body)["Message"]
    thumbnails.rest.clear()
    assert service.handle("GET", series_id, {}, {}).status == 415
    assert thumbnails.rest.calls == [f"GET /series/{series_id}"]  # the refusal is cached too


def test_undecodable_rendering_is_415(thumbnails: Thumbnails) -> None:
    series_id = store(thumbnails.fake, [ct_slice(Series(), 0, 100)]).series_id
    thumbnails.rest.reply(lambda uri: uri.endswith("/rendered"), lambda uri: b"not a png")
    assert thumbnails.plugin.service.handle("GET", series_id, {}, {}).status == 415


def test_unexpected_error_is_503_json_and_logged(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    # Orthanc answers, but not what the plugin expects: an instance without "ID".
    instances = f"/series/{ct.series_id}/instances"
    thumbnails.rest.reply(lambda uri: uri == instances, lambda uri: b'[{"MainDicomTags": {}}]')
    response = thumbnails.plugin.service.handle("GET", ct.series_id, {}, {})
    assert response.status == 503 and json.loads(response.body)["HttpStatus"] == 503
    errors = thumbnails.fake.log_messages("error")
    assert errors and "KeyError" in errors[0]


def test_prepare_persists_and_prerenders(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    service.prepare(ct.series_id)
    assert stored_choice(thumbnails.fake, ct.series_id) == ct.ids[MIDDLE]
    assert service.cache.stats()["Entries"] == 1
    service.prepare("gone")  # deleted meanwhile: nothing to do


def test_deleting_the_chosen_instance_forgets_the_choice(thumbnails: Thumbnails) -> None:
    ct = ct_series(thumbnails)
    service = thumbnails.plugin.service
    service.handle("GET", ct.series_id, {}, {})
    thumbnails.fake.RestApiDelete(f"/instances/{ct.ids[MIDDLE]}")
    service.instance_deleted(ct.ids[MIDDLE])
    assert service.cache.stats()["Entries"] == 0
    assert stored_choice(thumbnails.fake, ct.series_id) is None
    # The next request chooses among the 30 slices left: slice 16 is now index 15.
    response = service.handle("GET", ct.series_id, {}, {})
    assert abs(grey_at_centre(response.body) - shade(MIDDLE + 1)) <= 2
