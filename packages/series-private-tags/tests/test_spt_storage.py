"""Direct reads of stored files from Orthanc's filesystem storage, and when they are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orthanc_fake import make_instance
from orthanc_series_private_tags.storage import GIVE_UP_AFTER_MISSES, StorageFiles

UUID = "0a1b2c3d-0000-4111-8222-333344445555"


def stored(root: Path, uuid: str, data: bytes) -> None:
    folder = root / uuid[0:2] / uuid[2:4]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / uuid).write_bytes(data)


def test_a_file_is_read_where_the_built_in_storage_keeps_it(tmp_path: Path) -> None:
    data = make_instance()
    stored(tmp_path, UUID, data)
    files = StorageFiles(str(tmp_path))
    assert files.read(UUID, len(data)) == data
    assert files.hits == 1


@pytest.mark.parametrize(
    ("uuid", "size_delta", "content"),
    [
        (UUID, 1, None),  # not the size Orthanc recorded (compressed, or another file)
        (UUID, 0, b"x" * 200),  # not a DICOM file
        ("../../etc/passwd", 0, None),  # not an attachment uuid: never opened
        ("ffffffff-0000-4111-8222-333344445555", 0, None),  # no such file
    ],
)
def test_anything_doubtful_is_left_to_the_rest_api(
    tmp_path: Path, uuid: str, size_delta: int, content: bytes | None
) -> None:
    data = content if content is not None else make_instance()
    stored(tmp_path, UUID, data)
    assert StorageFiles(str(tmp_path)).read(uuid, len(data) + size_delta) is None


def test_direct_reads_are_given_up_when_they_never_find_a_file(tmp_path: Path) -> None:
    files = StorageFiles(str(tmp_path / "elsewhere"))
    for _ in range(GIVE_UP_AFTER_MISSES):
        assert files.read(UUID, 10) is None
    assert files.enabled is False
    stored(tmp_path / "elsewhere", UUID, make_instance())
    assert files.read(UUID, len(make_instance())) is None  # no more attempts


@pytest.mark.parametrize(
    ("settings", "system", "usable"),
    [
        ({"StorageDirectory": "/var/lib/orthanc/db"}, {"StorageAreaPlugin": None}, True),
        ({}, {"StorageAreaPlugin": None}, True),  # Orthanc's default folder
        ({"StorageCompression": True}, {"StorageAreaPlugin": None}, False),
        ({}, {"StorageAreaPlugin": "/usr/lib/libOrthancAwsS3Storage.so"}, False),
        ({"StorageDirectory": ""}, {}, False),
    ],
)
def test_only_the_plain_built_in_storage_is_read_directly(
    settings: dict[str, object], system: dict[str, object], usable: bool
) -> None:
    assert (StorageFiles.from_configuration(settings, system) is not None) is usable
