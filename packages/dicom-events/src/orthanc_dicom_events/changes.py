"""Orthanc's change log, read as an outbox: pages of `GET /changes` and their sequence numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The change kinds events are made of, as this package numbers them. Changes arrive spelled as
# names (`/changes`, or the callback's values mapped by the plugin kit's OrthancConstants), so
# these numbers never meet Orthanc's own.
DELETED = 1
NEW_INSTANCE = 3
NEW_SERIES = 5
STABLE_PATIENT = 7
STABLE_SERIES = 8
STABLE_STUDY = 9

PATIENT, STUDY, SERIES, INSTANCE = 0, 1, 2, 3
LEVEL_NAMES = {PATIENT: "Patient", STUDY: "Study", SERIES: "Series", INSTANCE: "Instance"}
_LEVELS_BY_NAME = {name: level for level, name in LEVEL_NAMES.items()}


def level_from_name(name: str) -> int | None:
    return _LEVELS_BY_NAME.get(name)


# `/changes` spells the change type as a name; only those an event can come from are mapped.
_CHANGE_TYPES_BY_NAME = {
    "NewInstance": NEW_INSTANCE,
    "NewSeries": NEW_SERIES,
    "StablePatient": STABLE_PATIENT,
    "StableSeries": STABLE_SERIES,
    "StableStudy": STABLE_STUDY,
}


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log (`change_type` is None for kinds no event is made of)."""

    seq: int
    change_type: int | None
    level: int
    resource_id: str
    date: str


@dataclass(frozen=True, slots=True)
class ChangePage:
    changes: tuple[Change, ...]
    last: int
    done: bool


def changes_uri(since: int, limit: int) -> str:
    return f"/changes?since={since}&limit={limit}"


def parse_page(body: str | bytes) -> ChangePage:
    """Parse the JSON answer of `GET /changes`."""
    raw: dict[str, Any] = json.loads(body)
    changes = tuple(
        Change(
            seq=int(entry["Seq"]),
            change_type=_CHANGE_TYPES_BY_NAME.get(entry["ChangeType"]),
            level=_LEVELS_BY_NAME.get(entry["ResourceType"], -1),
            resource_id=str(entry["ID"]),
            date=str(entry.get("Date", "")),
        )
        for entry in raw["Changes"]
    )
    return ChangePage(changes=changes, last=int(raw["Last"]), done=bool(raw["Done"]))
