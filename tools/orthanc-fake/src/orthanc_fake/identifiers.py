"""Orthanc's public identifiers: a SHA-1 of the DICOM identifiers down the hierarchy."""

import hashlib


def orthanc_id(*dicom_identifiers: str) -> str:
    """ID of the resource identified by PatientID[, StudyUID[, SeriesUID[, SOPInstanceUID]]]."""
    digest = hashlib.sha1("|".join(dicom_identifiers).encode(), usedforsecurity=False).hexdigest()
    return "-".join(digest[start : start + 8] for start in range(0, 40, 8))
