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

from . import routes
from .__about__ import __version__
from .config import SeriesPrivateTagsConfig, parse
from .host import HostError, NotFound
from .reconstruct import Reconstruction
from .routes import Response, Routes
from .store import SeriesTagStore
from .worker import Worker

NAME = "series-private-tags"
STOP_TIMEOUT_SECONDS = 5.0
_UNKNOWN_RESOURCE = 17  # orthanc.ErrorCode.UNKNOWN_RESOURCE
_INEXISTENT_ITEM = 7  # orthanc.ErrorCode.INEXISTENT_ITEM: e.g. an absent metadata name


class OrthancHost:
    """The `Host` interface over the `orthanc` module (its internal REST API and log)."""

    def __init__(self, orthanc: ModuleType) -> None:
        self._orthanc = orthanc

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return function(*args)
        except self._orthanc.OrthancException as failure:
            code = failure.args[0] if failure.args else None
            if code in (_UNKNOWN_RESOURCE, _INEXISTENT_ITEM):
                raise NotFound(str(failure)) from failure
            raise HostError(str(failure)) from failure

    def get(self, uri: str) -> bytes:
        return _as_bytes(self._call(self._orthanc.RestApiGet, uri))

    def post(self, uri: str, body: bytes) -> bytes:
        return _as_bytes(self._call(self._orthanc.RestApiPost, uri, body))

    def put(self, uri: str, body: bytes) -> None:
        self._call(self._orthanc.RestApiPut, uri, body)

    def log_info(self, message: str) -> None:
        self._orthanc.LogInfo(message)

    def log_warning(self, message: str) -> None:
        self._orthanc.LogWarning(message)

    def log_error(self, message: str) -> None:
        self._orthanc.LogError(message)


class SeriesPrivateTagsPlugin:
    """Keeps configured private tags in series metadata and serves enriched series listings."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: SeriesPrivateTagsConfig) -> None:
        self._orthanc = orthanc
        self.config = config
        host = OrthancHost(orthanc)
        self.store = SeriesTagStore(host, config.metadata_name, config.tags)
        self.reconstruction = Reconstruction()
        self.worker = Worker(host, self.store, config.tags, self.reconstruction, config.storage)
        self.routes = Routes(host, self.store, self.reconstruction, self.worker.wake)
        change, level = orthanc.ChangeType, orthanc.ResourceType
        self._started, self._stopped = change.ORTHANC_STARTED, change.ORTHANC_STOPPED
        self._new_instance, self._deleted = change.NEW_INSTANCE, change.DELETED
        self._new_series = change.NEW_SERIES
        self._updated_metadata = change.UPDATED_METADATA
        self._series_level = level.SERIES

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: only enqueues, the worker thread does the work."""
        if change_type == self._new_instance:
            self.worker.instance_stored(resource_id)
        elif change_type == self._new_series:
            self.store.created(resource_id)  # saves the worker a metadata read
        elif level == self._series_level and change_type == self._deleted:
            self.worker.series_deleted(resource_id)
        elif level == self._series_level and change_type == self._updated_metadata:
            self.worker.series_metadata_changed(resource_id)
        elif change_type == self._started:
            self.worker.start()
        elif change_type == self._stopped:
            self.worker.stop(STOP_TIMEOUT_SECONDS)

    def status(self) -> dict[str, Any]:
        """What `GET /series-private-tags/status` reports."""
        return {
            "Plugin": NAME,
            "Version": __version__,
            "Metadata": {"Name": self.config.metadata_name, "Index": self.config.metadata_index},
            "Tags": [("!!" if tag.existence_only else "") + tag.name for tag in self.config.tags],
            "PendingChanges": self.worker.pending_changes(),
            "MirroredSeries": self.store.mirrored(),
            "InstancesRead": self.worker.captured_instances,
            "InstancesSkipped": self.worker.skipped_instances,
            "DirectFileReads": self.worker.files.hits if self.worker.files else 0,
            "Reconstruction": self.reconstruction.progress(),
        }

    def serve_status(self, output: Any, uri: str, **request: Any) -> None:
        if request.get("method") != "GET":
            output.SendMethodNotAllowed("GET")
            return
        output.AnswerBuffer(json.dumps(self.status(), indent=2), "application/json")

    def serve_series_list(self, output: Any, uri: str, **request: Any) -> None:
        _answer(output, self.routes.series_list(_method(request), request.get("get") or {}))

    def serve_one_series(self, output: Any, uri: str, **request: Any) -> None:
        _answer(output, self.routes.one_series(_method(request), _group(request)))

    def serve_patient_series(self, output: Any, uri: str, **request: Any) -> None:
        _answer(output, self.routes.children(_method(request), "patients", _group(request)))

    def serve_study_series(self, output: Any, uri: str, **request: Any) -> None:
        _answer(output, self.routes.children(_method(request), "studies", _group(request)))

    def serve_reconstruct(self, output: Any, uri: str, **request: Any) -> None:
        body = request.get("body") or b""
        _answer(output, self.routes.reconstruct(_method(request), _as_bytes(body)))

    def register_routes(self) -> None:
        register = self._orthanc.RegisterRestCallback
        register("/series-private-tags/status", self.serve_status)
        register(routes.SERIES_LIST, self.serve_series_list)
        register(routes.SERIES_ONE, self.serve_one_series)
        register(routes.PATIENT_SERIES, self.serve_patient_series)
        register(routes.STUDY_SERIES, self.serve_study_series)
        register(routes.RECONSTRUCT, self.serve_reconstruct)


def _method(request: Mapping[str, Any]) -> str:
    return str(request.get("method", "GET"))


def _group(request: Mapping[str, Any]) -> str:
    groups = request.get("groups") or ("",)
    return str(groups[0])


def _as_bytes(body: Any) -> bytes:
    return body if isinstance(body, bytes) else str(body).encode()


def _answer(output: Any, response: Response) -> None:
    """Write a route's response through Orthanc's RestOutput."""
    if response.status == 200:
        output.AnswerBuffer(response.body, response.content_type)
    elif response.status == 405:
        output.SendMethodNotAllowed(response.allow or "GET")
    else:
        output.SetHttpHeader("Content-Type", response.content_type)
        # Orthanc 1.10's binding takes the body as text plus its length; the JSON is ASCII.
        output.SendHttpStatus(response.status, response.body.decode(), len(response.body))


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> SeriesPrivateTagsPlugin:
    """Validate the configuration, register the REST routes and return the plugin."""
    plugin = SeriesPrivateTagsPlugin(orthanc, parse(orthanc_config))
    plugin.register_routes()
    return plugin
