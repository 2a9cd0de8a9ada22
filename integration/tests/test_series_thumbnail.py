"""orthanc-series-thumbnail on a real Orthanc: slice choice, sizes, formats, caching, errors."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc
from integration.tests.answers import error_content_type
from orthanc_fake.dicom import make_instance

pytestmark = pytest.mark.e2e

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
WINDOW_CENTER, WINDOW_WIDTH = 40.0, 400.0
CONFIG = {
    "UserMetadata": {"ThumbnailInstanceID": 2001},
    "SeriesThumbnail": {"Size": 128, "JpegQuality": 85},
    "StableAge": 1,
}
METADATA = "ThumbnailInstanceID"


@pytest.fixture
def orthanc(orthanc_factory: OrthancFactory) -> Orthanc:
    return orthanc_factory(plugins=["series-thumbnail"], config=CONFIG, entry="standalone")


def hounsfield(slice_index: int) -> int:
    """The value every pixel of a slice holds: the slice index can be read back from the image."""
    return -150 + 12 * slice_index


def displayed(slice_index: int) -> float:
    """What windowing (center 40, width 400) makes of `hounsfield(slice_index)`, 0..255."""
    low = WINDOW_CENTER - WINDOW_WIDTH / 2
    return (hounsfield(slice_index) - low) * 255.0 / WINDOW_WIDTH


def ct_slices(
    count: int,
    *,
    positions: bool = True,
    rows: int = 48,
    columns: int = 64,
    study_uid: str | None = None,
    series_uid: str | None = None,
    first_index: int = 0,
) -> list[bytes]:
    """A CT series; positions run opposite to InstanceNumber so that only geometry gives slice k."""
    study_uid, series_uid = study_uid or generate_uid(), series_uid or generate_uid()
    files = []
    for k in range(first_index, first_index + count):
        tags: dict[str, Any] = {"InstanceNumber": 1000 - k}
        if positions:
            tags["ImagePositionPatient"] = [-120.0, -80.0, -300.0 + 2.5 * k]
            tags["ImageOrientationPatient"] = [1, 0, 0, 0, 1, 0]
        else:
            tags["InstanceNumber"] = k + 1
        pixels = np.full((rows, columns), hounsfield(k) + 1024, dtype=np.int16)
        files.append(
            make_instance(
                "THUMBS",
                study_uid,
                series_uid,
                SOPClassUID=CT_IMAGE_STORAGE,
                Modality="CT",
                Rows=rows,
                Columns=columns,
                SamplesPerPixel=1,
                PhotometricInterpretation="MONOCHROME2",
                BitsAllocated=16,
                BitsStored=16,
                HighBit=15,
                PixelRepresentation=1,
                RescaleIntercept=-1024,
                RescaleSlope=1,
                WindowCenter=WINDOW_CENTER,
                WindowWidth=WINDOW_WIDTH,
                PixelData=pixels.tobytes(),
                **tags,
            )
        )
    return files


def upload(orthanc: Orthanc, files: list[bytes], shuffle: bool = True) -> str:
    files = list(files)
    if shuffle:
        random.Random(11).shuffle(files)
    series = {str(orthanc.upload_file(data)["ParentSeries"]) for data in files}
    assert len(series) == 1
    return series.pop()


def thumbnail(orthanc: Orthanc, series_id: str, **kwargs: Any) -> requests.Response:
    return orthanc.client.get(f"/series/{series_id}/thumbnail", **kwargs)


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def slice_shown(body: bytes) -> int:
    """Which slice index the (uniform) image shows: the nearest windowed value."""
    image = decode(body).convert("L")
    value = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(value, int)
    return min(range(200), key=lambda k: abs(displayed(k) - value))


def wait_for_metadata(orthanc: Orthanc, series_id: str, expected: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        answer = orthanc.client.get(f"/series/{series_id}/metadata/{METADATA}")
        seen = answer.text if answer.status_code == 200 else None
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"metadata {METADATA} of {series_id} is {seen!r}, expected {expected!r}")


def instance_of_slice(orthanc: Orthanc, series_id: str, slice_index: int) -> str:
    for instance in orthanc.client.get_json(f"/series/{series_id}/instances"):
        if instance["MainDicomTags"].get("InstanceNumber") == str(1000 - slice_index):
            return str(instance["ID"])
    raise AssertionError(f"no slice {slice_index} in {series_id}")


def test_geometric_middle_of_31_shuffled_slices(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(31))
    answer = thumbnail(orthanc, series_id, params={"format": "png"})  # before stable: computed
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "image/png"
    assert slice_shown(answer.content) == 15
    orthanc.wait_stable("series", series_id)
    wait_for_metadata(orthanc, series_id, instance_of_slice(orthanc, series_id, 15))
    assert slice_shown(thumbnail(orthanc, series_id).content) == 15


def test_instance_number_fallback_without_positions(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(9, positions=False))
    answer = thumbnail(orthanc, series_id, params={"format": "png"})
    assert answer.status_code == 200
    assert slice_shown(answer.content) == 4


def test_sizes_formats_aspect_ratio_and_bad_parameters(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(3, rows=48, columns=64))
    default = thumbnail(orthanc, series_id)
    assert default.headers["Content-Type"] == "image/jpeg"
    assert decode(default.content).size == (128, 96)  # SeriesThumbnail.Size, aspect kept
    for size in (16, 100, 1024):
        answer = thumbnail(orthanc, series_id, params={"size": str(size)})
        assert answer.status_code == 200
        image = decode(answer.content)
        assert (image.format, max(image.size), image.size[1] * 4 == image.size[0] * 3) == (
            "JPEG",
            size,
            True,
        )
    by_accept = thumbnail(orthanc, series_id, headers={"Accept": "image/png"})
    assert (by_accept.headers["Content-Type"], decode(by_accept.content).format) == (
        "image/png",
        "PNG",
    )
    for params in ({"size": "15"}, {"size": "1025"}, {"size": "big"}, {"format": "bmp"}):
        answer = thumbnail(orthanc, series_id, params=params)
        assert answer.status_code == 400, params
        assert answer.headers["Content-Type"] == error_content_type(orthanc)
        assert answer.json()["HttpStatus"] == 400


def test_unknown_series_other_methods_and_orthanc_routes_untouched(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(2))
    missing = thumbnail(orthanc, "0000-no-such-series")
    assert missing.status_code == 404 and missing.json()["HttpStatus"] == 404
    for method in ("POST", "PUT", "DELETE"):
        assert orthanc.client.request(method, f"/series/{series_id}/thumbnail").status_code == 405
    # Orthanc's own series routes still answer.
    assert orthanc.client.get(f"/series/{series_id}/instances").status_code == 200
    assert orthanc.client.get(f"/series/{series_id}/thumbnail/x").status_code == 404


def test_etag_304_and_cache_control(orthanc: Orthanc) -> None:
    series_id = upload(orthanc, ct_slices(5))
    first = thumbnail(orthanc, series_id)
    tag = first.headers["ETag"]
    assert tag.startswith('"') and "private" in first.headers["Cache-Control"]
    again = thumbnail(orthanc, series_id, headers={"If-None-Match": tag})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", tag)
    other = thumbnail(orthanc, series_id, params={"size": "64"})
    assert other.headers["ETag"] != tag
    assert thumbnail(orthanc, series_id, headers={"If-None-Match": '"x"'}).status_code == 200


def test_choice_changes_after_an_instance_is_added_and_the_series_is_stable_again(
    orthanc: Orthanc,
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    series_id = upload(orthanc, ct_slices(5, study_uid=study_uid, series_uid=series_uid))
    orthanc.wait_stable("series", series_id)
    wait_for_metadata(orthanc, series_id, instance_of_slice(orthanc, series_id, 2))
    before = thumbnail(orthanc, series_id, params={"format": "png"})
    assert slice_shown(before.content) == 2
    # Two more slices above: the middle of 7 is slice 3.
    more = ct_slices(2, study_uid=study_uid, series_uid=series_uid, first_index=5)
    assert upload(orthanc, more) == series_id
    orthanc.wait_stable("series", series_id)
    wait_for_metadata(orthanc, series_id, instance_of_slice(orthanc, series_id, 3))
    after = thumbnail(orthanc, series_id, params={"format": "png"})
    assert slice_shown(after.content) == 3
    assert after.headers["ETag"] != before.headers["ETag"]


def with_pixels_of(dicom: bytes, slice_index: int) -> bytes:
    """The same instance (same UIDs) showing another slice's pixel value."""
    dataset = pydicom.dcmread(io.BytesIO(dicom))
    pixels = np.full((dataset.Rows, dataset.Columns), hounsfield(slice_index) + 1024, np.int16)
    dataset.PixelData = pixels.tobytes()
    out = io.BytesIO()
    dataset.save_as(out)
    return out.getvalue()


