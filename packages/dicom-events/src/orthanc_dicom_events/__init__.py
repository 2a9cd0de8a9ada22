"""orthanc-dicom-events: publish Orthanc's DICOM events to RabbitMQ or AWS SNS."""

from .__about__ import __version__
from ._kit import ConfigurationError
from .plugin import create

__all__ = ["ConfigurationError", "__version__", "create"]
