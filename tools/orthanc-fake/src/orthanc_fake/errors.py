"""The exception the `orthanc` module raises."""

from .enums import ERROR_DESCRIPTIONS


class OrthancException(Exception):
    """Raised like the real one: `args == (error_code: int, description: str)`."""


def orthanc_error(code: int) -> OrthancException:
    """Build the exception Orthanc raises for `code` (an ErrorCode value)."""
    return OrthancException(code, ERROR_DESCRIPTIONS.get(code, f"Error {code}"))
