"""The thumbnail route's logic, independent of Orthanc's callback machinery."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from http import HTTPStatus

from ._kit import OrthancHost, Response, error_response, method_not_allowed
from .cache import RenderCache, Rendered
from .config import SeriesThumbnailConfig
from .http_rules import BadRequest, cache_control, etag, matches_if_none_match, parse_query
from .ordering import Choice
from .rendering import MIME_TYPES, ImageFormat, NotDisplayable, RenderSpec, render
from .selection import ThumbnailSelector, UnknownSeries


class ThumbnailService:
    """Answers `GET /series/{id}/thumbnail` and keeps the choice and the bytes cached."""

    def __init__(self, host: OrthancHost, config: SeriesThumbnailConfig) -> None:
        self._host = host
        self._config = config
        self.selector = ThumbnailSelector(
            host, config.metadata_name, read_back=not config.shared_index
        )
        self.cache = RenderCache(config.cache_megabytes * 1024 * 1024)

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
            choice = self.selector.choose(self.selector.series_state(series_id))
        except UnknownSeries:
            return _error(HTTPStatus.NOT_FOUND, "unknown series", series_id)
        spec = self._spec(choice, query.size, query.image_format)
        validator = etag(spec)
        caching = {"ETag": validator, "Cache-Control": cache_control(self._config.max_age_seconds)}
        caching["Vary"] = "Accept"
        if matches_if_none_match(headers.get("if-none-match"), validator):
            return Response(HTTPStatus.NOT_MODIFIED, headers=caching)
        rendered = self.rendered(spec)
        if rendered.body is None:
            return _error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"no thumbnail: {rendered.refusal}", series_id
            )
        return Response(HTTPStatus.OK, rendered.body, MIME_TYPES[spec.image_format], caching)

    def rendered(self, spec: RenderSpec) -> Rendered:
        """The cached thumbnail, rendered now on a miss."""
        cached = self.cache.get(spec)
        if cached is not None:
            return cached
        try:
            result = Rendered(body=render(self._host, spec))
        except NotDisplayable as reason:
            result = Rendered(refusal=str(reason))
        self.cache.put(spec, result)
        return result

    def prepare(self, series_id: str) -> None:
        """For a stable series: store its choice and render the default thumbnail ahead of time."""
        try:
            choice = self.selector.choose(self.selector.series_state(series_id))
        except UnknownSeries:
            return  # deleted meanwhile
        if self._config.prerender_on_stable:
            self.rendered(self._spec(choice, self._config.default_size, "jpeg"))

    def series_changed(self, series_id: str) -> None:
        """A series gained or lost instances (or was deleted): choose again next time."""
        self.selector.forget(series_id, clear_metadata=True)

    def instance_stored(self, instance_id: str) -> None:
        """A stored instance; its ID seen before means it was overwritten with other pixels."""
        self.cache.forget_instance(instance_id)
        self.selector.forget_choice_of(instance_id)

    def instance_deleted(self, instance_id: str) -> None:
        """Drop the instance's thumbnails; a series that showed it must choose again."""
        self.cache.forget_instance(instance_id)
        series_id = self.selector.series_of_chosen_instance(instance_id)
        if series_id is not None:
            self.selector.forget(series_id, clear_metadata=True)

    def _spec(self, choice: Choice, size: int, image_format: ImageFormat) -> RenderSpec:
        return RenderSpec(
            choice.instance_id,
            choice.frame,
            size,
            image_format,
            self._config.jpeg_quality,
            choice.content_id,
        )


def _error(status: HTTPStatus, message: str, series_id: str) -> Response:
    return error_response(int(status), message, Series=series_id)
