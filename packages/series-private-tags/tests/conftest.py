"""Fixtures of the orthanc-series-private-tags unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from spt_testing import PluginFactory, configuration

from orthanc_fake.module import FakeOrthanc
from orthanc_series_private_tags.plugin import SeriesPrivateTagsPlugin, create


@pytest.fixture
def plugin_factory(fake_orthanc_factory: Callable[..., FakeOrthanc]) -> PluginFactory:
    """(fake orthanc, plugin) for a configuration; the worker runs only when a test asks."""

    def build(config: dict[str, Any] | None = None) -> tuple[FakeOrthanc, SeriesPrivateTagsPlugin]:
        fake = fake_orthanc_factory(config if config is not None else configuration())
        plugin = create(fake, fake.configuration)
        fake.RegisterOnChangeCallback(plugin.on_change)
        return fake, plugin

    return build


@pytest.fixture
def orthanc_and_plugin(
    plugin_factory: PluginFactory,
) -> tuple[FakeOrthanc, SeriesPrivateTagsPlugin]:
    return plugin_factory()
