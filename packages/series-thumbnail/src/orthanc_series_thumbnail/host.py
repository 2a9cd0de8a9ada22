"""The slice of Orthanc the thumbnail logic needs: all but `plugin.py` is testable without it."""

from __future__ import annotations

import json
from typing import Any, Protocol


class RestError(Exception):
    """An internal REST call failed (Orthanc 1.10 reports every failure as 'Unknown resource')."""


class Host(Protocol):
    """Orthanc's internal REST API and log, as seen by the thumbnail logic."""

    def get(self, uri: str) -> bytes:
        """GET an internal URI (no query string: Orthanc 1.10 ignores it); raise RestError."""
        ...

    def put(self, uri: str, body: bytes) -> None:
        """PUT an internal URI; raise RestError."""
        ...

    def delete(self, uri: str) -> None:
        """DELETE an internal URI; raise RestError."""
        ...

    def log_warning(self, message: str) -> None: ...

    def log_error(self, message: str) -> None: ...


def get_json(host: Host, uri: str) -> Any:
    """GET and decode a JSON answer."""
    return json.loads(host.get(uri))
