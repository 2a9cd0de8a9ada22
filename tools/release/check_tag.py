"""Check a release tag `<distribution>-v<version>` against the distribution's own version.

    python tools/release/check_tag.py orthanc-dicom-events-v0.1.0
    python tools/release/check_tag.py "$GITHUB_REF_NAME" --expect orthanc-dicom-events

Prints the distribution's directory (and writes `directory=` to $GITHUB_OUTPUT when set); exits
1 when the tag names another distribution than --expect, an unknown one, or another version.
Versions come from the file named by `[tool.hatch.version] path` in the distribution's
pyproject.toml (its `__about__.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION_PARENTS = ("packages", "tools")
TAG_PATTERN = re.compile(r"^(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)-v(?P<version>\d[0-9A-Za-z.+!-]*)$")
VERSION_LINE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class ReleaseError(Exception):
    """The tag cannot be released as it is."""


@dataclass(frozen=True)
class Distribution:
    name: str
    directory: Path
    version: str


def parse_tag(tag: str) -> tuple[str, str]:
    """(distribution, version) of `orthanc-dicom-events-v0.1.0`."""
    match = TAG_PATTERN.match(tag.strip())
    if match is None:
        raise ReleaseError(f"tag {tag!r} is not <distribution>-v<version>")
    return match["name"], match["version"]


def read_distribution(directory: Path) -> Distribution | None:
    """The distribution defined in `directory`, or None when it has no versioned pyproject."""
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return None
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    name = data.get("project", {}).get("name")
    version_path = data.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
    if not name or not version_path:
        return None
    match = VERSION_LINE.search((directory / version_path).read_text(encoding="utf-8"))
    if match is None:
        raise ReleaseError(f"no __version__ in {directory / version_path}")
    return Distribution(str(name), directory, match[1])


def distributions(root: Path = REPO_ROOT) -> dict[str, Distribution]:
    found: dict[str, Distribution] = {}
    for parent in DISTRIBUTION_PARENTS:
        for directory in sorted((root / parent).glob("*/")):
            distribution = read_distribution(directory)
            if distribution is not None:
                found[distribution.name] = distribution
    return found


def check_tag(tag: str, *, expect: str | None = None, root: Path = REPO_ROOT) -> Distribution:
    """The distribution a tag releases, once its name and version match the repository."""
    name, version = parse_tag(tag)
    if expect is not None and name != expect:
        raise ReleaseError(f"tag {tag!r} releases {name}, not {expect}")
    known = distributions(root)
    if name not in known:
        raise ReleaseError(f"no distribution {name!r} here; known: {', '.join(sorted(known))}")
    distribution = known[name]
    if distribution.version != version:
        raise ReleaseError(
            f"tag {tag!r} says version {version} but {distribution.directory.name} is at "
            f"{distribution.version}"
        )
    return distribution


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tag")
    parser.add_argument("--expect", help="the distribution this workflow releases")
    arguments = parser.parse_args(argv)
    try:
        distribution = check_tag(arguments.tag, expect=arguments.expect)
    except ReleaseError as error:
        print(f"check_tag: {error}", file=sys.stderr)
        return 1
    directory = distribution.directory.relative_to(REPO_ROOT).as_posix()
    print(directory)
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"directory={directory}\nversion={distribution.version}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
