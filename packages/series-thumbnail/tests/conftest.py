"""A minimal in-memory Host for the thumbnail logic (the plugin glue is tested on orthanc_fake)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from orthanc_series_thumbnail.host import RestError


def png(width: int, height: int, value: int = 0, mode: str = "L") -> bytes:
    """A uniform PNG: the value tells which slice a thumbnail came from."""
    out = io.BytesIO()
    color: Any = value if mode == "L" else (value, value, value)
    Image.new(mode, (width, height), color).save(out, "PNG")
    return out.getvalue()


@dataclass
class StubInstance:
    instance_id: str
    main_tags: dict[str, str]
    rendered: bytes | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class StubHost:
    """Answers the handful of internal REST calls the thumbnail logic makes."""

    def __init__(self) -> None:
        self.series: dict[str, list[StubInstance]] = {}
        self.stable: dict[str, bool] = {}
        self.series_metadata: dict[tuple[str, str], bytes] = {}
        self.calls: list[str] = []
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def add_series(
        self, series_id: str, instances: list[StubInstance], stable: bool = True
    ) -> None:
        self.series[series_id] = instances
        self.stable[series_id] = stable

    def _instance(self, instance_id: str) -> StubInstance:
        for instances in self.series.values():
            for instance in instances:
                if instance.instance_id == instance_id:
                    return instance
        raise RestError("Unknown resource")

    def get(self, uri: str) -> bytes:
        self.calls.append(uri)
        parts = uri.strip("/").split("/")
        if parts[0] == "series" and parts[1] in self.series:
            series_id = parts[1]
            instances = self.series[series_id]
            if len(parts) == 2:
                ids = [i.instance_id for i in instances]
                return json.dumps({"Instances": ids, "IsStable": self.stable[series_id]}).encode()
            if parts[2:] == ["instances"]:
                return json.dumps(
                    [{"ID": i.instance_id, "MainDicomTags": i.main_tags} for i in instances]
                ).encode()
            if parts[2] == "metadata" and (series_id, parts[3]) in self.series_metadata:
                return self.series_metadata[(series_id, parts[3])]
        if parts[0] == "instances":
            instance = self._instance(parts[1])
            if len(parts) == 2:
                return json.dumps(
                    {"ID": instance.instance_id, "MainDicomTags": instance.main_tags}
                ).encode()
            frame = int(parts[3]) if parts[2] == "frames" and parts[4:] == ["rendered"] else 0
            rendered = parts[2:] == ["rendered"] or parts[4:] == ["rendered"]
            frames = int(instance.main_tags.get("NumberOfFrames", "1"))
            if rendered and instance.rendered is not None and frame < frames:
                return instance.rendered
            if parts[2] == "simplified-tags":
                return json.dumps(instance.tags).encode()
            if parts[2:] == ["metadata"]:
                return json.dumps(list(instance.metadata)).encode()
            if parts[2] == "metadata" and parts[3] in instance.metadata:
                return instance.metadata[parts[3]].encode()
        raise RestError("Unknown resource")

    def put(self, uri: str, body: bytes) -> None:
        self.calls.append("PUT " + uri)
        parts = uri.strip("/").split("/")
        if parts[0] != "series" or parts[1] not in self.series:
            raise RestError("Unknown resource")
        self.series_metadata[(parts[1], parts[3])] = body

    def delete(self, uri: str) -> None:
        self.calls.append("DELETE " + uri)
        parts = uri.strip("/").split("/")
        if self.series_metadata.pop((parts[1], parts[3]), None) is None:
            raise RestError("Unknown resource")

    def log_warning(self, message: str) -> None:
        self.warnings.append(message)

    def log_error(self, message: str) -> None:
        self.errors.append(message)


def ct_slice(
    index: int, z: float, number: int | None = None, rendered_value: int = 0
) -> StubInstance:
    tags = {
        "SOPInstanceUID": f"1.2.3.{index}",
        "ImagePositionPatient": f"-100\\-100\\{z}",
        "ImageOrientationPatient": "1\\0\\0\\0\\1\\0",
    }
    if number is not None:
        tags["InstanceNumber"] = str(number)
    return StubInstance(f"inst-{index}", tags, rendered=png(64, 32, rendered_value))


@pytest.fixture
def host() -> StubHost:
    return StubHost()
