"""/instances/{id}/preview and /rendered (and /frames/{n}/...) as PNG, close enough for thumbnail
tests, with the refusals of Orthanc 1.10.1's core decoder.

Needs numpy and Pillow (imported on use, so the fake works without them otherwise).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .enums import ErrorCode
from .errors import orthanc_error

# What Orthanc 1.10's core (DCMTK, no decoder plugin) decodes: uncompressed, JPEG 8/12-bit and
# lossless, JPEG-LS, RLE. Anything else (JPEG 2000, JPIP, MPEG-2/4, HEVC, HTJ2K, ...) fails with
# "The built-in DCMTK decoder cannot decode some DICOM instance whose transfer syntax is: ...".
DECODABLE_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # implicit VR little endian
        "1.2.840.10008.1.2.1",  # explicit VR little endian
        "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian
        "1.2.840.10008.1.2.4.50",  # JPEG baseline (process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG extended (processes 2 & 4)
        "1.2.840.10008.1.2.4.57",  # JPEG lossless (process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction (process 14 SV1)
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.5",  # RLE lossless
    }
)
_FRAME_NUMBER = re.compile("[0-9]+")


def number_of_frames(dataset: Dataset) -> int:
    """The frames `/instances/{id}/frames` lists: NumberOfFrames, 1 without it (pixels or not)."""
    value = dataset.get("NumberOfFrames")
    if value is None or str(value).strip() == "":
        return 1
    try:
        return max(int(str(value).strip()), 0)
    except ValueError:
        return 1


def frame_index(text: str) -> int:
    """The {n} of `/frames/{n}/...`; Orthanc answers a plugin "Unknown resource" to non-numbers."""
    if not _FRAME_NUMBER.fullmatch(text):
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
    return int(text)


def render(dataset: Dataset, kind: str, query: Mapping[str, str], frame: int = 0) -> bytes:
    """PNG of one frame: windowed for "rendered", full range for "preview".

    Like Orthanc 1.10.1 (measured through `RestApiGet`), every failure (no pixel data, a frame
    out of range, a transfer syntax the core cannot decode, pixel data that does not decode)
    raises `OrthancException(17, "Unknown resource")`: the REST route swallows the decoding
    error and answers 404 or 415 over HTTP, which a plugin receives as UNKNOWN_RESOURCE.
    """
    try:
        import numpy as np
        from PIL import Image
    except ImportError as error:
        raise orthanc_error(ErrorCode.NOT_IMPLEMENTED) from error
    pixels = _decode_frame(dataset, frame)
    if pixels.ndim == 2:
        pixels = _to_8_bits(np, pixels.astype("float64"), dataset if kind == "rendered" else None)
        if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
            pixels = 255 - pixels
    image = Image.fromarray(pixels.astype("uint8"))
    if kind == "rendered":
        image = _resize(image, query)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_frame(dataset: Dataset, frame: int) -> Any:
    if "PixelData" not in dataset or not 0 <= frame < number_of_frames(dataset):
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
    transfer_syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    if transfer_syntax not in DECODABLE_TRANSFER_SYNTAXES:
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
    try:
        pixels: Any = dataset.pixel_array
        if number_of_frames(dataset) > 1:
            pixels = pixels[frame]
    except Exception as error:  # pydicom: no decoder here, truncated or corrupt pixel data, ...
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE) from error
    return pixels


def _to_8_bits(np: Any, values: Any, windowed: Dataset | None) -> Any:
    center = windowed.get("WindowCenter") if windowed is not None else None
    width = windowed.get("WindowWidth") if windowed is not None else None
    if center is not None and width is not None:
        c = _first_number(center)
        w = max(_first_number(width), 1.0)
        low, high = c - w / 2, c + w / 2
    else:
        low, high = float(values.min()), float(values.max())
    span = max(high - low, 1e-9)
    return np.clip((values - low) * 255.0 / span, 0, 255)


def _resize(image: Any, query: Mapping[str, str]) -> Any:
    width = int(query.get("width", "0") or 0)
    height = int(query.get("height", "0") or 0)
    if not width and not height:
        return image
    ratio = min(
        width / image.width if width else float("inf"),
        height / image.height if height else float("inf"),
    )
    size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
    return image.resize(size)


def _first_number(value: Any) -> float:
    return float(value[0]) if isinstance(value, MultiValue) else float(value)
