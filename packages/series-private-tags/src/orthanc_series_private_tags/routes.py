"""The `/with-private-tags/...` REST routes, as functions from a request to a response.

Each series object is Orthanc's own (the answer of `GET /series/{id}`) plus `MainPrivateDicomTags`,
so a client switches by changing the URL prefix. Listings are one call to Orthanc plus the
in-memory mirror of the metadata: no call per series.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._kit import (
    ID_SEGMENT,
    HostError,
    NotFound,
    OrthancHost,
    Response,
    error_response,
    json_response,
    method_not_allowed,
    quote_id,
)
from .enrich import enrich_series, enrich_series_list
from .reconstruct import Reconstruction
from .shared_run import SharedRun
from .store import SeriesTagStore

PREFIX = "/with-private-tags"
SERIES_LIST = f"{PREFIX}/series"
SERIES_ONE = f"{PREFIX}/series/{ID_SEGMENT}"
PATIENT_SERIES = f"{PREFIX}/patients/{ID_SEGMENT}/series"
STUDY_SERIES = f"{PREFIX}/studies/{ID_SEGMENT}/series"
# Orthanc 1.10 refuses to list the series of a patient (or study) named by a lower level's ID.
_WRONG_LEVEL = 5  # ErrorCode.BAD_PARAMETER_TYPE: "Bad type for a parameter"
RECONSTRUCT = f"{PREFIX}/reconstruct"

_UNSIGNED = re.compile(r"^[0-9]{1,18}$")


class Routes:
    """Answers the plugin's routes from Orthanc's REST API and the metadata mirror."""

    def __init__(
        self,
        host: OrthancHost,
        store: SeriesTagStore,
        reconstruction: Reconstruction,
        wake_worker: Callable[[], None],
        shared_run: SharedRun | None = None,
    ) -> None:
        self._host = host
        self._store = store
        self._reconstruction = reconstruction
        self._wake_worker = wake_worker
        self._shared = shared_run

    def _tags_json(self, series_id: str) -> bytes:
        return self._store.get(series_id).json

    def series_list(self, method: str, query: Mapping[str, str]) -> Response:
        """GET /with-private-tags/series[?since=N&limit=M]"""
        if method != "GET":
            return method_not_allowed("GET")
        paging = _paging(query)
        if isinstance(paging, Response):
            return paging
        uri = "/series?expand" + (f"&since={paging[0]}&limit={paging[1]}" if paging else "")
        return self._list(uri)

    def one_series(self, method: str, series_id: str) -> Response:
        """GET /with-private-tags/series/{id}"""
        if method != "GET":
            return method_not_allowed("GET")
        try:
            answer = self._host.get(f"/series/{quote_id(series_id)}")
            return Response(200, enrich_series(answer, self._tags_json))
        except NotFound:
            return error_response(404, f"Unknown series: {series_id}")

    def children(self, method: str, level: str, parent_id: str) -> Response:
        """GET /with-private-tags/{patients|studies}/{id}/series"""
        if method != "GET":
            return method_not_allowed("GET")
        parent = f"/{level}/{quote_id(parent_id)}"
        try:
            response = self._list(f"{parent}/series")
        except HostError as failure:
            if failure.code != _WRONG_LEVEL:
                raise
            return error_response(404, f"Unknown {_singular(level)}: {parent_id}")
        # Orthanc answers [] for the ID of a resource of another level: that is no such parent.
        if response.status == 200 and response.body.strip() == b"[]":
            try:
                self._host.get(parent)
            except NotFound:
                return error_response(404, f"Unknown {_singular(level)}: {parent_id}")
        if response.status == 404:
            return error_response(404, f"Unknown {_singular(level)}: {parent_id}")
        return response

    def _list(self, uri: str) -> Response:
        try:
            answer = self._host.get(uri)
            return Response(200, enrich_series_list(answer, self._tags_json))
        except NotFound:
            return error_response(404, "Unknown resource")

    def reconstruct(self, method: str, body: bytes) -> Response:
        """GET progress; POST start or resume (all, or {"Series": id}); DELETE stop.

        With nodes sharing the index, one node runs at a time: a POST elsewhere answers 409 with
        that run's progress, GET shows it on every node, DELETE on any node stops it.
        """
        shared = self._shared
        if method == "GET":
            return json_response(200, self._progress())
        if method == "DELETE":
            if shared is not None and shared.running_elsewhere():
                shared.request_stop()
                return json_response(202, {**self._progress(), "StopRequested": True})
            self._reconstruction.stop()
            self._wake_worker()  # publishes the stop for the other nodes
            return json_response(200, self._progress())
        if method != "POST":
            return method_not_allowed("GET,POST,DELETE")
        if shared is not None and not shared.claim():
            return error_response(
                409, "a reconstruct runs on another node", Progress=self._progress()
            )
        request = _json_object(body)
        if request is None:
            return error_response(
                400, 'Expected an empty body or a JSON object like {"Series": "<id>"}'
            )
        series_id = request.get("Series")
        if series_id is not None:
            if not _is_identifier(series_id):
                return error_response(400, '"Series" must be a series ID (string)')
            try:
                self._host.get(f"/series/{quote_id(series_id)}")
            except NotFound:
                return error_response(404, f"Unknown series: {series_id}")
            self._reconstruction.add(series_id)
        else:
            all_series = json.loads(self._host.get("/series"))
            self._reconstruction.start(str(series) for series in all_series)
        if shared is not None:
            shared.publish(self._progress(), force=True)
        self._wake_worker()
        return json_response(202, self._progress())

    def _progress(self) -> dict[str, Any]:
        """This node's run, or on a shared index the run any node made or makes."""
        local = self._reconstruction.progress()
        shared = self._shared
        if shared is None:
            return local
        if shared.claimed:
            return {**local, "Node": shared.node}
        return shared.read() or {**local, "Node": shared.node}


def _paging(query: Mapping[str, str]) -> tuple[int, int] | Response | None:
    """Orthanc's own rule: `since` and `limit` go together, both non-negative integers."""
    since, limit = query.get("since"), query.get("limit")
    if since is None and limit is None:
        return None
    if since is None or limit is None:
        return error_response(400, 'The "since" and "limit" arguments must be given together')
    if not _UNSIGNED.match(since) or not _UNSIGNED.match(limit):
        return error_response(400, '"since" and "limit" must be non-negative integers')
    return int(since), int(limit)


def _json_object(body: bytes) -> dict[str, Any] | None:
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _singular(level: str) -> str:
    return {"patients": "patient", "studies": "study"}.get(level, level)


def _is_identifier(value: object) -> bool:
    """A non-empty string that can go into a URI (JSON strings may hold lone surrogates)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
