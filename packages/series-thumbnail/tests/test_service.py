import io
import json
import random

import pytest
from conftest import StubHost, StubInstance, ct_slice, png
from PIL import Image

from orthanc_series_thumbnail.config import SeriesThumbnailConfig
from orthanc_series_thumbnail.service import ThumbnailService

METADATA = "/series/s1/metadata/ThumbnailInstanceID"


def service(host: StubHost, **config: object) -> ThumbnailService:
    return ThumbnailService(host, SeriesThumbnailConfig(**config))  # type: ignore[arg-type]


def ct_series(host: StubHost, count: int = 31, stable: bool = True) -> None:
    # Positions run opposite to InstanceNumber: only the geometric order gives value 15.
    slices = [ct_slice(i, z=2.5 * i, number=count - i, rendered_value=i) for i in range(count)]
    random.Random(7).shuffle(slices)
    host.add_series("s1", slices, stable=stable)


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def test_geometric_middle_slice_scaled_keeping_aspect(host: StubHost) -> None:
    ct_series(host)
    response = service(host).handle("GET", "s1", {"size": "128"}, {})
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    image = decode(response.body)
    assert (image.format, image.size) == ("JPEG", (128, 64))
    assert abs(image.getpixel((64, 32)) - 15) <= 2  # type: ignore[operator]


def test_png_by_accept_or_format_and_default_size(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host, default_size=200)
    by_accept = thumbnails.handle("GET", "s1", {}, {"accept": "image/png"})
    by_query = thumbnails.handle("GET", "s1", {"format": "png"}, {"accept": "image/jpeg"})
    for response in (by_accept, by_query):
        assert response.status == 200 and response.content_type == "image/png"
        image = decode(response.body)
        assert image.size == (200, 100) and image.getpixel((10, 10)) == 15


@pytest.mark.parametrize(
    "query", [{"size": "15"}, {"size": "1025"}, {"size": "abc"}, {"size": "-20"}, {"format": "gif"}]
)
def test_invalid_parameters_are_400_json(host: StubHost, query: dict[str, str]) -> None:
    ct_series(host)
    response = service(host).handle("GET", "s1", query, {})
    assert response.status == 400 and response.content_type == "application/json"
    assert json.loads(response.body)["HttpStatus"] == 400


def test_unknown_series_404_and_other_methods_405(host: StubHost) -> None:
    thumbnails = service(host)
    assert thumbnails.handle("GET", "nope", {}, {}).status == 404
    assert thumbnails.handle("POST", "nope", {}, {}).status == 405


