"""Reads what events need about a resource through Orthanc's REST API, with small caches."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from . import changes as ch
from ._kit import NotFound, OrthancHost, quote_id

_PARENT_KEYS = {"instances": "ParentSeries", "series": "ParentStudy", "studies": "ParentPatient"}
_LEVELS = {"instances": ch.INSTANCE, "series": ch.SERIES, "studies": ch.STUDY}
_BULK_LEVELS = {"series": "Series", "studies": "Study", "patients": "Patient"}


class _Lru:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


# A series listing teaches the parent of all its instances in one call; larger series are not
# listed (their links would push everything else out of the cache).
PRIME_MAX_INSTANCES = 20_000
# Instances described per `POST /tools/bulk-content` call: one index lookup per instance instead of
# two REST round trips, in answers of a few hundred kB at most.
BULK_CHUNK = 250


class ResourceReader:
    """Fetches resources and their ancestors; parents never change, so they are cached.

    Every REST call competes with Orthanc's stores for its index lock, so the instance -> series
    links are learnt a series at a time: the first instance met of a series costs one call for
    itself and one for its series' listing, after which its siblings need none. A series listed
    while it was still growing is listed again once as many of its instances missed the cache
    as the listing held (the listings stay linear in the series' size overall).
    """

    def __init__(self, host: OrthancHost, cache_size: int = 50_000) -> None:
        self._host = host
        self._parents = _Lru(cache_size)
        self._listed: _Lru = _Lru(1_000)  # series -> "<instances listed>/<misses since>"
        self.new_links: list[tuple[str, str, int]] = []  # (child, parent, level of the child)
        self._bulk_supported = True
        self._prefetched: dict[tuple[str, str], dict[str, Any]] = {}  # read once, then dropped

    def forget_prefetched(self) -> None:
        """Drop what a page prefetched and did not use (it would be stale by the next page)."""
        self._prefetched.clear()

    def describe_instances(self, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Metadata of each instance still stored, its parent link learnt on the way.

        One `POST /tools/bulk-content` per chunk (Orthanc >= 1.9.4), which skips instances deleted
        since; on an older Orthanc, one `GET .../metadata?expand` (and parent lookup) each.
        """
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(instance_ids), BULK_CHUNK):
            chunk = instance_ids[start : start + BULK_CHUNK]
            if self._bulk_supported:
                try:
                    found.update(self._describe_in_bulk(chunk))
                    continue
                except NotFound:
                    self._bulk_supported = False  # no such route before Orthanc 1.9.4
            for instance_id in chunk:
                try:
                    self.series_of_instance(instance_id)
                    found[instance_id] = self.get_json(
                        f"/instances/{quote_id(instance_id)}/metadata?expand"
                    )
                except NotFound:
                    pass  # deleted since
        self._learn_ancestors({self._parents.get(i) or "" for i in found} - {""})
        return found

    def _learn_ancestors(self, series_ids: set[str]) -> None:
        """The study and patient of the series met in a page: one bulk call per level for those
        not cached, instead of two lookups per new series."""
        for level, collection in (("Series", "series"), ("Study", "studies")):
            unknown = sorted(i for i in series_ids if self._parents.get(i) is None)
            if unknown and self._bulk_supported:
                self.prefetch(collection, unknown, level)
            series_ids = {self._parents.get(i) or "" for i in series_ids} - {""}

    def prefetch(self, collection: str, ids: list[str], level: str | None = None) -> None:
        """Read resources in bulk now (parents learnt); the next `resource()` of each is served
        from what was read (a page's stable events: one call, not one per resource)."""
        if not self._bulk_supported:
            return
        level = level or _BULK_LEVELS[collection]
        for start in range(0, len(ids), BULK_CHUNK):
            body = {"Resources": ids[start : start + BULK_CHUNK], "Level": level, "Metadata": False}
            try:
                answer = json.loads(self._host.post("/tools/bulk-content", json.dumps(body)))
            except NotFound:
                self._bulk_supported = False  # no such route before Orthanc 1.9.4
                return
            for item in answer:
                resource_id = item.get("ID")
                if isinstance(resource_id, str):
                    parent = item.get(_PARENT_KEYS.get(collection, ""))
                    if isinstance(parent, str):
                        self._remember(resource_id, parent, _LEVELS[collection])
                    self._prefetched[(collection, resource_id)] = item

    def _describe_in_bulk(self, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        body = {"Resources": instance_ids, "Level": "Instance", "Metadata": True}
        answer = json.loads(self._host.post("/tools/bulk-content", json.dumps(body)))
        found: dict[str, dict[str, Any]] = {}
        for item in answer:
            instance_id, parent = item.get("ID"), item.get("ParentSeries")
            if isinstance(instance_id, str) and isinstance(parent, str):
                self._remember(instance_id, parent, ch.INSTANCE)
                metadata = item.get("Metadata")
                found[instance_id] = metadata if isinstance(metadata, dict) else {}
        return found

    def get_json(self, uri: str) -> Any:
        return self._host.get_json(uri)

    def raw(self, uri: str) -> bytes:
        return self._host.get(uri)

    def resource(self, collection: str, resource_id: str) -> dict[str, Any]:
        """`GET /{collection}/{id}` (or what `prefetch` read); remembers the parent link."""
        prefetched = self._prefetched.pop((collection, resource_id), None)
        if prefetched is not None:
            return prefetched
        body: dict[str, Any] = self.get_json(f"/{collection}/{quote_id(resource_id)}")
        parent = body.get(_PARENT_KEYS.get(collection, ""))
        if isinstance(parent, str):
            self._remember(resource_id, parent, _LEVELS[collection])
        return body

    def parent(self, collection: str, resource_id: str) -> str:
        cached = self._parents.get(resource_id)
        if cached is not None:
            return cached
        return str(self.resource(collection, resource_id)[_PARENT_KEYS[collection]])

    def series_of_instance(self, instance_id: str) -> str:
        cached = self._parents.get(instance_id)
        if cached is not None:
            return cached
        series_id = self.parent("instances", instance_id)
        listed, misses = (int(n) for n in (self._listed.get(series_id) or "0/0").split("/"))
        misses += 1
        if misses > listed:
            listed, misses = self._list_series(series_id), 0
        self._listed.put(series_id, f"{listed}/{misses}")
        return series_id

    def _list_series(self, series_id: str) -> int:
        """Learn the parent of every instance the series holds now; returns how many."""
        body = self.resource("series", series_id)
        instances = body.get("Instances", [])
        if len(instances) > PRIME_MAX_INSTANCES:
            return len(instances)
        for instance_id in instances:
            self._remember(str(instance_id), series_id, ch.INSTANCE)
        return len(instances)

    def ancestors_of_series(self, series_id: str) -> tuple[str, str]:
        """(study, patient) of a series."""
        study = self.parent("series", series_id)
        return study, self.parent("studies", study)

    def take_new_links(self) -> list[tuple[str, str, int]]:
        """Parent links learnt since the last call (for the deleted-resources spool)."""
        links, self.new_links = self.new_links, []
        return links

    def _remember(self, child: str, parent: str, level: int) -> None:
        if self._parents.get(child) is None:
            self._parents.put(child, parent)
            self.new_links.append((child, parent, level))

    def all_ids(self, collection: str, page: int = 10_000) -> set[str]:
        """Every resource of a level Orthanc holds now, read a page at a time."""
        found: set[str] = set()
        since = 0
        while True:
            ids = self.get_json(f"/{collection}?since={since}&limit={page}")
            found.update(str(resource_id) for resource_id in ids)
            if len(ids) < page:
                return found
            since += page
