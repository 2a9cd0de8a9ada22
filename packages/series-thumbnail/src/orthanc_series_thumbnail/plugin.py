"""The plugin object Orthanc (or a composed entry file) drives: the only module that touches `orthanc`.

Contract shared by every plugin of this project:

    create(orthanc, orthanc_config) -> plugin

`create` validates the configuration (raising `ConfigurationError` on a bad value), registers the
plugin's REST routes and returns an object whose `on_change(change_type, level, resource_id)` and
`on_stored_instance(dicom, instance_id)` attributes are the callbacks it needs (None when unused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .__about__ import __version__
from .config import SeriesThumbnailConfig, parse

NAME = "series-thumbnail"


class SeriesThumbnailPlugin:
    """Serves a small image of the middle slice of a series."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: SeriesThumbnailConfig) -> None:
        self._orthanc = orthanc
        self.config = config

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback; thumbnails arrive with the thumbnail feature."""

    def status(self) -> dict[str, Any]:
        """What `GET /series-thumbnail/status` reports."""
        return {
            "Plugin": NAME,
            "Version": __version__,
            "Metadata": {"Name": self.config.metadata_name, "Index": self.config.metadata_index},
            "DefaultSize": self.config.default_size,
            "JpegQuality": self.config.jpeg_quality,
        }

    def serve_status(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        output.AnswerBuffer(json.dumps(self.status(), indent=2), "application/json")


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> SeriesThumbnailPlugin:
    """Validate the configuration, register the REST routes and return the plugin."""
    plugin = SeriesThumbnailPlugin(orthanc, parse(orthanc_config))
    orthanc.RegisterRestCallback("/series-thumbnail/status", plugin.serve_status)
    return plugin
