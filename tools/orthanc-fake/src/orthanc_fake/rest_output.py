"""RestOutput and DicomInstance: the objects Orthanc hands to Python callbacks."""

from __future__ import annotations

import io
import json
from typing import Any

from . import dicom_json
from .archive import StoredFile
from .dicom_json import TagDictionary
from .enums import ErrorCode, PixelFormat
from .errors import OrthancException, orthanc_error
from .metadata import MetadataNames

_BAD_ARGUMENTS = "Bad types for the arguments ({} arguments expected)"


def check_arguments(condition: bool, count: int) -> None:
    # The real bindings raise this TypeError when an argument has the wrong type.
    if not condition:
        raise TypeError(_BAD_ARGUMENTS.format(count))


class FakeRestOutput:
    """Records what a REST callback answers: `status`, `headers`, `body`, `content_type`."""

    def __init__(self, core_labels_status_bodies: bool = False) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        # Every header line in order, repeats included (Orthanc 1.12.2+ adds its own).
        self.header_lines: list[tuple[str, str]] = []
        self._core_labels_status_bodies = core_labels_status_bodies
        self.cookies: dict[str, str] = {}
        self.body = b""
        self.content_type: str | None = None
        self.error_details: str | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def _answer(self, status: int, body: bytes = b"") -> None:
        if self.answered:
            raise orthanc_error(ErrorCode.BAD_SEQUENCE_OF_CALLS)
        self.status = status
        self.body = body

    def AnswerBuffer(self, data: bytes | str, mime_type: str) -> None:
        check_arguments(isinstance(data, bytes | bytearray | str) and isinstance(mime_type, str), 2)
        self._answer(200, data.encode() if isinstance(data, str) else bytes(data))
        self.content_type = mime_type

    def SendHttpStatus(self, status: int, body: str, size: int) -> None:
        # Plugin 4.0 takes the size explicitly and refuses bytes for the body (measured).
        well_typed = isinstance(status, int) and isinstance(body, str) and isinstance(size, int)
        check_arguments(well_typed, 3)
        self._answer(status, body.encode()[:size])
        self._label_status_body()

    def _label_status_body(self) -> None:
        # Orthanc 1.12.2 and later label every status body, after whatever the plugin set.
        if self._core_labels_status_bodies and self.body:
            self.header_lines += [
                ("Content-Type", "text/plain"),
                ("X-Content-Type-Options", "nosniff"),
            ]

    def content_types(self) -> list[str]:
        """Every `Content-Type` header line the answer carries (more than one is a defect)."""
        lines = [value for key, value in self.header_lines if key.lower() == "content-type"]
        return lines or ([self.content_type] if self.content_type else [])

    def SendHttpStatusCode(self, status: int) -> None:
        check_arguments(isinstance(status, int), 1)
        self._answer(status)

    def SendMethodNotAllowed(self, allowed_methods: str) -> None:
        check_arguments(isinstance(allowed_methods, str), 1)
        self._answer(405)
        self.headers["Allow"] = allowed_methods

    def SendUnauthorized(self, realm: str) -> None:
        check_arguments(isinstance(realm, str), 1)
        self._answer(401)
        self.headers["WWW-Authenticate"] = f'Basic realm="{realm}"'

    def Redirect(self, redirection: str) -> None:
        check_arguments(isinstance(redirection, str), 1)
        self._answer(301)
        self.headers["Location"] = redirection

    def SetHttpHeader(self, key: str, value: str) -> None:
        check_arguments(isinstance(key, str) and isinstance(value, str), 2)
        self.headers[key] = value
        self.header_lines.append((key, value))

    def SetCookie(self, cookie: str, value: str) -> None:
        check_arguments(isinstance(cookie, str) and isinstance(value, str), 2)
        self.cookies[cookie] = value

    def SetHttpErrorDetails(self, details: str, log: int) -> None:
        check_arguments(isinstance(details, str) and isinstance(log, int), 2)
        self.error_details = details

    def CompressAndAnswerPngImage(
        self, pixel_format: int, width: int, height: int, pitch: int, buffer: bytes
    ) -> None:
        self._answer(200, _encode_image("PNG", pixel_format, width, height, pitch, buffer))
        self.content_type = "image/png"

    def CompressAndAnswerJpegImage(
        self, pixel_format: int, width: int, height: int, pitch: int, buffer: bytes, quality: int
    ) -> None:
        image = _encode_image("JPEG", pixel_format, width, height, pitch, buffer, quality=quality)
        self._answer(200, image)
        self.content_type = "image/jpeg"


_PIL_MODES = {
    PixelFormat.GRAYSCALE8: ("L", 1),
    PixelFormat.RGB24: ("RGB", 3),
    PixelFormat.RGBA32: ("RGBA", 4),
}


def _encode_image(
    kind: str, pixel_format: int, width: int, height: int, pitch: int, buffer: bytes, **options: Any
) -> bytes:
    from PIL import Image  # only the image answers need Pillow

    if pixel_format not in _PIL_MODES:
        raise orthanc_error(ErrorCode.NOT_IMPLEMENTED)
    mode, bytes_per_pixel = _PIL_MODES[pixel_format]
    rows = b"".join(
        buffer[row * pitch : row * pitch + width * bytes_per_pixel] for row in range(height)
    )
    output = io.BytesIO()
    Image.frombytes(mode, (width, height), rows).save(output, format=kind, **options)
    return output.getvalue()


class FakeRestOutputSince42(FakeRestOutput):
    """RestOutput of Python plugin 4.2 and later, whose SendHttpStatus takes (status, body)."""

    def SendHttpStatus(self, status: int, body: bytes) -> None:  # type: ignore[override]
        check_arguments(isinstance(status, int) and isinstance(body, bytes | bytearray), 2)
        self._answer(status, bytes(body))
        self._label_status_body()


class FakeDicomInstance:
    """What the on-stored-instance callback receives."""

    def __init__(
        self,
        file: StoredFile,
        metadata: dict[int, str],
        names: MetadataNames,
        dictionary: TagDictionary,
    ):
        self._file = file
        self._metadata = dict(metadata)
        self._names = names
        self._dictionary = dictionary

    def GetInstanceData(self) -> bytes:
        return self._file.data

    def GetInstanceSize(self) -> int:
        return len(self._file.data)

    def GetInstanceJson(self) -> str:
        return json.dumps(dicom_json.to_full_json(self._file.dataset, self._dictionary), indent=3)

    def GetInstanceSimplifiedJson(self) -> str:
        full = dicom_json.to_full_json(self._file.dataset, self._dictionary)
        return json.dumps(dicom_json.simplify(full), indent=3)

    def GetInstanceOrigin(self) -> int:
        return self._file.origin

    def GetInstanceRemoteAet(self) -> str:
        return self._file.remote_aet

    def GetInstanceTransferSyntaxUid(self) -> str:
        return str(self._file.dataset.file_meta.get("TransferSyntaxUID", ""))

    def HasInstancePixelData(self) -> int:
        return int("PixelData" in self._file.dataset)

    def GetInstanceFramesCount(self) -> int:
        if "PixelData" not in self._file.dataset:
            return 0
        return int(self._file.dataset.get("NumberOfFrames", 1) or 1)

    def HasInstanceMetadata(self, key: str) -> int:
        check_arguments(isinstance(key, str), 1)
        return int(self._lookup(key) is not None)

    def GetInstanceMetadata(self, key: str) -> str | None:
        check_arguments(isinstance(key, str), 1)
        return self._lookup(key)

    def _lookup(self, key: str) -> str | None:
        try:
            return self._metadata.get(self._names.number_of(key))
        except OrthancException:
            return None
