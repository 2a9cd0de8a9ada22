"""Instances whose real Orthanc 1.10.1 renderings are recorded in data/ (see data/README.md)."""

import json
import warnings
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from orthanc_fake import FakeOrthanc, PrivateBlock, make_instance

DATA = Path(__file__).parent / "data"
CONFIGURATION = {
    "UserMetadata": {"Foo": 2000},
    "Dictionary": {"0055,1011": ["UT", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]},
}

# IDs the real Orthanc 1.10.1 gave to RICH_INSTANCE's hierarchy.
PATIENT_ID = "bdaf1eca-33d4619e-80e8ca68-9a1b74a4-febbbb29"
STUDY_ID = "ce42f924-f6020bea-aa810144-6941b6f0-88331094"
SERIES_ID = "626a5deb-273fd2f8-0801eb57-046b8592-d6992882"
INSTANCE_ID = "7ec54ea4-03b563b4-f9817b30-214c8311-b67e0f83"


def rich_instance() -> bytes:
    """Strings, numbers, sequences, a too-long value, binary and private elements."""
    code = Dataset()
    code.CodeValue = "X"
    code.CodingSchemeDesignator = "DCM"
    # ProtocolName is deliberately longer than its VR allows: Orthanc renders it as null.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The value length", UserWarning)
        return _make_rich_instance(code)


def _make_rich_instance(code: Dataset) -> bytes:
    return make_instance(
        "P1",
        "1.2.3",
        "1.2.3.4",
        "1.2.3.4.5",
        pixels=(2, 2),
        PatientName="Doe^John",
        PatientSex="F",
        StudyDate="20240102",
        AccessionNumber="",
        SeriesDescription="Lung",
        SeriesNumber="3",
        InstanceNumber="0007",
        ImagePositionPatient=["1.5", "2", "3.0"],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        ProtocolName="x" * 300,
        WindowCenter="40",
        WindowWidth="400",
        PerformedProtocolCodeSequence=[code],
        elements=[
            (0x0018603C, "FD", 1.25),
            (0x00181164, "DS", ["0.5", "0.25"]),
            (0x00089215, "SQ", []),
            (0x00280034, "IS", ["1", "1"]),
        ],
        private_blocks=[
            PrivateBlock(
                0x0055,
                "MATTERHORN_Prvt_Tags",
                {
                    0x11: ("UT", "queue-42"),
                    0x12: ("LO", "hello"),
                    0x13: ("OB", b"\x01\x02"),
                    0x14: ("US", 5),
                },
            ),
            PrivateBlock(0x0057, "OTHER", {0x01: ("UN", b"abc ")}, block=0x20),
        ],
    )


def recorded(name: str) -> Any:
    """A JSON answer recorded from the real Orthanc 1.10.1."""
    return json.loads((DATA / name).read_text())


def get_json(orthanc: FakeOrthanc, uri: str) -> Any:
    return json.loads(orthanc.RestApiGet(uri))
