"""The plugin object Orthanc (or a composed entry) drives: the only module that touches `orthanc`.

Implements the contract every plugin of this repository shares (`create(orthanc, orthanc_config)`,
see "Plugin contract" in the repository README); everything Orthanc-specific goes through `_kit`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import routes
from .__about__ import __version__
from ._kit import OrthancHost, Request, Response, configured_directory, status_handler
from .config import SeriesPrivateTagsConfig, parse
from .reconstruct import Reconstruction
from .routes import Routes
from .shared_run import FOLDER as SHARED_FOLDER
from .shared_run import SharedRun
from .store import SeriesTagStore
from .worker import Worker

NAME = "series-private-tags"
STOP_TIMEOUT_SECONDS = 5.0


class SeriesPrivateTagsPlugin:
    """Keeps configured private tags in series metadata and serves enriched series listings."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: SeriesPrivateTagsConfig) -> None:
        self.config = config
        self.host = OrthancHost(orthanc)
        self.store = SeriesTagStore(self.host, config.metadata_name, config.tags)
        self.reconstruction = Reconstruction()
        self.shared_run = shared_run(orthanc, config)
        self.worker = Worker(
            self.host,
            self.store,
            config.tags,
            self.reconstruction,
            config.storage,
            shared_index=config.shared_index,
            shared_run=self.shared_run,
        )
        self.routes = Routes(
            self.host, self.store, self.reconstruction, self.worker.wake, self.shared_run
        )
        self._kinds = self.host.constants
        self._last_instance: str | None = None  # the last NEW_INSTANCE, until its series comes

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: only enqueues, the worker thread does the work."""
        kinds = self._kinds
        if change_type == kinds.new_instance:
            self.worker.instance_stored(resource_id)
            self._last_instance = resource_id
        elif change_type in (kinds.new_series, kinds.new_child_instance) and level == kinds.series:
            if change_type == kinds.new_series:
                self.store.created(resource_id)  # saves the worker a metadata read
            if self._last_instance is not None:
                # Orthanc signals an instance's series right after the instance (NEW_SERIES or
                # NEW_CHILD_INSTANCE): the worker then needs no lookup to skip it when that
                # series is complete.
                self.worker.instance_in_series(self._last_instance, resource_id)
                self._last_instance = None
        elif level == kinds.series and change_type == kinds.deleted:
            self.worker.series_deleted(resource_id)
        elif level == kinds.series and change_type == kinds.updated_metadata:
            self.worker.series_metadata_changed(resource_id)
        elif change_type == kinds.orthanc_started:
            self.worker.start()
        elif change_type == kinds.orthanc_stopped:
            self.worker.stop(STOP_TIMEOUT_SECONDS)
            self.host.close()

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

    def serve_series_list(self, request: Request) -> Response:
        return self.routes.series_list(request.method, request.get)

    def serve_one_series(self, request: Request) -> Response:
        return self.routes.one_series(request.method, request.group)

    def serve_patient_series(self, request: Request) -> Response:
        return self.routes.children(request.method, "patients", request.group)

    def serve_study_series(self, request: Request) -> Response:
        return self.routes.children(request.method, "studies", request.group)

    def serve_reconstruct(self, request: Request) -> Response:
        return self.routes.reconstruct(request.method, request.body)

    def register_routes(self) -> None:
        register = self.host.register_route
        register("/series-private-tags/status", status_handler(self.status), NAME)
        register(routes.SERIES_LIST, self.serve_series_list, NAME)
        register(routes.SERIES_ONE, self.serve_one_series, NAME)
        register(routes.PATIENT_SERIES, self.serve_patient_series, NAME)
        register(routes.STUDY_SERIES, self.serve_study_series, NAME)
        register(routes.RECONSTRUCT, self.serve_reconstruct, NAME)


def shared_run(orthanc: ModuleType, config: SeriesPrivateTagsConfig) -> SharedRun | None:
    """On a shared index with a storage folder: the reconstruct's lock and progress there."""
    storage = config.storage.get("StorageDirectory")
    if not config.shared_index or not isinstance(storage, str) or not storage:
        return None
    folder = configured_directory(orthanc, storage, "StorageDirectory")
    return SharedRun(os.path.join(folder, SHARED_FOLDER), config.node_name)


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> SeriesPrivateTagsPlugin:
    """Validate the configuration, register the REST routes and return the plugin."""
    plugin = SeriesPrivateTagsPlugin(orthanc, parse(orthanc_config))
    plugin.register_routes()
    return plugin
