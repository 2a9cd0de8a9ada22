"""orthanc-series-thumbnail: a small, cached image of the middle slice of each series."""

from .__about__ import __version__
from ._kit import ConfigurationError
from .plugin import create

__all__ = ["ConfigurationError", "__version__", "create"]
