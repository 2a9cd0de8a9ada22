"""The plugin object Orthanc (or a composed entry) drives: the only module that touches `orthanc`.

Implements the contract every plugin of this repository shares (`create(orthanc, orthanc_config)`,
see "Plugin contract" in the repository README); everything Orthanc-specific goes through `_kit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .__about__ import __version__
from ._kit import ID_SEGMENT, OrthancHost, Request, Response, status_handler
from .config import SeriesThumbnailConfig, parse
from .rendering import RENDERING_VERSION, warm_up
from .service import ThumbnailService
from .worker import ChangeWorker

NAME = "series-thumbnail"
# Orthanc matches the whole URI: no other route is hit.
THUMBNAIL_ROUTE = f"/series/{ID_SEGMENT}/thumbnail"
STATUS_ROUTE = "/series-thumbnail/status"


class SeriesThumbnailPlugin:
    """Serves a small image of the middle slice of a series."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None

    def __init__(self, orthanc: ModuleType, config: SeriesThumbnailConfig) -> None:
        self.config = config
        self.host = OrthancHost(orthanc)
        self.service = ThumbnailService(self.host, config)
        self.worker = ChangeWorker(
            self.host,
            on_changed=self.service.series_changed,
            on_stable=self.service.prepare,
            on_instance_deleted=self.service.instance_deleted,
            on_store=self.service.store_default,
        )
        self.service.store_later = self.worker.store_requested
        self._kinds = self.host.constants
        self._updates = frozenset({self._kinds.updated_metadata, self._kinds.updated_attachment})

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: only queues work, the worker thread does the REST calls."""
        kinds = self._kinds
        if change_type in self._updates and level == kinds.series:
            self.worker.note_update(resource_id)  # maybe the echo of the worker's own write
        else:
            self.worker.note_change()
        if change_type == kinds.orthanc_started:
            self.worker.start()
        elif change_type == kinds.orthanc_stopped:
            self.worker.stop()
            self.host.close()
        elif level == kinds.series:
            if change_type == kinds.new_series:
                self.service.selector.series_created(resource_id)
            elif change_type == kinds.stable_series:
                self.worker.series_stable(resource_id)
            elif change_type == kinds.deleted or (
                change_type == kinds.new_child_instance
                and self.service.selector.needs_reset(resource_id)
            ):
                self.worker.series_changed(resource_id)
        elif level == kinds.instance:
            if change_type == kinds.deleted:
                self.worker.instance_deleted(resource_id)
            elif change_type == kinds.new_instance:
                # Same ID again means the instance was overwritten: its old renderings are stale.
                self.service.instance_stored(resource_id)

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
            "Renderings": self.service.renderings(),
            "Attachment": (
                self.service.attachments.stats()
                if self.service.attachments is not None
                else {"Enabled": False}
            ),
            "PendingChanges": self.worker.pending(),
        }

    def thumbnail(self, request: Request) -> Response:
        """`GET /series/{id}/thumbnail`."""
        return self.service.handle(request.method, request.group, request.get, request.headers)

    def register_routes(self) -> None:
        self.host.register_route(STATUS_ROUTE, status_handler(self.status), NAME)
        self.host.register_route(THUMBNAIL_ROUTE, self.thumbnail, NAME)


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> SeriesThumbnailPlugin:
    """Validate the configuration, register the REST routes and return the plugin."""
    plugin = SeriesThumbnailPlugin(orthanc, parse(orthanc_config))
    warm_up()
    plugin.register_routes()
    return plugin
