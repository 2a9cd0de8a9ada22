"""The plugin object Orthanc (or a composed entry) drives: the only module that touches `orthanc`.

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
from .host import RestError
from .rendering import RENDERING_VERSION, warm_up
from .service import Response, ThumbnailService
from .worker import ChangeWorker

NAME = "series-thumbnail"
THUMBNAIL_ROUTE = "/series/([^/]+)/thumbnail"  # Orthanc matches the whole URI: no other route hit
STATUS_ROUTE = "/series-thumbnail/status"


class OrthancHost:
    """The `Host` interface over the `orthanc` module."""

    def __init__(self, orthanc: ModuleType) -> None:
        self._orthanc = orthanc

    def get(self, uri: str) -> bytes:
        try:
            answer = self._orthanc.RestApiGet(uri)
        except Exception as error:
            raise RestError(f"GET {uri}: {error}") from None
        return answer if isinstance(answer, bytes) else str(answer).encode()

    def put(self, uri: str, body: bytes) -> None:
        try:
            self._orthanc.RestApiPut(uri, body)
        except Exception as error:
            raise RestError(f"PUT {uri}: {error}") from None

    def delete(self, uri: str) -> None:
        try:
            self._orthanc.RestApiDelete(uri)
        except Exception as error:
            raise RestError(f"DELETE {uri}: {error}") from None

    def log_warning(self, message: str) -> None:
        self._orthanc.LogWarning(message)

    def log_error(self, message: str) -> None:
        self._orthanc.LogError(message)


class SeriesThumbnailPlugin:
    """Serves a small image of the middle slice of a series."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: SeriesThumbnailConfig) -> None:
        self._orthanc = orthanc
        self.config = config
        host = OrthancHost(orthanc)
        self.service = ThumbnailService(host, config)
        self.worker = ChangeWorker(
            host,
            on_changed=self.service.series_changed,
            on_stable=self.service.prepare,
            on_instance_deleted=self.service.instance_deleted,
        )
        change, resource = orthanc.ChangeType, orthanc.ResourceType
        self._started, self._stopped = int(change.ORTHANC_STARTED), int(change.ORTHANC_STOPPED)
        self._series_level, self._instance_level = int(resource.SERIES), int(resource.INSTANCE)
        self._stable, self._deleted = int(change.STABLE_SERIES), int(change.DELETED)
        self._new_child, self._new_instance = (
            int(change.NEW_CHILD_INSTANCE),
            int(change.NEW_INSTANCE),
        )

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: only queues work, the worker thread does the REST calls."""
        if change_type == self._started:
            self.worker.start()
        elif change_type == self._stopped:
            self.worker.stop()
        elif level == self._series_level:
            if change_type == self._stable:
                self.worker.series_stable(resource_id)
            elif change_type == self._deleted or (
                change_type == self._new_child and self.service.selector.needs_reset(resource_id)
            ):
                self.worker.series_changed(resource_id)
        elif level == self._instance_level:
            if change_type == self._deleted:
                self.worker.instance_deleted(resource_id)
            elif change_type == self._new_instance:
                # Same ID again means the instance was overwritten: its old renderings are stale.
                self.service.cache.forget_instance(resource_id)

    def status(self) -> dict[str, Any]:
        """What `GET /series-thumbnail/status` reports."""
        return {
            "Plugin": NAME,
            "Version": __version__,
            "RenderingVersion": RENDERING_VERSION,
            "Metadata": {"Name": self.config.metadata_name, "Index": self.config.metadata_index},
            "DefaultSize": self.config.default_size,
            "JpegQuality": self.config.jpeg_quality,
            "MaxAgeSeconds": self.config.max_age_seconds,
            "PrerenderOnStable": self.config.prerender_on_stable,
            "Cache": self.service.cache.stats(),
            "PendingChanges": self.worker.pending(),
        }

    def serve_status(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        output.AnswerBuffer(json.dumps(self.status(), indent=2), "application/json")

    def serve_thumbnail(self, output: Any, uri: str, **request: Any) -> None:
        """`GET /series/{id}/thumbnail`; every failure becomes a JSON error, never a 500."""
        try:
            groups = request.get("groups") or ("",)
            response = self.service.handle(
                str(request.get("method", "")),
                str(groups[0]),
                request.get("get") or {},
                request.get("headers") or {},
            )
            _send(output, response)
        except Exception as error:
            self._orthanc.LogError(f"series-thumbnail: cannot answer {uri}: {error!r}")
            body = json.dumps({"HttpStatus": 503, "Message": f"thumbnail unavailable: {error!r}"})
            output.SendHttpStatus(503, body, len(body))


def _send(output: Any, response: Response) -> None:
    if response.status == 405:
        output.SendMethodNotAllowed("GET")
        return
    for key, value in response.headers.items():
        output.SetHttpHeader(key, value)
    if response.status == 200:
        output.AnswerBuffer(response.body, response.content_type)
    elif not response.body:
        output.SendHttpStatusCode(response.status)
    else:
        # Orthanc 1.10's SendHttpStatus takes the body as str plus its length in bytes.
        output.SetHttpHeader("Content-Type", response.content_type)
        output.SendHttpStatus(response.status, response.body.decode(), len(response.body))


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> SeriesThumbnailPlugin:
    """Validate the configuration, register the REST routes and return the plugin."""
    plugin = SeriesThumbnailPlugin(orthanc, parse(orthanc_config))
    warm_up()
    orthanc.RegisterRestCallback(STATUS_ROUTE, plugin.serve_status)
    orthanc.RegisterRestCallback(THUMBNAIL_ROUTE, plugin.serve_thumbnail)
    return plugin
