"""Helpers shared by the unit tests of orthanc-series-thumbnail (fixtures live in conftest.py).

DICOM files are built with pydicom and numpy and stored in orthanc-fake, which renders them for
`/instances/{id}/rendered` the way Orthanc does. Every image is uniform and its grey level (or
colour) is chosen per slice or frame, so a thumbnail tells which slice or frame it shows.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from orthanc_fake import FakeOrthanc, make_instance
from orthanc_series_thumbnail.plugin import SeriesThumbnailPlugin

METADATA_NAME = "ThumbnailInstanceID"
METADATA_INDEX = 2001

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MULTIFRAME_GREY_WORD_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7.3"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
JPEG_2000 = "1.2.840.10008.1.2.4.90"
AXIAL = [1, 0, 0, 0, 1, 0]


def configuration(**section: Any) -> dict[str, Any]:
    """An Orthanc configuration declaring the metadata; `section` fills `SeriesThumbnail`."""
    config: dict[str, Any] = {"UserMetadata": {METADATA_NAME: METADATA_INDEX}}
    if section:
        config["SeriesThumbnail"] = section
    return config


# ---- DICOM files


@dataclass(frozen=True)
class Series:
    """The DICOM identifiers of one series; instance k gets the SOPInstanceUID `<series>.<k+1>`."""

    patient_id: str = "THUMBNAIL"
    study_uid: str = field(default_factory=lambda: generate_uid(prefix=None))
    series_uid: str = field(default_factory=lambda: generate_uid(prefix=None))

    def sop_uid(self, index: int) -> str:
        return f"{self.series_uid}.{index + 1}"

    def instance(self, index: int, sop_class: str, **tags: Any) -> bytes:
        """A DICOM file of this series with the given SOP class and tags (keyword=value)."""
        return make_instance(
            self.patient_id,
            self.study_uid,
            self.series_uid,
            self.sop_uid(index),
            SOPClassUID=sop_class,
            **tags,
        )


def grey_pixels(values: Sequence[int], rows: int = 32, columns: int = 64) -> dict[str, Any]:
    """Uniform 16-bit MONOCHROME2 frames, one per value, windowed so that value v renders as v."""
    frames = np.stack([np.full((rows, columns), value, dtype=np.uint16) for value in values])
    tags: dict[str, Any] = {
        "Rows": rows,
        "Columns": columns,
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "BitsAllocated": 16,
        "BitsStored": 12,
        "HighBit": 11,
        "PixelRepresentation": 0,
        "WindowCenter": 127.5,
        "WindowWidth": 255,
        "PixelData": frames.tobytes(),
    }
    if len(values) > 1:
        tags["NumberOfFrames"] = len(values)
    return tags


def ct_slice(
    series: Series,
    index: int,
    value: int,
    *,
    z: float | None = None,
    number: int | None = None,
    rows: int = 32,
    columns: int = 64,
    **tags: Any,
) -> bytes:
    """A CT slice of grey level `value`; with `z`, an axial ImagePositionPatient/Orientation."""
    if z is not None:
        tags |= {"ImagePositionPatient": [-100, -100, z], "ImageOrientationPatient": AXIAL}
    if number is not None:
        tags["InstanceNumber"] = number
    pixels = grey_pixels([value], rows, columns)
    return series.instance(index, CT_IMAGE, Modality="CT", **pixels, **tags)


def multiframe(series: Series, index: int, values: Sequence[int], size: int = 8) -> bytes:
    """One multi-frame instance; frame f has grey level `values[f]`."""
    pixels = grey_pixels(values, size, size)
    return series.instance(index, MULTIFRAME_GREY_WORD_SECONDARY_CAPTURE, Modality="OT", **pixels)


def rgb_image(
    series: Series, index: int, colour: tuple[int, int, int], rows: int = 24, columns: int = 48
) -> bytes:
    """A uniform RGB secondary capture of this colour."""
    pixels = np.zeros((rows, columns, 3), dtype=np.uint8)
    pixels[:, :] = colour
    return series.instance(
        index,
        SECONDARY_CAPTURE,
        Modality="OT",
        Rows=rows,
        Columns=columns,
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelRepresentation=0,
        PixelData=pixels.tobytes(),
    )


def structured_report(series: Series, index: int = 0) -> bytes:
    """A Basic Text SR: no pixel data."""
    return series.instance(index, BASIC_TEXT_SR, Modality="SR", ValueType="CONTAINER")


def encapsulated_pdf(series: Series, index: int = 0) -> bytes:
    """An Encapsulated PDF document: no pixel data."""
    return series.instance(
        index,
        ENCAPSULATED_PDF,
        Modality="DOC",
        MIMETypeOfEncapsulatedDocument="application/pdf",
        EncapsulatedDocument=b"%PDF-1.4\n%%EOF\n",
    )


def without_pixel_data(series: Series, sop_class: str, index: int = 0) -> bytes:
    """An instance of an image-like SOP class that carries no pixel data."""
    return series.instance(index, sop_class, Modality="SEG")


def jpeg_2000_ct(series: Series, index: int = 0) -> bytes:
    """A CT slice whose pixel data is JPEG 2000 (a codestream Orthanc 1.10 cannot decode)."""
    codestream = b"\xff\x4f\xff\x51" + bytes(28)  # SOC, SIZ marker, truncated
    return series.instance(
        index,
        CT_IMAGE,
        transfer_syntax=JPEG_2000,
        Modality="CT",
        Rows=8,
        Columns=8,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=16,
        BitsStored=12,
        HighBit=11,
        PixelRepresentation=0,
        PixelData=encapsulate([codestream]),
    )


# ---- Orthanc side


class StoredSeries(NamedTuple):
    series_id: str
    instance_ids: list[str]  # in the order of the files given


def store(fake: FakeOrthanc, files: Iterable[bytes]) -> StoredSeries:
    """Store files of one series; their Orthanc IDs in the order given."""
    results = [fake.store(data) for data in files]
    series_ids = {result.series_id for result in results}
    assert len(series_ids) == 1, f"files of {len(series_ids)} series"
    return StoredSeries(series_ids.pop(), [result.instance_id for result in results])


def mark_series_stable(fake: FakeOrthanc, series_id: str) -> None:
    """STABLE_SERIES, with every pending change delivered first (as Orthanc orders them)."""
    fake.mark_stable(fake.ResourceType.SERIES, series_id)


def stored_choice(fake: FakeOrthanc, series_id: str) -> str | None:
    """The series metadata holding the chosen instance, or None when there is none."""
    try:
        return fake.RestApiGet(f"/series/{series_id}/metadata/{METADATA_NAME}").decode()
    except fake.OrthancException:
        return None


class RestSpy:
    """Records the internal REST calls made through a FakeOrthanc; can replace some answers.

    Calls are recorded as "GET /uri", "PUT /uri", "DELETE /uri" (POST likewise), whichever of
    `RestApi*` or `RestApi*AfterPlugins` was called.
    """

    def __init__(self, fake: FakeOrthanc) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._replies: list[tuple[Callable[[str], bool], Callable[[str], bytes]]] = []
        for method in ("Get", "Post", "Put", "Delete"):
            for suffix in ("", "AfterPlugins"):
                name = f"RestApi{method}{suffix}"
                setattr(fake, name, self._wrap(method.upper(), getattr(fake, name)))

    def reply(self, when: Callable[[str], bool], answer: Callable[[str], bytes]) -> None:
        """From now on, answer a GET whose URI matches `when` with `answer(uri)`."""
        self._replies.append((when, answer))

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def count(self, call: str) -> int:
        with self._lock:
            return self.calls.count(call)

    def _wrap(self, method: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(uri: str, *body: Any) -> Any:
            with self._lock:
                self.calls.append(f"{method} {uri}")
            if method == "GET":
                for when, answer in self._replies:
                    if when(uri):
                        return answer(uri)
            return real(uri, *body)

        return call


class Thumbnails(NamedTuple):
    """A FakeOrthanc with the plugin created in it as Orthanc would, and a spy on its REST API."""

    fake: FakeOrthanc
    plugin: SeriesThumbnailPlugin
    rest: RestSpy


# ---- images


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def centre(body: bytes) -> Any:
    """The pixel at the centre of an encoded image: an int (grey) or an RGB tuple."""
    image = decode(body)
    return image.getpixel((image.width // 2, image.height // 2))


def grey_at_centre(body: bytes) -> int:
    image = decode(body).convert("L")
    value = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(value, int)
    return value
