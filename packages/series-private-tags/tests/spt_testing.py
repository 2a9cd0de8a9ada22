"""Shared helpers of the orthanc-series-private-tags unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orthanc_fake.dicom import PrivateBlock, make_instance
from orthanc_fake.module import FakeOrthanc
from orthanc_fake.samples import find_samples_dir
from orthanc_series_private_tags.plugin import SeriesPrivateTagsPlugin

# The `plugin_factory` fixture: configuration -> (fake orthanc, plugin).
PluginFactory = Callable[..., tuple[FakeOrthanc, SeriesPrivateTagsPlugin]]

CREATOR = "MATTERHORN_Prvt_Tags"
OTHER_CREATOR = "SOMEONE_ELSE"
# The repository's sibling folder ../shared/dicom-samples (real-world files, not shipped).
SAMPLES = find_samples_dir(Path(__file__)) or Path("/nonexistent/dicom-samples")
NO_SAMPLES = "DICOM samples not found (../shared/dicom-samples or DICOM_SAMPLES_DIR)"


def configuration(tags: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """An Orthanc configuration with three private tags of one creator declared."""
    return {
        "Dictionary": {
            "0055,1011": ["UT", "QueueID", 1, 1, CREATOR],
            "0055,1012": ["LO", "SourceSeries", 1, 1, CREATOR],
            "0055,1013": ["CS", "OutputFlag", 1, 1, CREATOR],
            "0055,1014": ["US", "Priority", 1, 1, CREATOR],
            "0055,1015": ["OB", "Blob", 1, 1, CREATOR],
        },
        "UserMetadata": {"SeriesPrivateTags": 2000},
        "SeriesMainPrivateDicomTags": tags
        if tags is not None
        else ["QueueID", "SourceSeries", "!!OutputFlag"],
        **extra,
    }


def instance(
    series: str,
    sop: str,
    elements: dict[int, tuple[str, Any]] | None = None,
    *,
    creator: str = CREATOR,
    block: int = 0x10,
    patient: str = "PATIENT",
    study: str = "1.2.3",
) -> bytes:
    """A DICOM file of series `series` with private elements (offset -> (VR, value))."""
    blocks = [PrivateBlock(0x0055, creator, elements, block)] if elements else []
    return make_instance(patient, study, series, sop, private_blocks=blocks)


def body(output: Any) -> Any:
    """The JSON answer of a fake RestOutput."""
    return json.loads(output.body)
