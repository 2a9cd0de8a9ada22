"""pytest plugin (entry point pytest11): the `fake_orthanc` fixture."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from .module import FakeOrthanc

FakeOrthancFactory = Callable[..., FakeOrthanc]


@pytest.fixture
def fake_orthanc_factory() -> Iterator[FakeOrthancFactory]:
    """Builds FakeOrthanc(configuration, **options); see `fake_orthanc` for the teardown check."""
    fakes: list[FakeOrthanc] = []

    def build(configuration: Mapping[str, Any] | None = None, **options: Any) -> FakeOrthanc:
        fakes.append(FakeOrthanc(configuration, **options))
        return fakes[-1]

    yield build
    errors = [error for fake in fakes for error in fake.callback_errors]
    if errors:
        details = "".join(traceback.format_exception(errors[0]))
        pytest.fail(f"{len(errors)} callback(s) raised; the first:\n{details}", pytrace=False)


@pytest.fixture
def fake_orthanc(fake_orthanc_factory: FakeOrthancFactory) -> FakeOrthanc:
    """A fresh FakeOrthanc with an empty configuration.

    The test fails if a callback raised (Orthanc would only have logged it), unless the test
    cleared `callback_errors` after checking them.
    """
    return fake_orthanc_factory()
