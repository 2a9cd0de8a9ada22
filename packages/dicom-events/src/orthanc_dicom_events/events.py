"""The event types and which change of Orthanc each one comes from."""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from typing import Any

from . import changes as ch
from .config import EventSelection


class EventType(StrEnum):
    INSTANCE_STORED = "dicom.instance.stored"
    SERIES_STABLE = "dicom.series.stable"
    STUDY_STABLE = "dicom.study.stable"
    PATIENT_STABLE = "dicom.patient.stable"
    INSTANCE_DELETED = "dicom.instance.deleted"
    SERIES_DELETED = "dicom.series.deleted"
    STUDY_DELETED = "dicom.study.deleted"
    PATIENT_DELETED = "dicom.patient.deleted"


STABLE_TYPES = {
    ch.STABLE_SERIES: EventType.SERIES_STABLE,
    ch.STABLE_STUDY: EventType.STUDY_STABLE,
    ch.STABLE_PATIENT: EventType.PATIENT_STABLE,
}
DELETED_TYPES = {
    ch.INSTANCE: EventType.INSTANCE_DELETED,
    ch.SERIES: EventType.SERIES_DELETED,
    ch.STUDY: EventType.STUDY_DELETED,
    ch.PATIENT: EventType.PATIENT_DELETED,
}


def enabled_types(selection: EventSelection) -> frozenset[EventType]:
    """The event types the configuration turns on."""
    flags = {
        EventType.INSTANCE_STORED: selection.stored_instance,
        EventType.SERIES_STABLE: selection.stable_series,
        EventType.STUDY_STABLE: selection.stable_study,
        EventType.PATIENT_STABLE: selection.stable_patient,
        EventType.INSTANCE_DELETED: selection.deleted_instance,
        EventType.SERIES_DELETED: selection.deleted_series,
        EventType.STUDY_DELETED: selection.deleted_study,
        EventType.PATIENT_DELETED: selection.deleted_patient,
    }
    return frozenset(event_type for event_type, on in flags.items() if on)


def any_deleted(types: frozenset[EventType]) -> bool:
    return any(event_type in types for event_type in DELETED_TYPES.values())


def load_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) shipped for an event type's envelope."""
    text = resources.files(__package__).joinpath("schemas", f"{event_type}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
