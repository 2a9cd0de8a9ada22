"""The in-memory archive: resources, metadata and the change log, with Orthanc 1.10's rules."""

from __future__ import annotations

import io
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from . import enums
from .enums import ChangeType, ErrorCode, InstanceOrigin, ResourceType
from .errors import orthanc_error
from .identifiers import orthanc_id
from .metadata import SYSTEM_METADATA, ContentTypeNames, MetadataNames

Clock = Callable[[], datetime]
HIERARCHY = (ResourceType.PATIENT, ResourceType.STUDY, ResourceType.SERIES, ResourceType.INSTANCE)
DICOM_IDENTIFIERS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Changes the core signals to plugins but does not keep in /changes.
UNLOGGED_CHANGES = frozenset({ChangeType.NEW_CHILD_INSTANCE, ChangeType.DELETED})
PIXEL_DATA = 0x7FE00010


def orthanc_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


@dataclass
class StoredFile:
    """The DICOM file of an instance and how it arrived."""

    data: bytes
    dataset: Dataset
    uuid: str
    origin: int
    remote_aet: str


@dataclass
class Resource:
    level: int
    id: str
    parent_id: str | None
    tag_source: Dataset  # the first instance received: main DICOM tags come from it
    last_update: str
    children: list[str] = field(default_factory=list)
    metadata: dict[int, str] = field(default_factory=dict)
    attachments: dict[int, bytes] = field(default_factory=dict)  # user-defined ones only
    is_stable: bool = False
    file: StoredFile | None = None


@dataclass(frozen=True)
class Change:
    seq: int
    change_type: int
    level: int
    resource_id: str
    date: str


@dataclass(frozen=True)
class PendingChange:
    """A change waiting for the on-change callback (Orthanc delivers them on its own thread)."""

    change_type: int
    level: int
    resource_id: str


@dataclass(frozen=True)
class StoreResult:
    instance_id: str
    status: str  # "Success" | "AlreadyStored"
    patient_id: str
    study_id: str
    series_id: str

    def as_json(self) -> dict[str, str]:
        """The answer of POST /instances."""
        return {
            "ID": self.instance_id,
            "ParentPatient": self.patient_id,
            "ParentSeries": self.series_id,
            "ParentStudy": self.study_id,
            "Path": f"/instances/{self.instance_id}",
            "Status": self.status,
        }


@dataclass(frozen=True)
class Arrival:
    """Where an instance comes from; fills the Origin, RemoteAET, ... metadata."""

    origin: int = InstanceOrigin.REST_API
    remote_aet: str | None = None
    remote_ip: str | None = None
    called_aet: str | None = None


