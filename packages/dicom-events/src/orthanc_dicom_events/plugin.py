"""The plugin object Orthanc (or a composed entry file) drives: the only module that touches `orthanc`.

Contract shared by every plugin of this project:

    create(orthanc, orthanc_config) -> plugin

`orthanc` is the module Orthanc's Python plugin provides (or the test fake); `orthanc_config` is
Orthanc's parsed configuration (`json.loads(orthanc.GetConfiguration())`). `create` validates the
plugin's section (raising `ConfigurationError` on a bad value), registers the plugin's REST routes and
returns an object whose `on_change(change_type, level, resource_id)` and
`on_stored_instance(dicom, instance_id)` attributes are the callbacks it needs (None when unused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .__about__ import __version__
from .config import DicomEventsConfig, mask_url_password, parse

NAME = "dicom-events"


class DicomEventsPlugin:
    """Publishes Orthanc's DICOM events to the configured broker."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: DicomEventsConfig) -> None:
        self._orthanc = orthanc
        self.config = config

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback; publishing arrives with the events feature."""

    def status(self) -> dict[str, Any]:
        """What `GET /dicom-events/status` reports."""
        config = self.config
        broker: dict[str, Any] = {"Type": config.broker_type.value}
        if config.rabbitmq is not None:
            broker["URL"] = mask_url_password(config.rabbitmq.url)
            broker["Exchange"] = config.rabbitmq.exchange
        if config.sns is not None:
            broker["TopicArn"] = config.sns.topic_arn
        return {"Plugin": NAME, "Version": __version__, "Broker": broker}

    def serve_status(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        output.AnswerBuffer(json.dumps(self.status(), indent=2), "application/json")


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> DicomEventsPlugin:
    """Validate the `DicomEvents` section, register the REST routes and return the plugin."""
    plugin = DicomEventsPlugin(orthanc, parse(orthanc_config))
    orthanc.RegisterRestCallback("/dicom-events/status", plugin.serve_status)
    return plugin
