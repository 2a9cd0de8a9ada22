"""Orthanc's built-in REST API over the in-memory archive (the part plugins use)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from . import dicom_json, rendering
from .archive import Archive, Arrival, Change, Resource
from .dicom_json import TagDictionary
from .enums import CHANGE_TYPE_NAMES, LEVEL_PATHS, RESOURCE_TYPE_NAMES, ErrorCode, ResourceType
from .errors import orthanc_error

Query = Mapping[str, str]
Answer = bytes | None
LEVEL_OF_PATH = {path: level for level, path in LEVEL_PATHS.items()}
# /instances/{id}/study etc. name a parent in the singular.
PARENT_SEGMENTS = {
    "patient": ResourceType.PATIENT,
    "study": ResourceType.STUDY,
    "series": ResourceType.SERIES,
}
DEFAULT_CHANGES_LIMIT = 100
LEVELS = "(patients|studies|series|instances)"
ID = "([^/]+)"


@dataclass(frozen=True)
class Request:
    method: str
    match: re.Match[str]
    query: Query
    body: bytes

    def level_and_id(self) -> tuple[int, str]:
        return LEVEL_OF_PATH[self.match.group(1)], self.match.group(2)


Handler = Callable[["BuiltInRestApi", Request], Answer]


def as_json(value: Any) -> bytes:
    return json.dumps(value, indent=3).encode()


class BuiltInRestApi:
    """Answers `RestApiGet`/`Post`/`Put`/`Delete` the way Orthanc 1.10 does, errors included."""

    def __init__(
        self,
        archive: Archive,
        configuration: Mapping[str, Any],
        store: Callable[[bytes, Arrival], Any],
    ) -> None:
        self.archive = archive
        self.configuration = configuration
        self.dictionary = TagDictionary.from_configuration(configuration)
        self._store = store

    def call(self, method: str, uri: str, body: bytes = b"") -> Answer:
        path, _, query_text = uri.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        for route_method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler(self, Request(method, match, query, body))
        # Unknown URIs and unsupported methods alike reach plugins as UNKNOWN_RESOURCE.
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)

    # ---- JSON of resources

    def resource_json(self, resource: Resource) -> dict[str, Any]:
        level = resource.level
        main_tags = dicom_json.main_dicom_tags(resource.tag_source, level)
        body: dict[str, Any] = {
            "ID": resource.id,
            "MainDicomTags": main_tags,
            "Type": RESOURCE_TYPE_NAMES[level],
        }
        children = [*resource.children]
        if level == ResourceType.PATIENT:
            body |= {
                "IsStable": resource.is_stable,
                "LastUpdate": resource.last_update,
                "Studies": children,
            }
        elif level == ResourceType.STUDY:
            patient_tags = dicom_json.main_dicom_tags(resource.tag_source, ResourceType.PATIENT)
            body |= {
                "IsStable": resource.is_stable,
                "LastUpdate": resource.last_update,
                "ParentPatient": resource.parent_id,
                "PatientMainDicomTags": patient_tags,
                "Series": children,
            }
        elif level == ResourceType.SERIES:
            body |= {
                "ExpectedNumberOfInstances": None,
                "Instances": children,
                "IsStable": resource.is_stable,
                "LastUpdate": resource.last_update,
                "ParentStudy": resource.parent_id,
                "Status": "Unknown",
            }
        else:
            file = self.archive.instance_file(resource.id)
            body |= {
                "FileSize": len(file.data),
                "FileUuid": file.uuid,
                "IndexInSeries": _index_in_series(main_tags),
                "ParentSeries": resource.parent_id,
            }
        return dict(sorted(body.items()))

    def change_json(self, change: Change) -> dict[str, Any]:
        return {
            "ChangeType": CHANGE_TYPE_NAMES.get(change.change_type, str(change.change_type)),
            "Date": change.date,
            "ID": change.resource_id,
            "Path": f"/{LEVEL_PATHS[change.level]}/{change.resource_id}",
            "ResourceType": RESOURCE_TYPE_NAMES[change.level],
            "Seq": change.seq,
        }

    def full_tags(self, instance_id: str) -> dict[str, Any]:
        return dicom_json.to_full_json(
            self.archive.instance_file(instance_id).dataset, self.dictionary
        )

    # ---- handlers

    def get_system(self, request: Request) -> Answer:
        return as_json(
            {
                "ApiVersion": 16,
                "CheckRevisions": False,
                "DatabaseBackendPlugin": None,
                "DatabaseVersion": 6,
                "DicomAet": self.configuration.get("DicomAet", "ORTHANC"),
                "DicomPort": self.configuration.get("DicomPort", 4242),
                "HttpPort": self.configuration.get("HttpPort", 8042),
                "IsHttpServerSecure": True,
                "Name": self.configuration.get("Name", "MyOrthanc"),
                "PluginsEnabled": True,
                "StorageAreaPlugin": None,
                "Version": "1.10.1",
            }
        )

    def get_changes(self, request: Request) -> Answer:
        if "last" in request.query:
            newest = self.archive.last_change()
            listed = [] if newest is None else [self.change_json(newest)]
            return as_json({"Changes": listed, "Done": True, "Last": newest.seq if newest else 0})
        since = _int_argument(request.query, "since", 0)
        limit = _int_argument(request.query, "limit", DEFAULT_CHANGES_LIMIT)
        changes, done, last = self.archive.changes(since, limit)
        return as_json(
            {"Changes": [self.change_json(c) for c in changes], "Done": done, "Last": last}
        )

    def list_resources(self, request: Request) -> Answer:
        level = LEVEL_OF_PATH[request.match.group(1)]
        ids = self.archive.ids(level)
        if ("since" in request.query) != ("limit" in request.query):
            raise orthanc_error(ErrorCode.BAD_REQUEST)
        if "since" in request.query:
            since = _int_argument(request.query, "since", 0)
            ids = ids[since : since + _int_argument(request.query, "limit", 0)]
        if "expand" in request.query:
            return as_json([self.resource_json(self.archive.get(level, i)) for i in ids])
        return as_json(ids)

    def upload_instance(self, request: Request) -> Answer:
        return as_json(self._store(request.body, Arrival()).as_json())

    def get_resource(self, request: Request) -> Answer:
        return as_json(self.resource_json(self.archive.get(*request.level_and_id())))

    def delete_resource(self, request: Request) -> Answer:
        remaining = self.archive.delete(*request.level_and_id())
        ancestor = None
        if remaining is not None:
            ancestor = {
                "ID": remaining.id,
                "Path": f"/{LEVEL_PATHS[remaining.level]}/{remaining.id}",
                "Type": RESOURCE_TYPE_NAMES[remaining.level],
            }
        return as_json({"RemainingAncestor": ancestor})

    def get_related(self, request: Request) -> Answer:
        level, resource_id = request.level_and_id()
        resource = self.archive.get(level, resource_id)
        segment = request.match.group(3)
        if segment in LEVEL_OF_PATH and LEVEL_OF_PATH[segment] > level:
            found = self.archive.descendants(resource, LEVEL_OF_PATH[segment])
            return as_json([self.resource_json(r) for r in found])
        if segment in PARENT_SEGMENTS and PARENT_SEGMENTS[segment] < level:
            return as_json(
                self.resource_json(self.archive.ancestor(resource, PARENT_SEGMENTS[segment]))
            )
        raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)

    def list_metadata(self, request: Request) -> Answer:
        metadata = self.archive.get(*request.level_and_id()).metadata
        names = self.archive.metadata_names
        if "expand" in request.query:
            return as_json(dict(sorted((names.name_of(n), v) for n, v in metadata.items())))
        return as_json([names.name_of(number) for number in sorted(metadata)])

    def get_metadata(self, request: Request) -> Answer:
        level, resource_id = request.level_and_id()
        return self.archive.get_metadata(level, resource_id, request.match.group(3)).encode()

    def put_metadata(self, request: Request) -> Answer:
        level, resource_id = request.level_and_id()
        value = request.body.decode("utf-8", errors="replace")
        self.archive.set_metadata(level, resource_id, request.match.group(3), value)
        return b""

    def delete_metadata(self, request: Request) -> Answer:
        level, resource_id = request.level_and_id()
        self.archive.delete_metadata(level, resource_id, request.match.group(3))
        return None

    def list_attachments(self, request: Request) -> Answer:
        return as_json(self.archive.attachment_names(*request.level_and_id()))

    def get_attachment_data(self, request: Request) -> Answer:
        name = request.match.group(3)
        return self.archive.get_attachment(*request.level_and_id(), name)

    def get_attachment_operations(self, request: Request) -> Answer:
        self.get_attachment_data(request)
        return as_json(["data", "md5", "size"])

    def put_attachment(self, request: Request) -> Answer:
        name = request.match.group(3)
        self.archive.set_attachment(*request.level_and_id(), name, request.body)
        return as_json({})

    def delete_attachment(self, request: Request) -> Answer:
        name = request.match.group(3)
        self.archive.delete_attachment(*request.level_and_id(), name)
        return None

    def get_file(self, request: Request) -> Answer:
        return self.archive.instance_file(request.match.group(1)).data

    def get_file_md5(self, request: Request) -> Answer:
        """The MD5 Orthanc keeps of the DICOM attachment (`StoreMD5ForAttachments`, default on)."""
        return (
            hashlib.md5(  # Orthanc's checksum, not a security measure
                self.archive.instance_file(request.match.group(1)).data, usedforsecurity=False
            )
            .hexdigest()
            .encode()
        )

    def get_tags(self, request: Request) -> Answer:
        tags = self.full_tags(request.match.group(1))
        if "simplify" in request.query:
            return as_json(dicom_json.simplify(tags))
        if "short" in request.query:
            return as_json(dicom_json.shorten(tags))
        return as_json(tags)

    def get_simplified_tags(self, request: Request) -> Answer:
        return as_json(dicom_json.simplify(self.full_tags(request.match.group(1))))

    def bulk_content(self, request: Request) -> Answer:
        """`POST /tools/bulk-content` (Orthanc >= 1.9.4): many resources in one call.

        As in Orthanc 1.10, unknown IDs (or IDs of another level than `Level`) are skipped, and
        `Metadata` defaults to true.
        """
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise orthanc_error(ErrorCode.BAD_FILE_FORMAT) from None
        resources = body.get("Resources") if isinstance(body, dict) else None
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise orthanc_error(ErrorCode.BAD_FILE_FORMAT)
        level_name = body.get("Level")
        levels = list(RESOURCE_TYPE_NAMES)
        if level_name is not None:
            named = [lv for lv, name in RESOURCE_TYPE_NAMES.items() if name == level_name]
            if not named:
                raise orthanc_error(ErrorCode.PARAMETER_OUT_OF_RANGE)
            levels = named
        with_metadata = body.get("Metadata", True) is not False
        names = self.archive.metadata_names
        answer = []
        for resource_id in resources:
            for level in levels:
                if not self.archive.exists(level, resource_id):
                    continue  # unknown at this level: skipped, as Orthanc does
                resource = self.archive.get(level, resource_id)
                item = self.resource_json(resource)
                if with_metadata:
                    item["Metadata"] = dict(
                        sorted((names.name_of(n), v) for n, v in resource.metadata.items())
                    )
                answer.append(dict(sorted(item.items())))
                break
        return as_json(answer)

    def get_image(self, request: Request) -> Answer:
        """`/instances/{id}/preview` and `/rendered`: frame 0."""
        dataset = self.archive.instance_file(request.match.group(1)).dataset
        return rendering.render(dataset, request.match.group(2), request.query)

    def list_frames(self, request: Request) -> Answer:
        dataset = self.archive.instance_file(request.match.group(1)).dataset
        return as_json(list(range(rendering.number_of_frames(dataset))))

    def get_frame_image(self, request: Request) -> Answer:
        """`/instances/{id}/frames/{n}/preview` and `/rendered`."""
        dataset = self.archive.instance_file(request.match.group(1)).dataset
        frame = rendering.frame_index(request.match.group(2))
        return rendering.render(dataset, request.match.group(3), request.query, frame)


def _int_argument(query: Query, name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise orthanc_error(ErrorCode.BAD_REQUEST)
    return int(text)


def _index_in_series(main_tags: Mapping[str, str]) -> int | None:
    text = main_tags.get("InstanceNumber", "").strip()
    try:
        return int(text)
    except ValueError:
        return None


def _route(method: str, pattern: str, handler: Handler) -> tuple[str, re.Pattern[str], Handler]:
    return method, re.compile(pattern), handler


Api = BuiltInRestApi
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    _route("GET", "/system", Api.get_system),
    _route("GET", "/changes", Api.get_changes),
    _route("GET", f"/{LEVELS}", Api.list_resources),
    _route("POST", "/instances", Api.upload_instance),
    _route("GET", f"/{LEVELS}/{ID}", Api.get_resource),
    _route("DELETE", f"/{LEVELS}/{ID}", Api.delete_resource),
    _route("GET", f"/{LEVELS}/{ID}/metadata", Api.list_metadata),
    _route("GET", f"/{LEVELS}/{ID}/metadata/{ID}", Api.get_metadata),
    _route("PUT", f"/{LEVELS}/{ID}/metadata/{ID}", Api.put_metadata),
    _route("DELETE", f"/{LEVELS}/{ID}/metadata/{ID}", Api.delete_metadata),
    _route("GET", f"/instances/{ID}/file", Api.get_file),
    _route("GET", f"/instances/{ID}/attachments/dicom/md5", Api.get_file_md5),
    _route("GET", f"/{LEVELS}/{ID}/attachments", Api.list_attachments),
    _route("GET", f"/{LEVELS}/{ID}/attachments/{ID}", Api.get_attachment_operations),
    _route("PUT", f"/{LEVELS}/{ID}/attachments/{ID}", Api.put_attachment),
    _route("DELETE", f"/{LEVELS}/{ID}/attachments/{ID}", Api.delete_attachment),
    _route("GET", f"/{LEVELS}/{ID}/attachments/{ID}/data", Api.get_attachment_data),
    _route("GET", f"/instances/{ID}/tags", Api.get_tags),
    _route("GET", f"/instances/{ID}/simplified-tags", Api.get_simplified_tags),
    _route("GET", f"/instances/{ID}/(preview|rendered)", Api.get_image),
    _route("GET", f"/instances/{ID}/frames", Api.list_frames),
    _route("GET", f"/instances/{ID}/frames/{ID}/(preview|rendered)", Api.get_frame_image),
    _route("GET", f"/{LEVELS}/{ID}/(patient|study|series|studies|instances)", Api.get_related),
    _route("POST", "/tools/bulk-content", Api.bulk_content),
]