class Archive:
    """Patients, studies, series and instances, their metadata and the change log."""

    def __init__(
        self,
        metadata_names: MetadataNames,
        clock: Clock | None = None,
        content_types: ContentTypeNames | None = None,
    ) -> None:
        self.metadata_names = metadata_names
        self.content_types = content_types or ContentTypeNames({})
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._resources: dict[int, dict[str, Resource]] = {level: {} for level in HIERARCHY}
        self._log: list[Change] = []
        self._last_seq = 0
        self._pending: deque[PendingChange] = deque()

    # ---- reading

    def get(self, level: int, resource_id: str) -> Resource:
        with self._lock:
            resource = self._resources[level].get(resource_id)
        if resource is None:
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return resource

    def exists(self, level: int, resource_id: str) -> bool:
        with self._lock:
            return resource_id in self._resources[level]

    def ids(self, level: int) -> list[str]:
        with self._lock:
            return list(self._resources[level])

    def parent(self, resource: Resource) -> Resource:
        if resource.parent_id is None:
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return self.get(resource.level - 1, resource.parent_id)

    def ancestor(self, resource: Resource, level: int) -> Resource:
        while resource.level > level:
            resource = self.parent(resource)
        return resource

    def descendants(self, resource: Resource, level: int) -> list[Resource]:
        """Resources of `level` under `resource`, in the order they arrived."""
        with self._lock:
            found = [resource]
            while found and found[0].level < level:
                found = [
                    self._resources[child.level + 1][c] for child in found for c in child.children
                ]
            return found

    def instance_file(self, instance_id: str) -> StoredFile:
        file = self.get(ResourceType.INSTANCE, instance_id).file
        assert file is not None  # every instance has one
        return file

    def changes(self, since: int, limit: int) -> tuple[list[Change], bool, int]:
        """Logged changes after `since`: (changes, done, last) as GET /changes computes them."""
        with self._lock:
            after = [change for change in self._log if change.seq > since]
            selected = after[:limit]
            last = selected[-1].seq if selected else self._last_seq
            return selected, len(after) <= limit, last

    def last_change(self) -> Change | None:
        with self._lock:
            return self._log[-1] if self._log else None

    # ---- writing

    def store(self, data: bytes, arrival: Arrival) -> StoreResult:
        dataset, pixel_data_offset = _parse(data)
        identifiers = [str(dataset.get(keyword, "")).strip() for keyword in DICOM_IDENTIFIERS]
        if not all(identifiers[1:]):
            raise orthanc_error(ErrorCode.BAD_FILE_FORMAT)
        ids = [orthanc_id(*identifiers[: depth + 1]) for depth in range(4)]
        with self._lock:
            if ids[3] in self._resources[ResourceType.INSTANCE]:
                return StoreResult(ids[3], "AlreadyStored", ids[0], ids[1], ids[2])
            now = orthanc_timestamp(self._clock())
            created = [
                level
                for level in HIERARCHY
                if self._ensure(level, ids[level], ids[level - 1] if level else None, dataset, now)
            ]
            instance = self._resources[ResourceType.INSTANCE][ids[3]]
            instance.file = StoredFile(
                data, dataset, str(uuid.uuid4()), arrival.origin, arrival.remote_aet or ""
            )
            instance.metadata = _instance_metadata(dataset, arrival, now, pixel_data_offset)
            self._touch_ancestors(ids, arrival, now)
            # Orthanc logs the new resources bottom-up, then signals NEW_CHILD_INSTANCE upwards.
            for level in reversed(created):
                self._record(enums.NEW_CHANGE_OF_LEVEL[level], level, ids[level])
            for level in (ResourceType.SERIES, ResourceType.STUDY, ResourceType.PATIENT):
                self._record(ChangeType.NEW_CHILD_INSTANCE, level, ids[level])
        return StoreResult(ids[3], "Success", ids[0], ids[1], ids[2])

    def delete(self, level: int, resource_id: str) -> Resource | None:
        """Delete a resource, its descendants and the ancestors left empty; return what remains."""
        with self._lock:
            target = self.get(level, resource_id)
            emptied: list[Resource] = []
            remaining = None if target.parent_id is None else self.parent(target)
            while remaining is not None and len(remaining.children) == 1:
                emptied.append(remaining)
                remaining = None if remaining.parent_id is None else self.parent(remaining)
            # The order Orthanc 1.10 signals DELETED in (measured): descendants depth-first,
            # then the emptied ancestors from the top, then the target.
            doomed = [*self._subtree_post_order(target), *reversed(emptied), target]
            for resource in doomed:
                del self._resources[resource.level][resource.id]
                self._record(ChangeType.DELETED, resource.level, resource.id)
            if remaining is not None:
                removed_child = emptied[-1] if emptied else target
                remaining.children.remove(removed_child.id)
            # Orthanc's database drops the log entries of deleted resources.
            gone = {resource.id for resource in doomed}
            self._log = [change for change in self._log if change.resource_id not in gone]
            return remaining

    def set_metadata(self, level: int, resource_id: str, name: str, value: str) -> None:
        number = self.metadata_names.writable_number_of(name)
        with self._lock:
            self.get(level, resource_id).metadata[number] = value
            self._record(ChangeType.UPDATED_METADATA, level, resource_id)

    def delete_metadata(self, level: int, resource_id: str, name: str) -> None:
        number = self.metadata_names.writable_number_of(name)
        with self._lock:
            metadata = self.get(level, resource_id).metadata
            if number not in metadata:
                raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
            del metadata[number]
            self._record(ChangeType.UPDATED_METADATA, level, resource_id)

    def get_metadata(self, level: int, resource_id: str, name: str) -> str:
        number = self.metadata_names.number_of(name)
        value = self.get(level, resource_id).metadata.get(number)
        if value is None:
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return value

    def attachment_names(self, level: int, resource_id: str) -> list[str]:
        resource = self.get(level, resource_id)
        user = [self.content_types.name_of(number) for number in sorted(resource.attachments)]
        return ["dicom", *user] if level == ResourceType.INSTANCE else user

    def set_attachment(self, level: int, resource_id: str, name: str, data: bytes) -> None:
        number = self.content_types.user_number_of(name)
        with self._lock:
            self.get(level, resource_id).attachments[number] = data
            self._record(ChangeType.UPDATED_ATTACHMENT, level, resource_id)

    def get_attachment(self, level: int, resource_id: str, name: str) -> bytes:
        number = self.content_types.user_number_of(name)
        data = self.get(level, resource_id).attachments.get(number)
        if data is None:
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return data

    def delete_attachment(self, level: int, resource_id: str, name: str) -> None:
        number = self.content_types.user_number_of(name)
        with self._lock:
            if self.get(level, resource_id).attachments.pop(number, None) is None:
                raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
            self._record(ChangeType.UPDATED_ATTACHMENT, level, resource_id)

    def mark_stable(self, level: int, resource_id: str) -> None:
        if level not in enums.STABLE_CHANGE_OF_LEVEL:
            raise ValueError(f"only patients, studies and series become stable, not level {level}")
        with self._lock:
            self.get(level, resource_id).is_stable = True
            self._record(enums.STABLE_CHANGE_OF_LEVEL[level], level, resource_id)

    def unstable(self) -> list[tuple[int, str]]:
        """Unstable series, studies and patients, in the order Orthanc would stabilise them."""
        with self._lock:
            found: list[tuple[int, str]] = []
            for patient in self._resources[ResourceType.PATIENT].values():
                for study in self.descendants(patient, ResourceType.STUDY):
                    found += [
                        (ResourceType.SERIES, series.id)
                        for series in self.descendants(study, ResourceType.SERIES)
                        if not series.is_stable
                    ]
                    if not study.is_stable:
                        found.append((ResourceType.STUDY, study.id))
                if not patient.is_stable:
                    found.append((ResourceType.PATIENT, patient.id))
            return found

    def queue(self, change_type: int, level: int, resource_id: str) -> None:
        with self._lock:
            self._pending.append(PendingChange(change_type, level, resource_id))

    def take_pending(self) -> PendingChange | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def pending(self) -> list[PendingChange]:
        with self._lock:
            return list(self._pending)

    # ---- internals

    def _ensure(
        self, level: int, resource_id: str, parent_id: str | None, dataset: Dataset, now: str
    ) -> bool:
        resources = self._resources[level]
        if resource_id in resources:
            return False
        resources[resource_id] = Resource(level, resource_id, parent_id, dataset, now)
        if parent_id is not None:
            self._resources[level - 1][parent_id].children.append(resource_id)
        return True

    def _touch_ancestors(self, ids: list[str], arrival: Arrival, now: str) -> None:
        series = self._resources[ResourceType.SERIES][ids[2]]
        series.metadata[SYSTEM_METADATA["RemoteAET"]] = arrival.remote_aet or ""
        for level in (ResourceType.PATIENT, ResourceType.STUDY, ResourceType.SERIES):
            resource = self._resources[level][ids[level]]
            resource.last_update = now
            resource.is_stable = False
            resource.metadata[SYSTEM_METADATA["LastUpdate"]] = now
            resource.metadata = dict(sorted(resource.metadata.items()))

    def _subtree_post_order(self, resource: Resource) -> list[Resource]:
        found: list[Resource] = []
        for child_id in resource.children:
            child = self._resources[resource.level + 1][child_id]
            found += [*self._subtree_post_order(child), child]
        return found

    def _record(self, change_type: int, level: int, resource_id: str) -> None:
        if change_type not in UNLOGGED_CHANGES:
            self._last_seq += 1
            date = orthanc_timestamp(self._clock())
            self._log.append(Change(self._last_seq, change_type, level, resource_id, date))
        self._pending.append(PendingChange(change_type, level, resource_id))


