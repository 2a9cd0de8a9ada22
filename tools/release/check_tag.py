"""Check a release tag `<distribution>-v<version>` against the distribution's own version.

    python tools/release/check_tag.py orthanc-dicom-events-v0.1.0

Prints the distribution's folder (and writes `directory=`, `distribution=` and `version=` to
$GITHUB_OUTPUT when set); exits 1 when the tag names an unknown distribution or another version
than `hatch version` reports in that folder.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The distributions published to PyPI, and the folder each is built from.
RELEASED = {
    "orthanc-dicom-events": "packages/dicom-events",
    "orthanc-series-private-tags": "packages/series-private-tags",
    "orthanc-series-thumbnail": "packages/series-thumbnail",
    "orthanc-plugins-compose": "tools/composer",
}
TAG_PATTERN = re.compile(r"^(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)-v(?P<version>\d[0-9A-Za-z.+!-]*)$")


class ReleaseError(Exception):
    """The tag cannot be released as it is."""


@dataclass(frozen=True)
class Distribution:
    name: str
    directory: str  # relative to the repository's root
    version: str


def parse_tag(tag: str) -> tuple[str, str]:
    """(distribution, version) of `orthanc-dicom-events-v0.1.0`."""
    match = TAG_PATTERN.match(tag.strip())
    if match is None:
        raise ReleaseError(f"tag {tag!r} is not <distribution>-v<version>")
    return match["name"], match["version"]


def hatch_version(directory: Path) -> str:
    """The version `hatch version` reports for the distribution in `directory`."""
    try:
        completed = subprocess.run(
            ["hatch", "version"], cwd=directory, capture_output=True, text=True, check=True
        )
    except FileNotFoundError as error:
        raise ReleaseError("hatch is not installed (pip install hatch)") from error
    except subprocess.CalledProcessError as error:
        raise ReleaseError(
            f"hatch version failed in {directory}: {error.stderr.strip()}"
        ) from error
    return completed.stdout.strip()


def check_tag(tag: str, read_version: Callable[[Path], str]) -> Distribution:
    """The distribution a tag releases, once its version is the one its folder declares."""
    name, version = parse_tag(tag)
    if name not in RELEASED:
        raise ReleaseError(f"{name!r} is not released from here; released: {', '.join(RELEASED)}")
    directory = RELEASED[name]
    declared = read_version(REPO_ROOT / directory)
    if declared != version:
        raise ReleaseError(f"tag {tag!r} says version {version} but {directory} is at {declared}")
    return Distribution(name, directory, version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tag")
    arguments = parser.parse_args(argv)
    try:
        distribution = check_tag(arguments.tag, hatch_version)
    except ReleaseError as error:
        print(f"check_tag: {error}", file=sys.stderr)
        return 1
    print(distribution.directory)
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(
                f"directory={distribution.directory}\n"
                f"distribution={distribution.name}\n"
                f"version={distribution.version}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
