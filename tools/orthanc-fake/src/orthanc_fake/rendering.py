"""/instances/{id}/preview and /rendered as PNG, close enough for thumbnail tests.

Needs numpy and Pillow (imported on use, so the fake works without them otherwise).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .enums import ErrorCode
from .errors import orthanc_error


def render(dataset: Dataset, kind: str, query: Mapping[str, str]) -> bytes:
    """PNG of the first frame: windowed for "rendered", full range for "preview"."""
    try:
        import numpy as np
        from PIL import Image
    except ImportError as error:
        raise orthanc_error(ErrorCode.NOT_IMPLEMENTED) from error
    if "PixelData" not in dataset:
        raise orthanc_error(ErrorCode.INEXISTENT_TAG)
    pixels: Any = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
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
