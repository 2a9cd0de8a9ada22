"""Copy the plugin kit into every plugin distribution, and write each one's Orthanc entry.

Each distribution must install and run alone, so the shared glue is not a package to depend on:
it is copied, as `<import package>/_kit.py`, from the one source beside this script. A plugin is
any `packages/*/pyproject.toml` declaring an `orthanc.python_plugins` entry point.

    python tools/plugin-kit/generate.py          # write the copies
    python tools/plugin-kit/generate.py --check  # exit 1 when a copy differs (CI)
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

KIT_DIR = Path(__file__).resolve().parent
ROOT = KIT_DIR.parent.parent
SOURCE = KIT_DIR / "orthanc_plugin_kit.py"
ENTRY_TEMPLATE = KIT_DIR / "orthanc_entry.py.template"
COMMAND = "python tools/plugin-kit/generate.py"
ENTRY_POINT_GROUP = "orthanc.python_plugins"


@dataclass(frozen=True)
class PluginPackage:
    distribution: str
    package: str  # import name
    source_dir: Path


def header(source: Path) -> str:
    return (
        f"# DO NOT EDIT: generated from {source.relative_to(ROOT).as_posix()}. Regenerate with:\n"
        f"#   {COMMAND}\n"
    )


def discover(root: Path = ROOT) -> list[PluginPackage]:
    """The plugin distributions under packages/, sorted by name."""
    found = []
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        if not entry_points:
            continue
        module = next(iter(entry_points.values())).split(":")[0]
        package = module.split(".")[0]
        found.append(PluginPackage(project["name"], package, pyproject.parent / "src" / package))
    return found


def expected_files(plugins: list[PluginPackage]) -> dict[Path, str]:
    """Every generated file and the text it must have."""
    kit = header(SOURCE) + SOURCE.read_text()
    template = ENTRY_TEMPLATE.read_text()
    files = {}
    for plugin in plugins:
        files[plugin.source_dir / "_kit.py"] = kit
        entry = template.replace("{distribution}", plugin.distribution).replace(
            "{package}", plugin.package
        )
        files[plugin.source_dir / "orthanc_entry.py"] = header(ENTRY_TEMPLATE) + entry
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    arguments = parser.parse_args(argv)
    stale = []
    for path, text in expected_files(discover()).items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not arguments.check:
            path.write_text(text)
    if arguments.check and stale:
        print(f"out of date (run `{COMMAND}`): " + ", ".join(stale), file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
