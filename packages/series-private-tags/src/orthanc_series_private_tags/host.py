"""The little of Orthanc the plugin's logic needs, so that it can be tested without Orthanc.

`plugin.py` adapts the real `orthanc` module to this interface; tests use the orthanc fake.
"""

from __future__ import annotations

from typing import Protocol


class NotFound(Exception):
    """Orthanc answered "unknown resource" for the URI."""


class HostError(Exception):
    """Any other failure of an Orthanc REST call."""


class Host(Protocol):
    """Orthanc's internal REST API (no HTTP round trip) and its log."""

    def get(self, uri: str) -> bytes:
        """GET uri, built-in routes only; raises NotFound or HostError."""
        ...

    def post(self, uri: str, body: bytes) -> bytes:
        """POST uri; raises NotFound or HostError."""
        ...

    def put(self, uri: str, body: bytes) -> None:
        """PUT uri; raises NotFound or HostError."""
        ...

    def log_info(self, message: str) -> None: ...

    def log_warning(self, message: str) -> None: ...

    def log_error(self, message: str) -> None: ...
