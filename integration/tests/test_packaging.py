"""Each distribution builds on its own and installs only its own dependencies."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "orthanc-dicom-events": REPO / "packages" / "dicom-events",
    "orthanc-series-private-tags": REPO / "packages" / "series-private-tags",
    "orthanc-series-thumbnail": REPO / "packages" / "series-thumbnail",
    "orthanc-plugins-compose": REPO / "tools" / "composer",
}
BROKER_CLIENTS = {"pika", "boto3", "botocore"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build every distribution (wheel + sdist) once for this module."""
    out = tmp_path_factory.mktemp("dist")
    wheels = {}
    for name, source in DISTRIBUTIONS.items():
        target = out / name
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(target), str(source)],
            check=True,
            capture_output=True,
        )
        built_files = sorted(p.name for p in target.iterdir())
        assert any(f.endswith(".whl") for f in built_files), built_files
        assert any(f.endswith(".tar.gz") for f in built_files), built_files
        wheels[name] = next(target.glob("*.whl"))
    return wheels


def _requirements(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    names = set()
    for requirement in metadata.get_all("Requires-Dist") or []:
        if "extra ==" in requirement:
            continue
        names.add(requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip())
    return names


def test_only_dicom_events_depends_on_broker_clients(built: dict[str, Path]) -> None:
    assert BROKER_CLIENTS - {"botocore"} <= _requirements(built["orthanc-dicom-events"])
    for name in ("orthanc-series-private-tags", "orthanc-series-thumbnail"):
        assert not _requirements(built[name]) & BROKER_CLIENTS, name
    assert _requirements(built["orthanc-plugins-compose"]) == set()


def test_wheels_carry_typing_marker_and_entry_module(built: dict[str, Path]) -> None:
    for name in ("orthanc-dicom-events", "orthanc-series-private-tags", "orthanc-series-thumbnail"):
        package = name.replace("-", "_")
        with zipfile.ZipFile(built[name]) as archive:
            files = set(archive.namelist())
            entry_points = next(n for n in files if n.endswith("entry_points.txt"))
            declared = archive.read(entry_points).decode()
        assert f"{package}/py.typed" in files
        assert f"{package}/orthanc_entry.py" in files
        assert "[orthanc.python_plugins]" in declared


@pytest.mark.slow
def test_one_plugin_in_a_clean_venv_pulls_only_its_dependencies(
    built: dict[str, Path], tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(built["orthanc-series-private-tags"])],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert "orthanc-series-private-tags" in installed
    assert not installed & BROKER_CLIENTS
    assert not installed & {"orthanc-dicom-events", "orthanc-series-thumbnail"}
    probe = "import orthanc_series_private_tags as p; print(p.__version__)"
    version = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    about = (
        DISTRIBUTIONS["orthanc-series-private-tags"]
        / "src/orthanc_series_private_tags/__about__.py"
    )
    assert f'__version__ = "{version}"' in about.read_text()
