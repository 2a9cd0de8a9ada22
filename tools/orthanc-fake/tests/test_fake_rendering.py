"""/instances/{id}/frames, frame rendering and the refusals of Orthanc 1.10.1's core decoder.

The errors are the ones a Python plugin gets from `RestApiGet` on a real Orthanc 1.10.1 without
a decoder plugin (measured): every rendering failure is `(17, "Unknown resource")`, since the
route swallows the decoder's error and answers 404 or 415, which RestApiGet turns into 17.
"""

import io
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from orthanc_fake import FakeOrthanc, OrthancException, make_dataset, make_instance
from orthanc_fake.dicom import to_bytes
from orthanc_fake.enums import ErrorCode

np = pytest.importorskip("numpy", reason="rendering needs numpy and Pillow")
Image = pytest.importorskip("PIL.Image", reason="rendering needs numpy and Pillow")

UNKNOWN_RESOURCE = (ErrorCode.UNKNOWN_RESOURCE, "Unknown resource")
MPEG4 = "1.2.840.10008.1.2.4.102"
LEVELS = [30, 60, 90, 120, 150]


def grey_frames(values: list[int], **tags: Any) -> bytes:
    """Uniform 16-bit frames, windowed so that value v renders as v; one frame per value."""
    frames = np.stack([np.full((4, 6), value, dtype=np.uint16) for value in values])
    return make_instance(
        Rows=4,
        Columns=6,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=16,
        BitsStored=12,
        HighBit=11,
        PixelRepresentation=0,
        WindowCenter=127.5,
        WindowWidth=255,
        NumberOfFrames=len(values),
        PixelData=frames.tobytes(),
        **tags,
    )


def levels(png: bytes) -> set[int]:
    image = Image.open(io.BytesIO(png))
    return {image.getpixel((x, y)) for x in range(image.width) for y in range(image.height)}


def error_of(orthanc: FakeOrthanc, uri: str) -> tuple[Any, ...]:
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiGet(uri)
    return tuple(raised.value.args)


def test_frames_lists_the_frame_indices(orthanc: FakeOrthanc) -> None:
    def frames(data: bytes) -> Any:
        instance_id = orthanc.store(data).instance_id
        return orthanc.RestApiGet(f"/instances/{instance_id}/frames")

    assert frames(grey_frames(LEVELS)) == b"[\n   0,\n   1,\n   2,\n   3,\n   4\n]"
    assert frames(make_instance(pixels=(2, 2))) == b"[\n   0\n]"
    # As measured: without pixel data too, and NumberOfFrames 0 lists none.
    assert frames(make_instance()) == b"[\n   0\n]"
    assert frames(make_instance(pixels=(2, 2), NumberOfFrames=0)) == b"[]"
    assert error_of(orthanc, "/instances/nope/frames") == UNKNOWN_RESOURCE


def test_each_frame_renders_with_the_rules_of_rendered(orthanc: FakeOrthanc) -> None:
    instance_id = orthanc.store(grey_frames(LEVELS)).instance_id
    for frame, value in enumerate(LEVELS):
        rendered = orthanc.RestApiGet(f"/instances/{instance_id}/frames/{frame}/rendered")
        assert levels(rendered) == {value}
        # preview stretches each frame's own range: a uniform frame is black (as measured).
        assert levels(orthanc.RestApiGet(f"/instances/{instance_id}/frames/{frame}/preview")) == {0}
    first = orthanc.RestApiGet(f"/instances/{instance_id}/frames/0/rendered")
    assert orthanc.RestApiGet(f"/instances/{instance_id}/rendered") == first
    assert levels(orthanc.RestApiGet(f"/instances/{instance_id}/frames/02/rendered")) == {90}
    resized = orthanc.RestApiGet(f"/instances/{instance_id}/frames/3/rendered?width=3")
    assert Image.open(io.BytesIO(resized)).size == (3, 2)


@pytest.mark.parametrize("frame", ["5", "99", "-1", "+2", "abc"])
@pytest.mark.parametrize("kind", ["rendered", "preview"])
def test_a_frame_out_of_range_is_unknown_resource(
    orthanc: FakeOrthanc, frame: str, kind: str
) -> None:
    instance_id = orthanc.store(grey_frames(LEVELS)).instance_id
    assert error_of(orthanc, f"/instances/{instance_id}/frames/{frame}/{kind}") == UNKNOWN_RESOURCE


def test_a_single_frame_instance_has_only_frame_zero(orthanc: FakeOrthanc) -> None:
    instance_id = orthanc.store(make_instance(pixels=(4, 4))).instance_id
    assert orthanc.RestApiGet(f"/instances/{instance_id}/frames/0/rendered").startswith(b"\x89PNG")
    assert error_of(orthanc, f"/instances/{instance_id}/frames/1/rendered") == UNKNOWN_RESOURCE


