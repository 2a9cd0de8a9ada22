"""What the worker needs from Orthanc, as a small interface (the plugin adapts the real module)."""

from __future__ import annotations

from typing import Protocol


class HostError(RuntimeError):
    """A call into Orthanc failed; `not_found` tells a vanished resource from other failures."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class Host(Protocol):
    def rest_get(self, uri: str) -> bytes:
        """Orthanc's REST API from inside (raises HostError)."""
        ...

    def rest_post(self, uri: str, body: str) -> bytes:
        """A POST to Orthanc's REST API from inside (raises HostError)."""
        ...

    def get_global_property(self, index: int) -> str:
        """The stored value, or "" when unset."""
        ...

    def set_global_property(self, index: int, value: str) -> None: ...

    def set_metric(self, name: str, value: float) -> None: ...

    def log_info(self, message: str) -> None: ...

    def log_warning(self, message: str) -> None: ...

    def log_error(self, message: str) -> None: ...
