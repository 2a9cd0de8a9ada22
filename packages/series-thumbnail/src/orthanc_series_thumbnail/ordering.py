"""Which slice is "the middle one": slice order from the instances' geometry, pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SliceInfo:
    """What ordering needs to know about one instance, parsed from Orthanc's main DICOM tags."""

    instance_id: str
    sop_instance_uid: str = ""
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    instance_number: float | None = None
    frames: int = 1


@dataclass(frozen=True, slots=True)
class Choice:
    """The instance and frame (0-based) a thumbnail shows."""

    instance_id: str
    frame: int
    # What the stored file holds (its MD5): an instance overwritten in place keeps its ID only.
    content_id: str = ""


def slice_info(instance_id: str, main_tags: Mapping[str, Any]) -> SliceInfo:
    """Parse one instance's main DICOM tags (as in `/series/{id}/instances`)."""
    position = _floats(main_tags.get("ImagePositionPatient"))
    orientation = _floats(main_tags.get("ImageOrientationPatient"))
    frames = _number(main_tags.get("NumberOfFrames"))
    return SliceInfo(
        instance_id=instance_id,
        sop_instance_uid=str(main_tags.get("SOPInstanceUID") or ""),
        position=(position[0], position[1], position[2]) if len(position) == 3 else None,
        orientation=tuple(orientation) if len(orientation) == 6 else None,
        instance_number=_number(main_tags.get("InstanceNumber")),
        frames=int(frames) if frames is not None and frames >= 1 else 1,
    )


def order_by_geometry(slices: Sequence[SliceInfo]) -> list[SliceInfo] | None:
    """Sort along the slice normal, or None when any slice lacks a usable position/orientation."""
    normal = _normal(slices[0].orientation) if slices else None
    if normal is None or any(s.position is None for s in slices):
        return None

    def distance(s: SliceInfo) -> float:
        assert s.position is not None
        return sum(p * n for p, n in zip(s.position, normal, strict=True))

    return sorted(slices, key=lambda s: (distance(s), _tie_break(s)))


def order_by_instance_number(slices: Sequence[SliceInfo]) -> list[SliceInfo] | None:
    """Sort by InstanceNumber, or None when any slice lacks one."""
    if any(s.instance_number is None for s in slices):
        return None
    return sorted(slices, key=lambda s: (s.instance_number or 0.0, _tie_break(s)))


def order_by_key(
    slices: Sequence[SliceInfo], key: Callable[[SliceInfo], tuple[str, float] | None]
) -> list[SliceInfo] | None:
    """Sort by a per-slice key (e.g. acquisition time), or None when any slice has none."""
    keys = {s.instance_id: key(s) for s in slices}
    if any(k is None for k in keys.values()):
        return None
    return sorted(slices, key=lambda s: (keys[s.instance_id], _tie_break(s)))


def order_by_uid(slices: Sequence[SliceInfo]) -> list[SliceInfo]:
    """The last resort: SOPInstanceUID, compared component by component as numbers."""
    return sorted(slices, key=_tie_break)


def middle(ordered: Sequence[SliceInfo]) -> Choice:
    """Index n // 2 of the order; within a multi-frame instance, its middle frame."""
    chosen = ordered[len(ordered) // 2]
    return Choice(chosen.instance_id, chosen.frames // 2)


def dicom_time_key(date: object, time: object) -> tuple[str, float] | None:
    """(DA, seconds of TM) for sorting, or None when the time is missing or malformed."""
    text = str(time or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or len(whole) % 2 or len(whole) > 6 or not (fraction or "0").isdigit():
        return None
    parts = [int(whole[i : i + 2]) for i in range(0, len(whole), 2)] + [0, 0]
    seconds = parts[0] * 3600 + parts[1] * 60 + parts[2] + float("0." + (fraction or "0"))
    return (str(date or "").strip(), seconds)


def _tie_break(s: SliceInfo) -> tuple[tuple[int, ...], str, str]:
    numeric = tuple(int(p) for p in s.sop_instance_uid.split(".") if p.isdigit())
    return (numeric, s.sop_instance_uid, s.instance_id)


def _normal(orientation: tuple[float, ...] | None) -> tuple[float, float, float] | None:
    if orientation is None:
        return None
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return n if math.sqrt(sum(x * x for x in n)) > 1e-6 else None


def _floats(raw: object) -> list[float]:
    if not isinstance(raw, str) or not raw.strip():
        return []
    try:
        values = [float(v) for v in raw.split("\\")]
    except ValueError:
        return []
    return values if all(math.isfinite(v) for v in values) else []


def _number(raw: object) -> float | None:
    try:
        value = float(str(raw).strip()) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