def encapsulated(transfer_syntax: str, fragment: bytes) -> bytes:
    dataset = make_dataset(pixels=(8, 8), transfer_syntax=transfer_syntax)
    dataset.PixelData = encapsulate([fragment])
    dataset["PixelData"].VR = "OB"
    return to_bytes(dataset)


def pillow_encoded(image_format: str, **options: Any) -> bytes:
    grey = np.array([[(16 * r + 8 * c) % 256 for c in range(8)] for r in range(8)], np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, image_format, **options)
    return buffer.getvalue()


def icon() -> pydicom.Dataset:
    """An IconImageSequence item: image pixel elements only."""
    pixels = make_dataset(pixels=(2, 2))
    item = pydicom.Dataset()
    for element in pixels:
        if element.tag.group in (0x0028, 0x7FE0):
            item.add(element)
    return item


def truncated_pixels() -> bytes:
    dataset = make_dataset(pixels=(8, 8))
    dataset.PixelData = dataset.PixelData[:20]
    return to_bytes(dataset)


UNDECODABLE: dict[str, Callable[[], bytes]] = {
    "jpeg-2000-truncated": lambda: encapsulated(JPEG2000Lossless, b"\xff\x4f\xff\x51" + bytes(28)),
    "mpeg-4": lambda: encapsulated(MPEG4, bytes(32)),
    "jpeg-garbage": lambda: encapsulated(JPEGBaseline8Bit, b"\xff\xd8\xff\xe0garbage" + bytes(20)),
    "truncated-pixel-data": truncated_pixels,
    "frames-missing-from-pixel-data": lambda: make_instance(pixels=(8, 8), NumberOfFrames=3),
    "no-pixel-data": lambda: make_instance(),
    "pixel-data-only-in-an-icon": lambda: make_instance(IconImageSequence=[icon()]),
}


@pytest.mark.parametrize("build", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize("uri", ["rendered", "preview", "frames/0/rendered", "frames/0/preview"])
def test_what_orthanc_cannot_decode_is_unknown_resource(
    orthanc: FakeOrthanc, build: Callable[[], bytes], uri: str
) -> None:
    instance_id = orthanc.store(build()).instance_id
    assert error_of(orthanc, f"/instances/{instance_id}/{uri}") == UNKNOWN_RESOURCE


@pytest.mark.parametrize("transfer_syntax", [JPEG2000Lossless, JPEG2000])
def test_jpeg_2000_is_refused_even_when_pydicom_could_decode_it(
    orthanc: FakeOrthanc, transfer_syntax: str
) -> None:
    from PIL import features

    if not features.check("jpg_2000"):
        pytest.skip("Pillow without OpenJPEG cannot encode the sample")
    data = encapsulated(transfer_syntax, pillow_encoded("JPEG2000", irreversible=False))
    assert pydicom.dcmread(io.BytesIO(data)).pixel_array.shape == (8, 8)  # valid JPEG 2000
    instance_id = orthanc.store(data).instance_id
    # Orthanc 1.10.1's core has no JPEG 2000 decoder (the GDCM plugin adds one).
    assert error_of(orthanc, f"/instances/{instance_id}/rendered") == UNKNOWN_RESOURCE


def rle() -> bytes:
    dataset = make_dataset(pixels=(8, 8))
    dataset.compress(RLELossless)
    return to_bytes(dataset)


DECODABLE: dict[str, Callable[[], bytes]] = {
    "implicit-vr": lambda: make_instance(pixels=(8, 8), transfer_syntax=ImplicitVRLittleEndian),
    "big-endian": lambda: make_instance(pixels=(8, 8), transfer_syntax=ExplicitVRBigEndian),
    "deflated": lambda: make_instance(
        pixels=(8, 8), transfer_syntax=DeflatedExplicitVRLittleEndian
    ),
    "rle": rle,
    "jpeg-baseline": lambda: encapsulated(JPEGBaseline8Bit, pillow_encoded("JPEG", quality=95)),
}


@pytest.mark.parametrize("build", DECODABLE.values(), ids=DECODABLE.keys())
def test_what_the_core_decodes_renders(orthanc: FakeOrthanc, build: Callable[[], bytes]) -> None:
    instance_id = orthanc.store(build()).instance_id
    for uri in ("rendered", "preview", "frames/0/rendered", "frames/0/preview"):
        png = orthanc.RestApiGet(f"/instances/{instance_id}/{uri}")
        assert Image.open(io.BytesIO(png)).size == (8, 8)
        assert len(levels(png)) > 1  # the gradient, decoded
