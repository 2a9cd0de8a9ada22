import pytest
from fake_samples import CONFIGURATION

from orthanc_fake import FakeOrthanc


@pytest.fixture
def orthanc() -> FakeOrthanc:
    """A fake configured like the real Orthanc the recorded answers come from."""
    return FakeOrthanc(CONFIGURATION)
