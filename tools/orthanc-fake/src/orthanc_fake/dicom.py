"""Build small synthetic DICOM instances for tests."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
DEFAULT_STUDY_UID = "1.2.826.0.1.3680043.10.1082.1"
DEFAULT_SERIES_UID = "1.2.826.0.1.3680043.10.1082.1.1"


@dataclass(frozen=True)
class PrivateBlock:
    """Private elements under one private creator, at a chosen block (0x10..0xFF) of `group`.

    `elements` maps the element's low byte to (VR, value): {0x11: ("UT", "text")} with
    group 0x0055 and block 0x10 gives (0055,0010) = creator and (0055,1011) = "text".
    """

    group: int
    creator: str
    elements: Mapping[int, tuple[str, Any]] = field(default_factory=dict)
    block: int = 0x10

    def add_to(self, dataset: Dataset) -> None:
        if self.group % 2 == 0 or not 0x10 <= self.block <= 0xFF:
            raise ValueError(f"not a private block: group {self.group:04x}, block {self.block:02x}")
        dataset.add_new((self.group, self.block), "LO", self.creator)
        for offset, (vr, value) in self.elements.items():
            dataset.add_new((self.group, (self.block << 8) | (offset & 0xFF)), vr, value)


def make_dataset(
    patient_id: str = "PATIENT",
    study_uid: str = DEFAULT_STUDY_UID,
    series_uid: str = DEFAULT_SERIES_UID,
    sop_uid: str | None = None,
    *,
    pixels: tuple[int, int] | None = None,
    private_blocks: Iterable[PrivateBlock] = (),
    elements: Iterable[tuple[int, str, Any]] = (),
    transfer_syntax: str = ExplicitVRLittleEndian,
    **tags: Any,
) -> Dataset:
    """A dataset with the four identifiers, SOPClassUID and Modality; `tags` are keyword=value.

    `pixels=(rows, columns)` adds an 8-bit MONOCHROME2 gradient; `elements` adds raw
    (tag, VR, value) triples; `private_blocks` adds private elements.
    """
    dataset = Dataset()
    dataset.PatientID = patient_id
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.SOPInstanceUID = sop_uid or generate_uid()
    dataset.SOPClassUID = SECONDARY_CAPTURE
    dataset.Modality = "OT"
    if pixels is not None:
        _add_gradient(dataset, *pixels)
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    for tag, vr, value in elements:
        dataset.add_new(tag, vr, value)
    for block in private_blocks:
        block.add_to(dataset)
    dataset.file_meta = _file_meta(dataset, transfer_syntax)
    return dataset


def make_instance(
    patient_id: str = "PATIENT",
    study_uid: str = DEFAULT_STUDY_UID,
    series_uid: str = DEFAULT_SERIES_UID,
    sop_uid: str | None = None,
    **options: Any,
) -> bytes:
    """The DICOM file (Part 10 bytes) of `make_dataset(...)`."""
    return to_bytes(make_dataset(patient_id, study_uid, series_uid, sop_uid, **options))


def to_bytes(dataset: Dataset) -> bytes:
    """Encode as a Part 10 file; file meta information (explicit VR little endian) if absent."""
    if "TransferSyntaxUID" not in getattr(dataset, "file_meta", FileMetaDataset()):
        dataset.file_meta = _file_meta(dataset, ExplicitVRLittleEndian)
    buffer = io.BytesIO()
    # pydicom encodes with the transfer syntax named in the file meta information.
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _file_meta(dataset: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID", SECONDARY_CAPTURE)
    meta.MediaStorageSOPInstanceUID = dataset.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = UID(transfer_syntax)
    return meta


def _add_gradient(dataset: Dataset, rows: int, columns: int) -> None:
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    data = bytes((row * 7 + column * 13) % 256 for row in range(rows) for column in range(columns))
    # Pixel data must have an even length.
    dataset.PixelData = data + b"\x00" * (len(data) % 2)
