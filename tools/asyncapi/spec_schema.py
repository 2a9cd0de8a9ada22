"""The official AsyncAPI 3.0.0 JSON Schema, from the npm package @asyncapi/specs, kept in a cache.

    python tools/asyncapi/spec_schema.py   # fetch it unless cached; print its path
    python tools/asyncapi/spec_schema.py --validate packages/dicom-events/asyncapi.yaml

The package's tarball is downloaded from the npm registry (no npm needed), checked against a pinned
SHA-256, and the schema cached in $XDG_CACHE_HOME/orthanc-python-plugins/ (default ~/.cache/...).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

SPECS_PACKAGE = "@asyncapi/specs"
SPECS_VERSION = "6.11.1"  # the npm package's version, which carries schemas/3.0.0.json
ASYNCAPI_VERSION = "3.0.0"
TARBALL_URL = f"https://registry.npmjs.org/{SPECS_PACKAGE}/-/specs-{SPECS_VERSION}.tgz"
TARBALL_SHA256 = "01af8744dc33c0c7eb2e908f6a955319ee58b70ecadc9387d1aeb16c0cd28928"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orthanc-python-plugins" / f"asyncapi-specs-{SPECS_VERSION}"


def cached_schema_path() -> Path:
    return cache_dir() / f"{ASYNCAPI_VERSION}.json"


def fetch_schema() -> Path:
    """The cached schema file, downloaded first from the npm registry when missing."""
    target = cached_schema_path()
    if target.exists():
        return target
    with urllib.request.urlopen(TARBALL_URL, timeout=60) as response:
        tarball = response.read()
    digest = hashlib.sha256(tarball).hexdigest()
    if digest != TARBALL_SHA256:
        raise RuntimeError(f"{TARBALL_URL}: sha256 {digest}, expected {TARBALL_SHA256}")
    member = f"package/schemas/{ASYNCAPI_VERSION}.json"
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        extracted = archive.extractfile(member)
        if extracted is None:
            raise RuntimeError(f"{member} is not in {TARBALL_URL}")
        data = extracted.read()
    json.loads(data)  # refuse to cache anything but JSON
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(fetch_schema().read_text())
    return schema


def validation_errors(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every error of `document` against the AsyncAPI schema, as `path: message` lines."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
    return [
        f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}" for error in errors
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validate", type=Path, help="an AsyncAPI 3.0 document (YAML or JSON)")
    arguments = parser.parse_args(argv)
    schema_path = fetch_schema()
    if arguments.validate is None:
        print(schema_path)
        return 0
    document = yaml.safe_load(arguments.validate.read_text())
    errors = validation_errors(document, json.loads(schema_path.read_text()))
    for error in errors:
        print(f"{arguments.validate}: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