def test_an_instance_overwritten_in_place_gets_a_new_etag_and_its_new_pixels(
    orthanc_factory: OrthancFactory,
) -> None:
    orthanc = orthanc_factory(
        plugins=["series-thumbnail"], config={**CONFIG, "OverwriteInstances": True}
    )
    files = ct_slices(3)
    series_id = upload(orthanc, files, shuffle=False)
    before = thumbnail(orthanc, series_id, params={"format": "png"})
    assert slice_shown(before.content) == 1
    orthanc.upload_file(with_pixels_of(files[1], 9))  # same instance ID, other pixels
    deadline = time.monotonic() + 10
    while True:
        after = thumbnail(
            orthanc,
            series_id,
            params={"format": "png"},
            headers={"If-None-Match": before.headers["ETag"]},
        )
        if after.status_code == 200 and slice_shown(after.content) == 9:
            break
        assert time.monotonic() < deadline, (after.status_code, after.headers)
        time.sleep(0.1)
    assert after.headers["ETag"] != before.headers["ETag"]


def test_thirty_concurrent_requests_for_thirty_series(orthanc_factory: OrthancFactory) -> None:
    # The composed entry, as an operator running several plugins would use it.
    orthanc = orthanc_factory(plugins=["series-thumbnail"], config=CONFIG, entry="composed")
    series_ids = [upload(orthanc, ct_slices(3, rows=256, columns=256)) for _ in range(30)]
    with ThreadPoolExecutor(30) as pool:
        answers = list(
            pool.map(lambda s: thumbnail(orthanc, s, params={"format": "png"}), series_ids)
        )
    assert [a.status_code for a in answers] == [200] * 30
    assert [slice_shown(a.content) for a in answers] == [1] * 30


