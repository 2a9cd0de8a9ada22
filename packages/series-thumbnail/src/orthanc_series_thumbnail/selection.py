"""Choose a series' thumbnail instance: remembered in memory, persisted in series metadata.

The in-memory memo is keyed by a fingerprint of the series' instance list, so any added or
deleted instance makes the choice be computed again even before a change notification arrives.
The metadata keeps the choice across restarts; it is only written for a stable series.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._kit import HostError, NotFound, OrthancHost, quote_id
from .ordering import (
    Choice,
    SliceInfo,
    dicom_time_key,
    middle,
    order_by_geometry,
    order_by_instance_number,
    order_by_key,
    order_by_uid,
    slice_info,
)

_MEMO_ENTRIES = 10_000
_TIME_TAGS = (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime"))


class UnknownSeries(Exception):
    """The series does not exist (any more)."""


@dataclass(frozen=True, slots=True)
class SeriesState:
    """What `GET /series/{id}` tells about a series."""

    series_id: str
    instance_ids: tuple[str, ...]
    stable: bool
    # `GET /series/{id}/instances` when that is what the state was read from (choosing needs it).
    listing: tuple[dict[str, Any], ...] | None = None

    @property
    def fingerprint(self) -> str:
        joined = "\n".join(sorted(self.instance_ids)).encode()
        return hashlib.sha1(joined, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class _Memo:
    fingerprint: str
    choice: Choice
    persisted: bool


class ThumbnailSelector:
    """Finds (and remembers) the middle instance and frame of a series."""

    def __init__(self, host: OrthancHost, metadata_name: str, read_back: bool = True) -> None:
        self._host = host
        # Whether a stored choice may be used for a series this process knows nothing of. Not on
        # a shared index: a node that received none of a series' new instances sees it stable
        # and stores its choice, and the node receiving them clears the metadata only once.
        self._read_back = read_back
        self._metadata_uri = "/series/{}/metadata/" + metadata_name
        self._memo: OrderedDict[str, _Memo] = OrderedDict()
        self._series_by_chosen: dict[str, str] = {}  # chosen instance -> its series
        # Series whose metadata this process already cleared: ingesting a long series signals
        # one change per instance, and one DELETE is enough.
        self._cleared: OrderedDict[str, None] = OrderedDict()
        # Series created while this process runs, no choice stored since: nothing to read back.
        self._fresh: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def series_created(self, series_id: str) -> None:
        """A new series: it has no metadata yet, so nothing to clear (no DELETE on its first
        instances) and, until a choice is stored, nothing to read back."""
        with self._lock:
            for known in (self._cleared, self._fresh):
                known[series_id] = None
                while len(known) > _MEMO_ENTRIES:
                    known.popitem(last=False)

    def stored_nothing_yet(self, series_id: str) -> bool:
        """True for a series this process saw created and stored no choice for since: nothing
        can be stored for it (on a shared index another node may have: always False there)."""
        with self._lock:
            return self._read_back and series_id in self._fresh

    def series_state(self, series_id: str) -> SeriesState:
        """Read the series' instance list and stability; UnknownSeries when Orthanc has none."""
        try:
            series = self._host.get_json(f"/series/{quote_id(series_id)}")
        except NotFound as error:
            raise UnknownSeries(series_id) from error
        instances = series.get("Instances") or []
        if not instances:
            raise UnknownSeries(series_id)
        return SeriesState(series_id, tuple(instances), bool(series.get("IsStable")))

    def stable_series_state(self, series_id: str) -> SeriesState:
        """The state of a series Orthanc just reported stable, from its instance listing alone
        (the listing that choosing reads anyway: one request instead of two). Should an
        instance arrive meanwhile, its change resets whatever is chosen now."""
        listing = self._instance_listing(series_id)
        ids = tuple(str(i["ID"]) for i in listing)
        return SeriesState(series_id, ids, stable=True, listing=tuple(listing))

    def _instance_listing(self, series_id: str) -> list[dict[str, Any]]:
        """`GET /series/{id}/instances`; UnknownSeries when Orthanc has none."""
        try:
            listing: list[dict[str, Any]] = self._host.get_json(
                f"/series/{quote_id(series_id)}/instances"
            )
        except HostError as error:
            raise UnknownSeries(series_id) from error
        if not listing:
            raise UnknownSeries(series_id)
        return listing

    def choose(self, state: SeriesState) -> Choice:
        """The thumbnail's instance and frame; persisted in metadata once the series is stable."""
        fingerprint = state.fingerprint
        memo = self._recall(state.series_id)
        if memo is not None and memo.fingerprint == fingerprint:
            if state.stable and not memo.persisted:
                self._persist(state.series_id, fingerprint, memo.choice)
            return memo.choice
        with self._lock:
            stored = state.series_id not in self._fresh
        choice = (
            self._persisted_choice(state, fingerprint)
            if memo is None and state.stable and stored and self._read_back
            else None
        )
        persisted = choice is not None
        if choice is None:
            choice = self.compute(state.series_id, state.listing)
        if state.stable and not persisted:
            self._persist(state.series_id, fingerprint, choice)
        else:
            self._remember(state.series_id, _Memo(fingerprint, choice, persisted))
        return choice

    def needs_reset(self, series_id: str) -> bool:
        """False when a change of the series would find nothing to forget or clear.

        Ingesting a series signals one change per instance: all but the first are no-ops, and
        skipping them here spares the worker a wake-up per stored instance.
        """
        with self._lock:
            return series_id in self._memo or series_id not in self._cleared

    def forget(self, series_id: str, clear_metadata: bool) -> bool:
        """Drop what is known about a series (it changed or was deleted).

        True when the stored choice was cleared; False when there was nothing to clear (not
        asked, a new series, or already cleared since the series last had a choice stored).
        """
        with self._lock:
            self._drop(series_id)
            if not clear_metadata or series_id in self._cleared:
                return False
            self._cleared[series_id] = None
            while len(self._cleared) > _MEMO_ENTRIES:
                self._cleared.popitem(last=False)
        # Nothing stored, or the series is gone: both fine.
        with contextlib.suppress(HostError):
            self._host.delete_metadata(self._metadata_uri.format(quote_id(series_id)))
        return True

    def forget_choice_of(self, instance_id: str) -> None:
        """Forget the memo of the series showing this instance (its file changed), if any."""
        with self._lock:
            series_id = self._series_by_chosen.get(instance_id)
            if series_id is not None:
                self._drop(series_id)

    def series_of_chosen_instance(self, instance_id: str) -> str | None:
        """The series whose remembered choice is this instance, if any."""
        with self._lock:
            return self._series_by_chosen.get(instance_id)

    def compute(self, series_id: str, listing: Sequence[dict[str, Any]] | None = None) -> Choice:
        """Order the series' slices and take the middle one (from `listing`, the series'
        `GET /series/{id}/instances`, when already read)."""
        instances = self._instance_listing(series_id) if listing is None else listing
        slices = [slice_info(i["ID"], i.get("MainDicomTags") or {}) for i in instances]
        ordered = (
            order_by_geometry(slices)
            or order_by_instance_number(slices)
            or self._order_by_time(slices)
            or order_by_uid(slices)
        )
        chosen = middle(ordered)
        files = {str(i["ID"]): str(i.get("FileUuid") or "") for i in instances}
        return replace(
            chosen, content_id=self._content_id(chosen.instance_id, files.get(chosen.instance_id))
        )

    def _content_id(self, instance_id: str, file_uuid: str | None) -> str:
        """The MD5 of the instance's file (the same on every Orthanc holding the same bytes);
        its storage UUID where Orthanc keeps no MD5 (`StoreMD5ForAttachments: false`)."""
        try:
            return self._host.get(
                f"/instances/{quote_id(instance_id)}/attachments/dicom/md5"
            ).decode()
        except HostError:
            return file_uuid or ""

    def _order_by_time(self, slices: Sequence[SliceInfo]) -> list[SliceInfo] | None:
        # Times are not main DICOM tags: read each instance's tags, only in this rare fallback.
        tags: dict[str, dict[str, Any]] = {}
        for s in slices:
            try:
                tags[s.instance_id] = self._host.get_json(
                    f"/instances/{quote_id(s.instance_id)}/simplified-tags"
                )
            except HostError:
                return None
        for date_key, time_key in _TIME_TAGS:

            def key(s: SliceInfo, d: str = date_key, t: str = time_key) -> tuple[str, float] | None:
                return dicom_time_key(tags[s.instance_id].get(d), tags[s.instance_id].get(t))

            ordered = order_by_key(slices, key)
            if ordered is not None:
                return ordered
        return None

    def _persisted_choice(self, state: SeriesState, fingerprint: str) -> Choice | None:
        try:
            instance_id = self._host.get(
                self._metadata_uri.format(quote_id(state.series_id))
            ).decode()
        except (HostError, UnicodeDecodeError):
            return None
        if instance_id not in state.instance_ids:
            return None
        try:
            instance: Any = self._host.get_json(f"/instances/{quote_id(instance_id)}")
        except HostError:
            return None
        info = slice_info(instance_id, instance.get("MainDicomTags") or {})
        content_id = self._content_id(instance_id, str(instance.get("FileUuid") or ""))
        choice = Choice(instance_id, info.frames // 2, content_id)
        self._remember(state.series_id, _Memo(fingerprint, choice, persisted=True))
        return choice

    def _persist(self, series_id: str, fingerprint: str, choice: Choice) -> None:
        persisted = True
        try:
            self._host.put_metadata(
                self._metadata_uri.format(quote_id(series_id)), choice.instance_id.encode()
            )
        except HostError as error:
            persisted = False
            self._host.log_warning(
                f"series-thumbnail: cannot store the choice of series {series_id}: {error}"
            )
        with self._lock:
            self._cleared.pop(series_id, None)
            self._fresh.pop(series_id, None)
        self._remember(series_id, _Memo(fingerprint, choice, persisted))

    def _recall(self, series_id: str) -> _Memo | None:
        with self._lock:
            memo = self._memo.get(series_id)
            if memo is not None:
                self._memo.move_to_end(series_id)
            return memo

    def _remember(self, series_id: str, memo: _Memo) -> None:
        with self._lock:
            self._drop(series_id)
            self._memo[series_id] = memo
            self._series_by_chosen[memo.choice.instance_id] = series_id
            while len(self._memo) > _MEMO_ENTRIES:
                self._drop(next(iter(self._memo)))

    def _drop(self, series_id: str) -> None:
        """Forget one memo entry; the caller holds the lock."""
        memo = self._memo.pop(series_id, None)
        if memo is not None and self._series_by_chosen.get(memo.choice.instance_id) == series_id:
            del self._series_by_chosen[memo.choice.instance_id]