def test_etag_and_304(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)
    first = thumbnails.handle("GET", "s1", {}, {})
    tag = first.headers["ETag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert "private" in first.headers["Cache-Control"]
    again = thumbnails.handle("GET", "s1", {}, {"if-none-match": f'"other", {tag}'})
    assert (again.status, again.body, again.headers["ETag"]) == (304, b"", tag)
    assert thumbnails.handle("GET", "s1", {}, {"if-none-match": '"other"'}).status == 200
    others = [
        thumbnails.handle("GET", "s1", q, {}).headers["ETag"]
        for q in ({"size": "64"}, {"format": "png"})
    ]
    assert len({tag, *others}) == 3
    assert service(host, jpeg_quality=50).handle("GET", "s1", {}, {}).headers["ETag"] != tag


def test_cached_requests_render_nothing(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)
    thumbnails.handle("GET", "s1", {}, {})
    host.calls.clear()
    assert thumbnails.handle("GET", "s1", {}, {}).status == 200
    assert host.calls == ["/series/s1"]


def test_choice_is_persisted_when_stable_and_reused_after_restart(host: StubHost) -> None:
    ct_series(host)
    service(host).handle("GET", "s1", {}, {})
    middle_id = host.series_metadata[("s1", "ThumbnailInstanceID")].decode()
    assert middle_id == "inst-15"
    host.calls.clear()
    assert service(host).handle("GET", "s1", {}, {}).status == 200
    assert "/series/s1/instances" not in host.calls  # the stored choice was trusted


def test_unstable_series_is_computed_per_request_and_not_persisted(host: StubHost) -> None:
    ct_series(host, stable=False)
    thumbnails = service(host)
    assert thumbnails.handle("GET", "s1", {}, {}).status == 200
    assert host.series_metadata == {}


def test_added_instance_changes_the_choice_even_before_notification(host: StubHost) -> None:
    host.add_series("s1", [ct_slice(i, z=10.0 * i, rendered_value=50 * i) for i in range(3)])
    thumbnails = service(host, default_size=64)
    before = decode(thumbnails.handle("GET", "s1", {}, {}).body).getpixel((5, 5))
    # Two slices below the others: the middle moves from slice 1 to slice 0.
    host.series["s1"] += [ct_slice(i, z=-10.0 * i, rendered_value=200) for i in (3, 4)]
    after = decode(thumbnails.handle("GET", "s1", {}, {}).body).getpixel((5, 5))
    assert abs(before - 50) <= 2 and abs(after - 0) <= 2  # type: ignore[operator]
    assert host.series_metadata[("s1", "ThumbnailInstanceID")] == b"inst-0"


def test_series_changed_clears_metadata(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)
    thumbnails.handle("GET", "s1", {}, {})
    thumbnails.series_changed("s1")
    assert ("s1", "ThumbnailInstanceID") not in host.series_metadata
    for _ in range(5):  # one change per ingested instance: one DELETE is enough
        thumbnails.series_changed("s1")
    assert host.calls.count(f"DELETE {METADATA}") == 1
    thumbnails.prepare("s1")  # stable again: stored, and the next change clears it again
    thumbnails.series_changed("s1")
    assert host.calls.count(f"DELETE {METADATA}") == 2


def test_instance_number_fallback(host: StubHost) -> None:
    slices = [
        StubInstance(f"i{n}", {"InstanceNumber": str(n)}, rendered=png(32, 32, n)) for n in range(9)
    ]
    random.Random(1).shuffle(slices)
    host.add_series("s1", slices)
    response = service(host).handle("GET", "s1", {"format": "png", "size": "16"}, {})
    assert decode(response.body).getpixel((3, 3)) == 4


def test_acquisition_time_fallback_reads_tags(host: StubHost) -> None:
    times = ["101500", "100000", "103000", "102000", "100500"]
    slices = [
        StubInstance(f"i{k}", {}, rendered=png(32, 32, k), tags={"AcquisitionTime": t})
        for k, t in enumerate(times)
    ]
    host.add_series("s1", slices)
    response = service(host).handle("GET", "s1", {"format": "png"}, {})
    assert decode(response.body).getpixel((3, 3)) == 0  # 10:15 is the middle time


def test_multiframe_instance_middle_frame(host: StubHost) -> None:
    host.add_series("s1", [StubInstance("mf", {"NumberOfFrames": "5"}, rendered=png(8, 8))])
    service(host).handle("GET", "s1", {}, {})
    assert "/instances/mf/frames/2/rendered" in host.calls


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"SopClassUid": "1.2.840.10008.5.1.4.1.1.88.11"}, "Structured Report"),
        ({"SopClassUid": "1.2.840.10008.5.1.4.1.1.104.1"}, "Encapsulated PDF"),
        ({"SopClassUid": "1.2.840.10008.5.1.4.1.1.66.4"}, "no pixel data"),
        (
            {
                "SopClassUid": "1.2.840.10008.5.1.4.1.1.2",
                "PixelDataOffset": "1234",
                "TransferSyntax": "1.2.840.10008.1.2.4.90",
            },
            "transfer syntax 1.2.840.10008.1.2.4.90",
        ),
    ],
)
def test_no_image_is_415_with_reason(host: StubHost, metadata: dict[str, str], reason: str) -> None:
    host.add_series("s1", [StubInstance("x", {}, rendered=None, metadata=metadata)])
    thumbnails = service(host)
    response = thumbnails.handle("GET", "s1", {}, {})
    assert response.status == 415 and reason in json.loads(response.body)["Message"]
    host.calls.clear()
    assert thumbnails.handle("GET", "s1", {}, {}).status == 415
    assert host.calls == ["/series/s1"]  # the refusal is cached too


def test_undecodable_rendering_is_415(host: StubHost) -> None:
    host.add_series("s1", [StubInstance("x", {}, rendered=b"not a png")])
    assert service(host).handle("GET", "s1", {}, {}).status == 415


def test_unexpected_error_is_503_json_and_logged(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)

    def explode(uri: str) -> bytes:
        raise KeyError(uri)

    host.get = explode  # type: ignore[method-assign]
    response = thumbnails.handle("GET", "s1", {}, {})
    assert response.status == 503 and json.loads(response.body)["HttpStatus"] == 503
    assert host.errors and "KeyError" in host.errors[0]


def test_prepare_persists_and_prerenders(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)
    thumbnails.prepare("s1")
    assert host.series_metadata[("s1", "ThumbnailInstanceID")] == b"inst-15"
    assert thumbnails.cache.stats()["Entries"] == 1
    thumbnails.prepare("gone")  # deleted meanwhile: nothing to do


def test_deleting_the_chosen_instance_forgets_the_choice(host: StubHost) -> None:
    ct_series(host)
    thumbnails = service(host)
    thumbnails.handle("GET", "s1", {}, {})
    thumbnails.instance_deleted("inst-15")
    assert thumbnails.cache.stats()["Entries"] == 0
    assert ("s1", "ThumbnailInstanceID") not in host.series_metadata
