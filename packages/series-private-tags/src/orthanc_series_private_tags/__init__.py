"""orthanc-series-private-tags: keep configured private tags per series and serve them in listings."""

from .__about__ import __version__
from .config import ConfigurationError
from .plugin import create

__all__ = ["ConfigurationError", "__version__", "create"]