def sample_files(samples_dir: Path) -> Iterator[Path]:
    # .dic (a dictionary) and .md are not DICOM; every .dcm file is, some without file meta.
    yield from sorted(p for p in samples_dir.rglob("*.dcm") if p.is_file())


def test_every_sample_gets_an_image_or_a_clean_415(orthanc: Orthanc, samples_dir: Path) -> None:
    outcomes: dict[str, int] = {}
    for path in sample_files(samples_dir):
        name = str(path.relative_to(samples_dir))
        # Uploaded and removed one at a time: each file is its own series, even when two samples
        # share a SeriesInstanceUID.
        series_id = orthanc.upload_file(path)["ParentSeries"]
        for size, image_format in ((64, "jpeg"), (300, "png")):
            answer = thumbnail(
                orthanc, series_id, params={"size": str(size), "format": image_format}
            )
            assert answer.status_code in (200, 415), f"{name}: {answer.status_code} {answer.text}"
            if answer.status_code == 200:
                image = decode(answer.content)
                assert image.format == image_format.upper(), name
                assert max(image.size) == size, f"{name}: {image.size}"
            else:
                assert answer.headers["Content-Type"] == error_content_type(orthanc), name
                assert "no thumbnail" in json.loads(answer.content)["Message"], name
            outcomes[name] = answer.status_code
        assert orthanc.client.delete(f"/series/{series_id}").status_code == 200
    refused = {name for name, status in outcomes.items() if status == 415}
    assert {"MarekLatin2.dcm", "sample-pdf.dcm"} <= refused  # a structured report, a PDF
    # Besides those, only JPEG 2000 may be refused (Orthanc 1.10 decodes it with a plugin only).
    assert refused <= {
        "MarekLatin2.dcm",
        "sample-pdf.dcm",
        "transfer-syntaxes/1.2.840.10008.1.2.4.90.dcm",
        "transfer-syntaxes/1.2.840.10008.1.2.4.91.dcm",
    }, refused
    assert len(outcomes) >= 30
