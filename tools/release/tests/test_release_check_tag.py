"""tools/release/check_tag.py: a release tag must name a distribution here and its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.release import check_tag


def make_distribution(root: Path, parent: str, folder: str, name: str, version: str) -> None:
    directory = root / parent / folder
    (directory / "src" / "pkg").mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\ndynamic = ["version"]\n\n'
        '[tool.hatch.version]\npath = "src/pkg/__about__.py"\n'
    )
    (directory / "src" / "pkg" / "__about__.py").write_text(f'__version__ = "{version}"\n')


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_distribution(tmp_path, "packages", "dicom-events", "orthanc-dicom-events", "0.3.1")
    make_distribution(tmp_path, "tools", "composer", "orthanc-plugins-compose", "1.0.0rc1")
    (tmp_path / "tools" / "scripts").mkdir()  # no pyproject: not a distribution
    return tmp_path


def test_a_matching_tag_names_the_distribution(repo: Path) -> None:
    found = check_tag.check_tag("orthanc-dicom-events-v0.3.1", root=repo)
    assert found.directory == repo / "packages" / "dicom-events"
    assert found.version == "0.3.1"
    tools = check_tag.check_tag("orthanc-plugins-compose-v1.0.0rc1", root=repo)
    assert tools.name == "orthanc-plugins-compose"


def test_another_version_is_refused(repo: Path) -> None:
    with pytest.raises(check_tag.ReleaseError, match=r"says version 0\.3\.2 .* at 0\.3\.1"):
        check_tag.check_tag("orthanc-dicom-events-v0.3.2", root=repo)


def test_a_tag_of_another_distribution_is_refused_by_its_workflow(repo: Path) -> None:
    with pytest.raises(check_tag.ReleaseError, match="not orthanc-plugins-compose"):
        check_tag.check_tag(
            "orthanc-dicom-events-v0.3.1", expect="orthanc-plugins-compose", root=repo
        )


def test_an_unknown_distribution_lists_the_known_ones(repo: Path) -> None:
    with pytest.raises(check_tag.ReleaseError, match="orthanc-dicom-events, orthanc-plugins"):
        check_tag.check_tag("orthanc-nothing-v1.0.0", root=repo)


@pytest.mark.parametrize("tag", ["v0.1.0", "orthanc-dicom-events-0.1.0", "orthanc-dicom-events-v"])
def test_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(check_tag.ReleaseError, match="not <distribution>-v<version>"):
        check_tag.parse_tag(tag)


def test_the_repository_distributions_are_found() -> None:
    found = check_tag.distributions()
    assert {
        "orthanc-dicom-events",
        "orthanc-series-private-tags",
        "orthanc-series-thumbnail",
        "orthanc-plugins-compose",
    } <= set(found)


def test_main_writes_the_directory_for_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    version = check_tag.distributions()["orthanc-dicom-events"].version
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    tag = f"orthanc-dicom-events-v{version}"
    assert check_tag.main([tag, "--expect", "orthanc-dicom-events"]) == 0
    assert capsys.readouterr().out.strip() == "packages/dicom-events"
    assert output.read_text() == f"directory=packages/dicom-events\nversion={version}\n"
    assert check_tag.main(["orthanc-dicom-events-v999.0.0"]) == 1
