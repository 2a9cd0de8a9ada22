"""Turn Orthanc's windowed rendering of a frame into a thumbnail of the requested size and format.

Orthanc does the DICOM work (decoding, rescale, windowing, photometric interpretation) through
`/instances/{id}/frames/{f}/rendered`; Pillow only resizes and encodes. Orthanc 1.10 ignores query
strings on internal REST calls, so the rendering arrives full size as PNG.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from ._kit import HostError, OrthancHost, quote_id

ImageFormat = Literal["jpeg", "png"]
MIME_TYPES: dict[ImageFormat, str] = {"jpeg": "image/jpeg", "png": "image/png"}

# Bump when the produced bytes change for the same inputs: it is part of every ETag.
RENDERING_VERSION = 2

# Refuse absurd frames before decoding them (a 1024x1024 thumbnail never needs more).
_MAX_SOURCE_PIXELS = 20_000 * 20_000


class NotDisplayable(Exception):
    """The instance has no image Orthanc can render; the message says why."""


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """Everything that determines a thumbnail's bytes."""

    instance_id: str
    frame: int
    size: int
    image_format: ImageFormat
    jpeg_quality: int
    content_id: str = ""  # part of the cache key and the ETag: new pixels, new validator


def warm_up() -> None:
    """Load Pillow's PNG and JPEG codecs now rather than during the first request."""
    Image.preinit()


def render(host: OrthancHost, spec: RenderSpec) -> bytes:
    """Fetch Orthanc's rendering and scale it so its longer side is `spec.size`."""
    try:
        rendered = host.get(rendered_uri(spec.instance_id, spec.frame))
    except HostError:
        raise NotDisplayable(explain_failure(host, spec.instance_id)) from None
    try:
        return scale_and_encode(rendered, spec)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise NotDisplayable(f"Orthanc's rendering could not be read: {error}") from None


def rendered_uri(instance_id: str, frame: int) -> str:
    """Orthanc's windowed rendering of one frame; `/rendered` alone is frame 0 in every version."""
    if frame == 0:
        return f"/instances/{quote_id(instance_id)}/rendered"
    return f"/instances/{quote_id(instance_id)}/frames/{frame}/rendered"


def scale_and_encode(rendered: bytes, spec: RenderSpec) -> bytes:
    """Resize an 8-bit rendering to fit a `size` square (aspect kept) and encode it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image: Image.Image = Image.open(io.BytesIO(rendered))
        if image.width * image.height > _MAX_SOURCE_PIXELS:
            raise ValueError(f"frame of {image.width}x{image.height} pixels is too large")
        image.load()
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    scale = spec.size / max(image.width, image.height)
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if target != image.size:
        # Shrinking averages each target pixel's area (box), the usual filter for thumbnails and
        # 3-4x cheaper than Lanczos on a 512x512 CT; enlarging interpolates. reducing_gap first
        # shrinks by whole factors (a 2048 px frame costs about what a 512 px one does).
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        image = image.resize(target, resample, reducing_gap=2.0)
    out = io.BytesIO()
    if spec.image_format == "png":
        image.save(out, "PNG", compress_level=6)
    else:
        image.save(out, "JPEG", quality=spec.jpeg_quality)
    return out.getvalue()


_NO_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "Encapsulated STL",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data",
    "1.2.840.10008.5.1.4.1.1.66.1": "Spatial Registration",
}
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def explain_failure(host: OrthancHost, instance_id: str) -> str:
    """Why Orthanc could not render an instance, from its metadata (the REST error says nothing)."""
    sop_class = _metadata(host, instance_id, "SopClassUid")
    transfer_syntax = _metadata(host, instance_id, "TransferSyntax")
    if sop_class.startswith(_SR_PREFIX):
        return f"a Structured Report ({sop_class}) has no image"
    if sop_class in _NO_IMAGE_SOP_CLASSES:
        return f"a {_NO_IMAGE_SOP_CLASSES[sop_class]} object ({sop_class}) has no image"
    if not _has_pixel_data(host, instance_id):
        return f"the instance has no pixel data (SOP class {sop_class or 'unknown'})"
    if transfer_syntax and transfer_syntax not in _UNCOMPRESSED:
        return (
            f"Orthanc cannot decode the transfer syntax {transfer_syntax} "
            "(a decoder plugin such as orthanc-gdcm may add it)"
        )
    return f"Orthanc cannot render the pixel data (SOP class {sop_class or 'unknown'})"


def _metadata(host: OrthancHost, instance_id: str, name: str) -> str:
    try:
        return host.get(f"/instances/{quote_id(instance_id)}/metadata/{name}").decode(
            errors="replace"
        )
    except HostError:
        return ""


def _has_pixel_data(host: OrthancHost, instance_id: str) -> bool:
    # PixelDataOffset is recorded on ingest since Orthanc 1.9.1; without the list, assume pixels.
    try:
        names = host.get(f"/instances/{quote_id(instance_id)}/metadata").decode()
    except (HostError, UnicodeDecodeError):
        return True
    return "PixelDataOffset" in names
