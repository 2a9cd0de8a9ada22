"""Fixtures of the orthanc-dicom-events unit tests."""

from __future__ import annotations

import pytest
from dicom_events_testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
