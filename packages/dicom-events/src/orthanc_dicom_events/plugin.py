"""The plugin object Orthanc (or a composed entry file) drives; the only module touching `orthanc`.

Contract shared by every plugin of this project:

    create(orthanc, orthanc_config) -> plugin

`orthanc` is the module Orthanc's Python plugin provides (or the test fake); `orthanc_config` is
Orthanc's parsed configuration (`json.loads(orthanc.GetConfiguration())`). `create` validates the
plugin's section (raising `ConfigurationError` on a bad value), registers the plugin's REST routes
and returns an object whose `on_change(change_type, level, resource_id)` and
`on_stored_instance(dicom, instance_id)` attributes are the callbacks it needs (None when unused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import changes as ch
from .__about__ import __version__
from .config import DicomEventsConfig, mask_url_password, parse
from .host import HostError
from .publishers import Publisher
from .publishers.factory import build_publisher
from .status import Status, as_json
from .worker import EventWorker, mask_secrets

NAME = "dicom-events"
STATUS_ROUTE = "/dicom-events/status"
UNKNOWN_RESOURCE = 17  # orthanc.ErrorCode.UNKNOWN_RESOURCE


class OrthancHost:
    """The worker's view of Orthanc, over the `orthanc` module (real or fake)."""

    def __init__(self, orthanc: ModuleType, config: DicomEventsConfig) -> None:
        self._orthanc = orthanc
        self._config = config
        self.closed = False

    def rest_get(self, uri: str) -> bytes:
        return self._call("GET", uri, lambda: self._orthanc.RestApiGet(uri))

    def rest_post(self, uri: str, body: str) -> bytes:
        return self._call("POST", uri, lambda: self._orthanc.RestApiPost(uri, body))

    def _call(self, method: str, uri: str, call: Callable[[], Any]) -> bytes:
        self._check_open()
        try:
            answer = call()
        except Exception as error:
            code = error.args[0] if error.args else None
            raise HostError(
                f"{method} {uri}: {error}",
                not_found=code == UNKNOWN_RESOURCE or "Unknown resource" in str(error),
            ) from error
        return answer if isinstance(answer, bytes) else str(answer).encode()

    def get_global_property(self, index: int) -> str:
        self._check_open()
        return str(self._orthanc.GetGlobalProperty(index, "") or "")

    def set_global_property(self, index: int, value: str) -> None:
        self._check_open()
        self._orthanc.SetGlobalProperty(index, value)

    def set_metric(self, name: str, value: float) -> None:
        if not self.closed:
            self._orthanc.SetMetricsValue(name, float(value), self._orthanc.MetricsType.DEFAULT)

    def log_info(self, message: str) -> None:
        self._orthanc.LogInfo(mask_secrets(message, self._config))

    def log_warning(self, message: str) -> None:
        self._orthanc.LogWarning(mask_secrets(message, self._config))

    def log_error(self, message: str) -> None:
        self._orthanc.LogError(mask_secrets(message, self._config))

    def _check_open(self) -> None:
        # Orthanc is being torn down once the flush time is over: a late thread must not call in.
        if self.closed:
            raise HostError("Orthanc is stopping")


class DicomEventsPlugin:
    """Publishes Orthanc's DICOM events to the configured broker."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None  # nothing on the store path

    def __init__(
        self,
        orthanc: ModuleType,
        config: DicomEventsConfig,
        publisher_factory: Callable[[], Publisher] | None = None,
    ) -> None:
        self.config = config
        self.host = OrthancHost(orthanc, config)
        self.status_counters = Status()
        self.worker = EventWorker(
            self.host,
            config,
            publisher_factory or (lambda: build_publisher(config)),
            self.status_counters,
        )

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: starts and stops the publisher, otherwise only wakes it."""
        if change_type == ch.ORTHANC_STARTED:
            self.worker.start()
        elif change_type == ch.ORTHANC_STOPPED:
            self.stop()
        else:
            self.worker.notify(change_type, level, resource_id)

    def stop(self) -> None:
        ended = self.worker.stop()
        self.host.closed = True
        if not ended:
            self.host.log_warning("dicom-events: publisher still busy after the flush time; left")

    def status(self) -> dict[str, Any]:
        """What `GET /dicom-events/status` reports."""
        config = self.config
        broker: dict[str, Any] = {"Type": config.broker_type.value}
        if config.rabbitmq is not None:
            broker["URL"] = mask_url_password(config.rabbitmq.url)
            broker["Exchange"] = config.rabbitmq.exchange
        if config.sns is not None:
            broker["TopicArn"] = config.sns.topic_arn
        self._refresh_log_end()
        broker.update(as_json(self.status_counters.snapshot()))
        return {"Plugin": NAME, "Version": __version__, "Source": config.source, "Broker": broker}

    def _refresh_log_end(self) -> None:
        """The backlog counts changes recorded since the publisher last looked, too."""
        try:
            last = int(json.loads(self.host.rest_get("/changes?last"))["Last"])
        except (HostError, ValueError, KeyError):
            return
        if last > self.status_counters.snapshot().log_end_seq:
            self.status_counters.update(log_end_seq=last)

    def serve_status(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        if not self.worker.ready.is_set():
            # Until the start position in the change log is known, nothing is being published.
            output.SendHttpStatus(503, json.dumps(self.status()))
            return
        output.AnswerBuffer(json.dumps(self.status(), indent=2), "application/json")


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> DicomEventsPlugin:
    """Validate the `DicomEvents` section, register the REST routes and return the plugin."""
    plugin = DicomEventsPlugin(orthanc, parse(orthanc_config))
    orthanc.RegisterRestCallback(STATUS_ROUTE, plugin.serve_status)
    return plugin
