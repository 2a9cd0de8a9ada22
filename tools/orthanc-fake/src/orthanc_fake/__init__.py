"""An in-memory stand-in for the `orthanc` module of Orthanc's Python plugin, for unit tests."""

from .__about__ import __version__
from .archive import Arrival, PendingChange, StoreResult
from .dicom import PrivateBlock, make_dataset, make_instance
from .errors import OrthancException
from .identifiers import orthanc_id
from .module import FakeOrthanc, LogRecord
from .rest_output import FakeDicomInstance, FakeRestOutput

__all__ = [
    "Arrival",
    "FakeDicomInstance",
    "FakeOrthanc",
    "FakeRestOutput",
    "LogRecord",
    "OrthancException",
    "PendingChange",
    "PrivateBlock",
    "StoreResult",
    "__version__",
    "make_dataset",
    "make_instance",
    "orthanc_id",
]
