"""orthanc-series-private-tags: configured private tags kept per series, served in listings."""

from .__about__ import __version__
from ._kit import ConfigurationError
from .plugin import create

__all__ = ["ConfigurationError", "__version__", "create"]
