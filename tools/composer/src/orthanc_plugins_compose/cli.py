"""`orthanc-plugins-compose`: write the Orthanc entry file for a chosen set of installed plugins."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .__about__ import __version__
from .discovery import UnknownPluginError, installed_plugins, resolve
from .render import render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orthanc-plugins-compose",
        description=(
            "Write one Orthanc Python entry file (point PythonScript, or Python.Path on plugin "
            "4.1+, at it) that runs the chosen installed plugins side by side."
        ),
    )
    parser.add_argument(
        "plugins",
        nargs="*",
        metavar="PLUGIN",
        help="short name (dicom-events) or distribution name (orthanc-dicom-events)",
    )
    parser.add_argument("--all", action="store_true", help="every installed plugin")
    parser.add_argument(
        "--site-packages",
        action="append",
        default=[],
        metavar="DIR",
        help="a site-packages directory (e.g. a venv's) to put ahead of Orthanc's own paths",
    )
    parser.add_argument("--output", required=True, metavar="FILE", help="file to write")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if FILE differs from what would be written",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.plugins and not args.all:
        parser.error("name at least one PLUGIN, or pass --all")
    available = installed_plugins()
    try:
        requested = [p.name for p in available] if args.all else list(args.plugins)
        if args.all and args.plugins:
            requested += args.plugins
        if not requested:
            raise UnknownPluginError("--all found no installed plugin")
        plugins = resolve(requested, available)
    except UnknownPluginError as error:
        print(f"orthanc-plugins-compose: {error}", file=sys.stderr)
        return 2
    for directory in args.site_packages:
        if not os.path.isdir(directory):
            print(
                f"orthanc-plugins-compose: --site-packages {directory}: not a directory",
                file=sys.stderr,
            )
            return 2
    text = render(plugins, args.site_packages, args.output)
    output = Path(args.output)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            print(
                f"orthanc-plugins-compose: {output} is out of date; regenerate it with the "
                "command in its header",
                file=sys.stderr,
            )
            return 1
        return 0
    _write_atomically(output, text)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    # Orthanc may be (re)starting and reading the file: never let it see half of one.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
