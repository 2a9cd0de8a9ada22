"""tools/release/check_tag.py: a release tag must name a released distribution and its version."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.release import check_tag


def versions(by_folder: dict[str, str]) -> Callable[[Path], str]:
    """A stand-in for `hatch version`: each folder's version, by the folder's name."""
    return lambda directory: by_folder[directory.name]


def test_a_matching_tag_names_the_distribution_and_its_folder() -> None:
    found = check_tag.check_tag("orthanc-dicom-events-v0.3.1", versions({"dicom-events": "0.3.1"}))
    assert found == check_tag.Distribution("orthanc-dicom-events", "packages/dicom-events", "0.3.1")
    composer = check_tag.check_tag(
        "orthanc-plugins-compose-v1.0.0rc1", versions({"composer": "1.0.0rc1"})
    )
    assert composer.directory == "tools/composer"


def test_another_version_is_refused() -> None:
    with pytest.raises(check_tag.ReleaseError, match=r"says version 0\.3\.2 .* at 0\.3\.1"):
        check_tag.check_tag("orthanc-dicom-events-v0.3.2", versions({"dicom-events": "0.3.1"}))


@pytest.mark.parametrize("name", ["orthanc-nothing", "orthanc-fake"])
def test_a_distribution_not_released_from_here_lists_the_released_ones(name: str) -> None:
    with pytest.raises(check_tag.ReleaseError, match="released: orthanc-dicom-events, orthanc-"):
        check_tag.check_tag(f"{name}-v1.0.0", versions({}))


@pytest.mark.parametrize("tag", ["v0.1.0", "orthanc-dicom-events-0.1.0", "orthanc-dicom-events-v"])
def test_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(check_tag.ReleaseError, match="not <distribution>-v<version>"):
        check_tag.parse_tag(tag)


@pytest.mark.parametrize(("name", "directory"), sorted(check_tag.RELEASED.items()))
def test_each_released_folder_defines_that_distribution(name: str, directory: str) -> None:
    pyproject = tomllib.loads((check_tag.REPO_ROOT / directory / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == name


def test_hatch_version_runs_in_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_directory, folder = tmp_path / "bin", tmp_path / "dicom-events"
    bin_directory.mkdir()
    folder.mkdir()
    hatch = bin_directory / "hatch"
    hatch.write_text('#!/bin/sh\n[ "$1" = version ] && echo "0.3.1 from ${PWD##*/}"\n')
    hatch.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_directory))
    assert check_tag.hatch_version(folder) == "0.3.1 from dicom-events"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(check_tag.ReleaseError, match="hatch is not installed"):
        check_tag.hatch_version(folder)


def test_main_writes_the_folder_for_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(check_tag, "hatch_version", versions({"series-thumbnail": "0.2.0"}))
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert check_tag.main(["orthanc-series-thumbnail-v0.2.0"]) == 0
    assert capsys.readouterr().out.strip() == "packages/series-thumbnail"
    assert output.read_text() == (
        "directory=packages/series-thumbnail\n"
        "distribution=orthanc-series-thumbnail\n"
        "version=0.2.0\n"
    )
    assert check_tag.main(["orthanc-series-thumbnail-v999.0.0"]) == 1