def _parse(data: bytes) -> tuple[Dataset, int | None]:
    """The dataset, and where its pixel data element starts in `data` (None if not recorded)."""
    try:
        # Orthanc accepts values that break VR rules silently; pydicom would warn on first access,
        # so every element is converted here, once, with those warnings muted.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dataset = pydicom.dcmread(io.BytesIO(data))
            offset = _pixel_data_offset(dataset)  # before conversion drops the file positions
            for _ in dataset.iterall():
                pass
        return dataset, offset
    except (InvalidDicomError, EOFError, ValueError) as error:
        raise orthanc_error(ErrorCode.BAD_FILE_FORMAT) from error


def _pixel_data_offset(dataset: Dataset) -> int | None:
    """The `PixelDataOffset` metadata of Orthanc >= 1.9.1: the file offset of the top-level
    (7FE0,0010) element's tag, as measured on 1.10.1 (its stream reader skips sequences, so pixel
    data nested in e.g. IconImageSequence does not count). Orthanc's reader does not inflate
    deflated files, so they get none.
    """
    if dataset.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return None
    element = dataset.get_item(PIXEL_DATA, keep_deferred=True)
    if not isinstance(element, RawDataElement):
        return None
    # Tag (4) and length (4), plus VR (2) and 2 reserved bytes in explicit VR: OB/OW/UN are long.
    header = 8 if element.is_implicit_VR else 12
    return element.value_tell - header


def _instance_metadata(
    dataset: Dataset, arrival: Arrival, now: str, pixel_data_offset: int | None
) -> dict[int, str]:
    values: dict[str, str] = {
        "ReceptionDate": now,
        "RemoteAET": arrival.remote_aet or "",
        "Origin": enums.ORIGIN_NAMES[arrival.origin],
        "TransferSyntax": str(dataset.file_meta.get("TransferSyntaxUID", "")),
        "SopClassUid": str(dataset.get("SOPClassUID", "")),
    }
    instance_number = dataset.get("InstanceNumber")
    if instance_number is not None and str(instance_number).strip():
        values["IndexInSeries"] = str(dataset["InstanceNumber"].value).strip()
    if arrival.origin in (InstanceOrigin.REST_API, InstanceOrigin.DICOM_PROTOCOL):
        values["RemoteIP"] = arrival.remote_ip or "127.0.0.1"
    if arrival.origin == InstanceOrigin.REST_API:
        values["HttpUsername"] = ""
    if arrival.origin == InstanceOrigin.DICOM_PROTOCOL:
        values["CalledAET"] = arrival.called_aet or "ORTHANC"
    if pixel_data_offset is not None:
        values["PixelDataOffset"] = str(pixel_data_offset)
    return dict(sorted((SYSTEM_METADATA[name], value) for name, value in values.items()))
