"""The synthetic instance builder."""

import io

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from orthanc_fake import PrivateBlock, make_dataset, make_instance


def read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def test_private_block_at_a_chosen_block() -> None:
    block = PrivateBlock(0x0055, "MATTERHORN_Prvt_Tags", {0x11: ("UT", "queue-7")}, block=0x30)
    dataset = read(make_instance(private_blocks=[block]))
    assert dataset[0x00550030].value == "MATTERHORN_Prvt_Tags"
    assert dataset[0x00553011].value == "queue-7"


def test_keywords_elements_and_pixels() -> None:
    dataset = read(
        make_instance("P9", Modality="CT", elements=[(0x00181030, "LO", "proto")], pixels=(3, 3))
    )
    assert (dataset.PatientID, dataset.Modality, dataset.ProtocolName) == ("P9", "CT", "proto")
    assert (dataset.Rows, dataset.Columns, len(dataset.PixelData)) == (3, 3, 10)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_implicit_vr_and_fresh_sop_uids() -> None:
    dataset = read(make_instance(transfer_syntax=ImplicitVRLittleEndian))
    assert dataset.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert make_dataset().SOPInstanceUID != make_dataset().SOPInstanceUID
