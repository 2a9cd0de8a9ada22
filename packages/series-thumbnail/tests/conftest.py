"""Fixtures of the orthanc-series-thumbnail unit tests: the plugin created in orthanc-fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from thumbnail_testing import RestSpy, Thumbnails, configuration

from orthanc_fake import FakeOrthanc
from orthanc_series_thumbnail.plugin import create

ThumbnailsFactory = Callable[..., Thumbnails]


@pytest.fixture
def thumbnails_factory(
    fake_orthanc_factory: Callable[..., FakeOrthanc],
) -> Iterator[ThumbnailsFactory]:
    """Builds a FakeOrthanc configured with `SeriesThumbnail` = keyword arguments, the plugin
    created in it as Orthanc does, and a spy on its REST API.

    Orthanc has not delivered ORTHANC_STARTED yet, so the worker thread is not running: changes
    delivered to the plugin only queue work until the test calls `fake.start()`. At teardown,
    ORTHANC_STOPPED stops the worker.
    """
    built: list[Thumbnails] = []

    def build(**section: Any) -> Thumbnails:
        fake = fake_orthanc_factory(configuration(**section))
        rest = RestSpy(fake)
        plugin = create(fake, fake.configuration)
        fake.RegisterOnChangeCallback(plugin.on_change)
        built.append(Thumbnails(fake, plugin, rest))
        return built[-1]

    yield build
    for thumbnails in built:
        thumbnails.fake.stop()


@pytest.fixture
def thumbnails(thumbnails_factory: ThumbnailsFactory) -> Thumbnails:
    """The plugin with the default configuration; its worker is not running."""
    return thumbnails_factory()


@pytest.fixture
def running(thumbnails: Thumbnails) -> Thumbnails:
    """The plugin after ORTHANC_STARTED: its worker thread reacts to delivered changes."""
    thumbnails.fake.start()
    return thumbnails
