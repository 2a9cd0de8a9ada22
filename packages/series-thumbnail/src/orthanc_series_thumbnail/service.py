"""The thumbnail route's logic, independent of Orthanc's callback machinery."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping
from http import HTTPStatus

from ._kit import OrthancHost, Response, error_response, method_not_allowed
from .attachment import AttachmentStore
from .cache import RenderCache, Rendered
from .config import SeriesThumbnailConfig
from .http_rules import BadRequest, cache_control, etag, matches_if_none_match, parse_query
from .ordering import Choice
from .rendering import MIME_TYPES, ImageFormat, NotDisplayable, RenderSpec, render
from .selection import SeriesState, ThumbnailSelector, UnknownSeries


class ThumbnailService:
    """Answers `GET /series/{id}/thumbnail` and keeps the choice and the bytes cached."""

    def __init__(self, host: OrthancHost, config: SeriesThumbnailConfig) -> None:
        self._host = host
        self._config = config
        self.selector = ThumbnailSelector(
            host, config.metadata_name, read_back=not config.shared_index
        )
        self.cache = RenderCache(config.cache_megabytes * 1024 * 1024)
        self.attachments = (
            AttachmentStore(host, config.attachment_name, config.attachment_index)
            if config.attachment_name is not None and config.attachment_index is not None
            else None
        )
        # Asks the worker to store a stable series' default thumbnail (set by the plugin).
        self.store_later: Callable[[str], None] = lambda series_id: None
        self._renderings = 0
        self._count_lock = threading.Lock()

    def handle(
        self, method: str, series_id: str, get: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        """Answer one request; never raises, never answers 500."""
        try:
            return self._handle(method, series_id, get, headers)
        except Exception as error:
            self._host.log_error(
                f"series-thumbnail: unexpected error for series {series_id}: {error!r}\n"
                + traceback.format_exc()
            )
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, "thumbnail unavailable now", series_id)

    def _handle(
        self, method: str, series_id: str, get: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        if method != "GET":
            return method_not_allowed("GET")
        try:
            query = parse_query(get, headers, self._config.default_size)
        except BadRequest as error:
            return _error(HTTPStatus.BAD_REQUEST, str(error), series_id)
        try:
            state = self.selector.series_state(series_id)
            choice = self.selector.choose(state)
        except UnknownSeries:
            return _error(HTTPStatus.NOT_FOUND, "unknown series", series_id)
        spec = self._spec(choice, query.size, query.image_format)
        validator = etag(spec)
        caching = {"ETag": validator, "Cache-Control": cache_control(self._config.max_age_seconds)}
        caching["Vary"] = "Accept"
        if matches_if_none_match(headers.get("if-none-match"), validator):
            return Response(HTTPStatus.NOT_MODIFIED, headers=caching)
        rendered = self.rendered(spec, series_id)
        self._store_if_missing(state, spec, rendered)
        if rendered.body is None:
            return _error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"no thumbnail: {rendered.refusal}", series_id
            )
        return Response(HTTPStatus.OK, rendered.body, MIME_TYPES[spec.image_format], caching)

    def rendered(self, spec: RenderSpec, series_id: str | None = None) -> Rendered:
        """The cached thumbnail; else the series' stored one (default size and format only);
        else rendered now."""
        cached = self.cache.get(spec)
        if cached is not None:
            return cached
        stored = self._stored(series_id, spec)
        if stored is not None:
            result = Rendered(body=stored)
        else:
            with self._count_lock:
                self._renderings += 1
            try:
                result = Rendered(body=render(self._host, spec))
            except NotDisplayable as reason:
                result = Rendered(refusal=str(reason))
        self.cache.put(spec, result)
        return result

    def renderings(self) -> int:
        """How many thumbnails this process rendered (neither cached nor stored)."""
        with self._count_lock:
            return self._renderings

    def prepare(self, series_id: str) -> None:
        """For a stable series: store its choice and, with `PrerenderOnStable`, render the default
        thumbnail ahead of time and store it as the series' attachment."""
        # A series created while this process ran has no stored thumbnail to read back yet.
        nothing_stored = self.selector.stored_nothing_yet(series_id)
        try:
            state = self.selector.stable_series_state(series_id)
            choice = self.selector.choose(state)
        except UnknownSeries:
            return  # deleted meanwhile
        if self._config.prerender_on_stable:
            self._render_and_store(state, choice, read_stored=not nothing_stored)

    def store_default(self, series_id: str) -> None:
        """Store the default thumbnail of a stable series that a request found not stored."""
        try:
            state = self.selector.series_state(series_id)
            choice = self.selector.choose(state)
        except UnknownSeries:
            return
        if state.stable:
            self._render_and_store(state, choice)

    def _render_and_store(
        self, state: SeriesState, choice: Choice, read_stored: bool = True
    ) -> None:
        spec = self._spec(choice, self._config.default_size, "jpeg")
        rendered = self.rendered(spec, state.series_id if read_stored else None)
        if self.attachments is not None and state.stable and rendered.body is not None:
            self.attachments.save(state.series_id, _key(spec), rendered.body)

    def series_changed(self, series_id: str) -> None:
        """A series gained or lost instances (or was deleted): choose again next time."""
        if self.selector.forget(series_id, clear_metadata=True) and self.attachments is not None:
            self.attachments.remove(series_id)

    def instance_stored(self, instance_id: str) -> None:
        """A stored instance; its ID seen before means it was overwritten with other pixels."""
        self.cache.forget_instance(instance_id)
        self.selector.forget_choice_of(instance_id)

    def instance_deleted(self, instance_id: str) -> None:
        """Drop the instance's thumbnails; a series that showed it must choose again."""
        self.cache.forget_instance(instance_id)
        series_id = self.selector.series_of_chosen_instance(instance_id)
        if series_id is not None:
            self.series_changed(series_id)

    def _persisted(self, spec: RenderSpec) -> bool:
        """Only the default thumbnail is stored as an attachment; other sizes and PNG stay in
        memory (one attachment per series, overwritten in place, never a collection)."""
        return spec.size == self._config.default_size and spec.image_format == "jpeg"

    def _stored(self, series_id: str | None, spec: RenderSpec) -> bytes | None:
        if self.attachments is None or series_id is None or not self._persisted(spec):
            return None
        return self.attachments.load(series_id, _key(spec))

    def _store_if_missing(self, state: SeriesState, spec: RenderSpec, rendered: Rendered) -> None:
        """A stable series' default thumbnail rendered for a request but not stored (the series
        was stable before this plugin stored thumbnails, say): the worker stores it."""
        if (
            self.attachments is not None
            and state.stable
            and rendered.body is not None
            and self._persisted(spec)
            and not self.attachments.holds(state.series_id, _key(spec))
        ):
            self.store_later(state.series_id)

    def _spec(self, choice: Choice, size: int, image_format: ImageFormat) -> RenderSpec:
        return RenderSpec(
            choice.instance_id,
            choice.frame,
            size,
            image_format,
            self._config.jpeg_quality,
            choice.content_id,
        )


def _key(spec: RenderSpec) -> str:
    """What a stored thumbnail was rendered from: its ETag, which covers every input."""
    return etag(spec).strip('"')


def _error(status: HTTPStatus, message: str, series_id: str) -> Response:
    return error_response(int(status), message, Series=series_id)
