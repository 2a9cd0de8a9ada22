"""What a plugin's error answer looks like on the Orthanc under test."""

from __future__ import annotations

from integration.harness.interfaces import Orthanc

# Orthanc 1.12.2 and later label every status sent with a body `text/plain` (the body is still
# the plugin's JSON); the plugins then leave the label to Orthanc rather than send two.
CORE_LABELS_ERROR_BODIES_FROM = (1, 12, 2)


def orthanc_version(orthanc: Orthanc) -> tuple[int, ...]:
    version = orthanc.client.get("/system").json()["Version"]
    return tuple(int(part) for part in version.split(".")[:3])


def error_content_type(orthanc: Orthanc) -> str:
    """The one `Content-Type` a plugin's error answer carries on this Orthanc."""
    if orthanc_version(orthanc) >= CORE_LABELS_ERROR_BODIES_FROM:
        return "text/plain"
    return "application/json"
